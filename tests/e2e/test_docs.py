"""Every command the guides show runs as shown and prints what they say (issue 19, item 5).

The guides' commands run in the guides' order against a stack of their own: a
worker, buckets and topics that no other test shares, with the sites the DPO's
guide names, and the calls its examples speak of (two of acme's with the
number the erasure names, one of globex's). Each command runs in this process
(typer's runner: the same code as the `callvault` script without starting
Python twenty times), with the settings in its environment as an operator would
export them.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callvault.cli.errors import UserError
from callvault.cli.main import app
from callvault.embedded.processes import ChildProcess
from callvault.settings import Settings
from callvault.stream.bus import BrokerUnreachable
from tests.conftest import settings_env, stack_fixtures
from tests.docs_commands import ROOT, Shown, every_shown_command, is_run_by_the_docs_test, output_matches
from tests.integration.helpers import Bus

SITES = "be-machelen=BE,nl-weert=NL,ma-rabat=MA"


# Segments flushed and checkpoints signed every second, so the auditors' `audit verify` has both.
docs_settings, docs_worker, _ = stack_fixtures(
    "docs", "doc", sites=SITES, audit_flush_s=1.0, audit_checkpoint_s=1.0
)


async def _the_calls_the_guides_speak_of(settings: Settings) -> None:
    async with Bus(settings) as bus:
        calls = [
            bus.script(call_id="c-87"),
            bus.script(call_id="c-88"),
            bus.script(call_id="g-1", tenant="globex"),
        ]
        for call in calls:
            await bus.send_call(call)
        for call in calls:
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived", timeout=60)
        await bus.create_bucket("globex-archive")


def _run(shown: Shown, env: dict[str, str]) -> tuple[int, str]:
    extra, argv = shown.env_and_argv()
    if argv[0] == "python3":
        done = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=60)
        return done.returncode, done.stdout + done.stderr
    result = CliRunner().invoke(app, argv[1:], env={**env, **extra}, catch_exceptions=True)
    printed = result.output
    # What `callvault.cli.main.main` does with a user's mistake: one sentence, exit 2.
    if isinstance(result.exception, UserError | BrokerUnreachable):
        return 2, printed + f"callvault: {result.exception}\n"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, printed


def test_every_command_the_guides_show_runs_and_prints_what_they_say(
    docs_settings: Settings, docs_worker: ChildProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_the_calls_the_guides_speak_of(docs_settings))
    monkeypatch.chdir(tmp_path)  # reports land here; `schemas check` reads the checked-in schemas
    (tmp_path / "schemas").symlink_to(ROOT / "schemas")
    env = {**settings_env(docs_settings), "COLUMNS": "250"}
    ran = 0
    for shown in every_shown_command():
        if not is_run_by_the_docs_test(shown):
            continue
        code, printed = _run(shown, env)
        assert code == shown.expected_exit(), f"{shown.where}: `{shown.command}` exited {code}:\n{printed}"
        missing = output_matches(shown, printed)
        assert missing is None, (
            f"{shown.where}: `{shown.command}` did not print {missing!r}; it printed:\n{printed}"
        )
        ran += 1
    assert ran >= 15, f"only {ran} commands found in the guides"
