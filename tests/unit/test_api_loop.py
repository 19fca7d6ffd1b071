"""The API's event loop (`CALLVAULT_API_LOOP`): uvloop where installed, as uvicorn would choose."""

from __future__ import annotations

import sys

import pytest

from callvault.cli.api import loop_factory
from callvault.cli.errors import UserError
from callvault.settings import Settings


def test_the_api_runs_on_uvloop_by_default() -> None:
    uvloop = pytest.importorskip("uvloop")  # `make` installs it (uvicorn[standard]) on Linux
    assert Settings().api_loop == "auto"
    assert loop_factory("auto") is uvloop.new_event_loop
    assert loop_factory("uvloop") is uvloop.new_event_loop


def test_asyncio_own_loop_is_there_to_choose() -> None:
    assert loop_factory("asyncio") is None


def test_without_uvloop_auto_falls_back_and_uvloop_is_refused_with_a_sentence(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # `import uvloop` raises ImportError
    assert loop_factory("auto") is None
    with pytest.raises(UserError, match="CALLVAULT_API_LOOP=uvloop, but uvloop is not installed"):
        loop_factory("uvloop")
