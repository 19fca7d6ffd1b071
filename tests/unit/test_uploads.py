"""PartUpload's own rule, before any store is asked (its uploads run in tests/stores on every store)."""

from __future__ import annotations

import pytest

from callvault.storage.uploads import PartUpload


def test_a_part_below_s3s_minimum_is_refused_up_front() -> None:
    with pytest.raises(ValueError, match="at least 5242880 bytes"):
        PartUpload(None, "callvault-exports", "k", single_put_limit=1, part_bytes=1024)  # type: ignore[arg-type]
