"""The command line as a user meets it: the demo end to end, and errors without tracebacks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from callvault.embedded.processes import free_port
from tests.cli import run_callvault


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker.encode() in (proc / "environ").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


@pytest.mark.integration
def test_demo_prints_the_summary_and_leaves_no_process_behind() -> None:
    marker = f"CALLVAULT_TEST_MARK={uuid.uuid4().hex}"
    name, value = marker.split("=")
    result = run_callvault("demo", "--calls", "40", env={name: value}, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "outcomes by reason" in out and "archived" in out and "dead letters" in out
    assert "demo finished" in out
    assert "data-subject requests" in out and "no answer" not in out
    # globex's client policy keeps recordings 7 days: a dry run in 8 days shows its recordings, beside
    # at most a few of the others' calls backdated by 23 to 31 days (their month ends by then too).
    (eight_days,) = [line for line in out.splitlines() if "dry run in 8 days" in line]
    due = {t: int(n) for t, n in re.findall(r"(acme|globex|initech) (\d+)", eight_days)}
    assert due.get("globex", 0) > due.get("acme", 0) + due.get("initech", 0), eight_days
    assert re.search(r"erase\s*│\s*\w+\s*│\s*\d+\s*│\s*\d+\s*│\s*\d+\s*│\s*1\s*│", out), "the held call kept"
    # The simulated traffic, replayed by the auditor's rules: clean.
    assert re.search(r"audit replay of the lifecycle log", out)
    assert re.search(r"\d+\s*│\s*0\s*│\s*intact", out), out[-2000:]
    assert _processes_with(marker) == [], "the demo left processes running"


def test_a_bad_setting_is_one_sentence() -> None:
    result = run_callvault("storage", "init", env={"CALLVAULT_RECORDING_RETENTION": "a month"})
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "callvault: configuration error: CALLVAULT_RECORDING_RETENTION: "
        "'a month' is not an ISO 8601 duration such as P1M, P6M, P30D or PT5M"
    )


def test_schemas_check_passes_on_the_checked_in_schemas() -> None:
    result = run_callvault("schemas", "check")
    assert result.returncode == 0, result.stderr


def _start_dev(marker: str, port: int) -> tuple[subprocess.Popen[str], str]:
    """`callvault dev` in its own process group, as in a terminal; returns it and what it printed."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "callvault", "dev", "--grace", "PT5S", "--port", str(port)],
        env={**os.environ, "COLUMNS": "200", "CALLVAULT_TEST_MARK": marker},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if "Ctrl-C stops everything" in line:
            break
    return proc, "".join(lines)


def _gone(marker: str, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _processes_with(marker):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.integration
@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_dev_prints_the_endpoints_and_leaves_no_orphan(how: str) -> None:
    marker = uuid.uuid4().hex
    port = free_port()
    proc, out = _start_dev(marker, port)
    try:
        assert "export CALLVAULT_KAFKA_BOOTSTRAP=127.0.0.1:" in out, out
        assert "export CALLVAULT_S3_ENDPOINT=http://127.0.0.1:" in out, out
        assert f"http://127.0.0.1:{port}/" in out, out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/") as page:  # noqa: S310 - loopback
            assert b"callvault" in page.read()
        assert len(_processes_with(marker)) >= 5, "dev, broker, store, worker and API should be running"
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C sends to the foreground group
            assert proc.wait(timeout=60) == 0
        else:
            os.kill(proc.pid, signal.SIGKILL)  # the parent alone, with no chance to clean up
            proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert _gone(marker), f"{how} left processes running"


@pytest.mark.integration
def test_simulate_publishes_calls_that_the_worker_decides(settings, worker) -> None:  # noqa: ANN001
    import asyncio

    from callvault.stream.watch import TopicWatcher
    from tests.conftest import settings_env

    result = run_callvault(
        "simulate", "--calls", "12", "--missing", "0", "--late", "0.5", "--after-start", "0",
        "--objected", "0", "--seed", "5", env=settings_env(settings), timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "12/12" in result.stdout and "expected outcome" in result.stdout

    async def wait_until_archived() -> None:
        watcher = await TopicWatcher(settings.kafka_bootstrap, settings.lifecycle_topic).start()

        def archived(w: TopicWatcher) -> int:
            return sum(1 for k in w.by_key if k.startswith("sim-") and "recording.archived" in w.types_for(k))

        try:
            await watcher.wait_for(lambda w: archived(w) == 12, 60, "12 simulated calls archived")
        finally:
            await watcher.stop()

    asyncio.run(wait_until_archived())


# -- issue 14: every command that pseudonymizes, signs or writes fails closed off loopback ----

REMOTE = {"CALLVAULT_KAFKA_BOOTSTRAP": "kafka-kafka-bootstrap.kafka.svc:9092",
          "CALLVAULT_S3_ENDPOINT": "https://s3.eu-west-1.amazonaws.com"}  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [
        ("subject", "erase", "+32470123456", "--tenant", "acme", "--reason", "e-mail of 1 December"),
        ("api", "token", "--subject", "ops", "--role", "admin", "--tenant", "*"),
        ("hold", "place", "c-1", "--reason", "dispute"),
        ("purge", "--dry-run"),
        ("worker",),
    ],
)
def test_a_command_off_loopback_refuses_the_dev_secrets(args: tuple[str, ...]) -> None:
    """On main `subject erase` pseudonymized with the dev key and `api token` minted an admin token."""
    # A shell that sets the endpoints and forgets the keys; CALLVAULT_ENV says prod, or nothing.
    result = run_callvault(*args, env={**REMOTE, "CALLVAULT_ENV": "prod"}, timeout=60)
    assert result.returncode != 0
    assert "refusing to run" in result.stderr and "published dev value" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("subject", "restrict", "+32470123456", "--tenant", "acme", "--reason", "dispute of 2 December"),
        ("api",),
        ("worker",),
    ],
)
def test_env_prod_on_loopback_refuses_the_dev_secrets(args: tuple[str, ...]) -> None:
    """Sidecar proxies put every endpoint on 127.0.0.1. On main all three ran with the dev secrets."""
    sidecars = {"CALLVAULT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CALLVAULT_S3_ENDPOINT": "http://127.0.0.1:1"}
    result = run_callvault(*args, env={**sidecars, "CALLVAULT_ENV": "prod"}, timeout=30)
    assert result.returncode != 0
    assert "refusing to run" in result.stderr and "CALLVAULT_ENV is prod" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_longer_than_the_maximum_is_refused() -> None:
    result = run_callvault(
        "api", "token", "--subject", "c@acme", "--role", "qa", "--tenant", "acme", "--ttl", "P30D"
    )
    assert result.returncode != 0 and "valid for 24 h at most" in result.stderr, result.stderr


def test_an_audit_off_the_embedded_stack_needs_a_pinned_key() -> None:
    """Issue 31, item 1: on main `audit verify` trusted the key derived from the audited party's secret."""
    sidecars = {"CALLVAULT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "CALLVAULT_S3_ENDPOINT": "http://127.0.0.1:1"}
    env = {**sidecars, "CALLVAULT_ENV": "prod"}
    for args in (("audit", "verify", "--from", "2026-01-01T00:00:00Z"), ("audit", "replay")):
        refused = run_callvault(*args, env=env, timeout=60)
        assert refused.returncode == 2, refused.stderr
        assert "pin the public key" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr
    bad = run_callvault("audit", "verify", "--from", "2026-01-01T00:00:00Z", "--public-key", "ab", env=env)
    assert bad.returncode == 2 and "64 hex characters" in bad.stderr, bad.stderr
