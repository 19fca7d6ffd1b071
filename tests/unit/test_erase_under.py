"""`archive.erase_under`: the one way callvault erases a key or a prefix for real.

The subject index (a call's entries), offboarding (a tenant's sweeps) and
`delete_all_versions` (one key) all go through it: every version and delete
marker goes, the keys `keep` names stay, and a version the store refuses to
give up is a `StorageFault` that names it, never a silent leftover.
"""

from __future__ import annotations

from typing import Any

import pytest

from callvault.storage.archive import delete_all_versions, erase_under
from callvault.storage.errors import StorageFault
from callvault.testing import Harness


@pytest.fixture
async def h() -> Any:
    async with Harness() as harness:
        yield harness


def versions_of(s3: Any, bucket: str, prefix: str) -> list[str]:
    """Every version and delete marker under `prefix`, as `key@kind`."""
    page = s3.list_object_versions(Bucket=bucket, Prefix=prefix)
    return sorted(
        [f"{v['Key']}@version" for v in page.get("Versions", ())]
        + [f"{m['Key']}@marker" for m in page.get("DeleteMarkers", ())]
    )


async def test_every_version_and_marker_under_the_prefix_goes_but_what_keep_names(h: Harness) -> None:
    bucket = h.settings.metadata_bucket
    for key in ("t/a/1.json", "t/a/2.json", "t/a/kept.json", "t/ab.json", "t/b/1.json"):
        h.s3.put_object(Bucket=bucket, Key=key, Body=b"{}")
    h.s3.put_object(Bucket=bucket, Key="t/a/1.json", Body=b"{ }")  # a second version
    h.s3.delete_object(Bucket=bucket, Key="t/a/2.json")  # a delete marker over its data

    erased = erase_under(h.s3, bucket, "t/a/", keep=lambda key: key.endswith("kept.json"))

    assert erased == 4  # two versions of 1, the data and the marker of 2
    assert versions_of(h.s3, bucket, "t/") == [
        "t/a/kept.json@version",
        "t/ab.json@version",
        "t/b/1.json@version",
    ]


async def test_one_key_is_erased_and_its_neighbours_sharing_the_prefix_are_not(h: Harness) -> None:
    bucket = h.settings.metadata_bucket
    for key in ("t/c/1.json", "t/c/1.json.bak"):
        h.s3.put_object(Bucket=bucket, Key=key, Body=b"{}")

    assert delete_all_versions(h.s3, bucket, "t/c/1.json") == 1
    assert versions_of(h.s3, bucket, "t/c/") == ["t/c/1.json.bak@version"]


async def test_a_version_the_store_keeps_is_a_fault_that_names_it(h: Harness) -> None:
    bucket = h.settings.recordings_bucket  # object lock: a legal hold callvault did not lift
    h.s3.put_object(Bucket=bucket, Key="t/d/held.wav", Body=b"x")
    h.s3.put_object(Bucket=bucket, Key="t/d/free.wav", Body=b"x")
    h.s3.put_object_legal_hold(Bucket=bucket, Key="t/d/held.wav", LegalHold={"Status": "ON"})

    with pytest.raises(StorageFault, match=rf"refused to erase s3://{bucket}/t/d/held\.wav: AccessDenied"):
        erase_under(h.s3, bucket, "t/d/")
    assert versions_of(h.s3, bucket, "t/d/") == ["t/d/held.wav@version"]  # the rest went all the same
