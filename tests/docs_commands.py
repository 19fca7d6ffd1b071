"""The commands the guides show, read from their `console` blocks, and how each is run.

A guide shows a command as a `console` block: `$ ` starts a command (a line ending
in `\\` goes on), and the lines after it are what it prints, where `…` stands for
what differs from run to run (ids, instants, counts). `tests/e2e/test_docs.py`
runs every `callvault` and `python3` command the guides show, in the guides'
order, against a stack of its own, and checks the lines shown. A command that
needs what this machine lacks (a cluster, a Docker engine) or runs for as long
as it is left (a worker) is listed in `ELSEWHERE` with the test that covers it;
`tests/unit/test_docs.py` fails on any shown command that is neither.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The guides in the order their commands run: each may rely on what the ones before it did
# (the DPO's erasure finds the hold placed above it; the auditor replays all of it).
GUIDES = (
    "README.md",
    "docs/operators.md",
    "docs/producers.md",
    "docs/contract.md",
    "docs/coaches.md",
    "docs/dpo.md",
    "docs/auditors.md",
    "docs/commands.md",
    "docs/architecture.md",
    "docs/development.md",
    "docs/benchmarks.md",
    "docs/known-edges.md",
)

# Shown commands that the docs test does not run, and what runs them instead.
ELSEWHERE = {
    "make demo": "tests/e2e/test_cli.py::test_demo_prints_the_summary_and_leaves_no_process_behind "
    "runs `callvault demo`, which is all `make demo` does after the install",
    "make test": ".ci/run, on every submission",
    "callvault dev": "tests/e2e/test_cli.py::test_dev_prints_the_endpoints_and_leaves_no_orphan",
    "callvault worker": "every real-stack test (tests/conftest.py: spawn_worker)",
    "callvault api": "every API test (tests/conftest.py: spawn_api)",
    "kubectl apply -k deploy/k8s/overlays/prod": "tests/unit/test_deploy_manifests.py renders the overlay "
    "with `kubectl kustomize` and checks what it renders; no cluster here to apply it to",
    "kubectl apply -k deploy/k8s/overlays/dev": "tests/unit/test_deploy_manifests.py, as for prod",
    "kubectl create secret generic callvault -n callvault --from-literal=CALLVAULT_PSEUDONYM_KEY=… "
    "--from-literal=CALLVAULT_API_TOKEN_SECRET=… "
    "--from-literal=CALLVAULT_AUDIT_SIGNING_KEY=…": "needs a cluster; tests/unit/test_deploy_manifests.py "
    "checks that the pods read the Secret `callvault` and that both names are settings",
    "kubectl apply -k deploy/k8s/audit": "tests/unit/test_deploy_manifests.py renders and checks the Indexed "
    "Job (one pod per partition); the merge it feeds is run by tests/e2e/test_docs.py",
    "docker compose up --build": "tests/unit/test_compose.py checks the file (`docker compose config` where "
    "the plugin exists); no Docker engine here to run it",
}


@dataclass(frozen=True)
class Shown:
    """One command a guide shows, with the lines it says the command prints."""

    guide: str
    line: int
    command: str
    output: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.guide}:{self.line}"

    def words(self) -> list[str]:
        return shlex.split(self.command)

    def env_and_argv(self) -> tuple[dict[str, str], list[str]]:
        """Leading NAME=value words are the command's environment, the rest its argv."""
        words, env = self.words(), {}
        while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        return env, words

    def expected_exit(self) -> int:
        """A user's mistake is one `callvault: ` sentence and exit 2; anything else succeeds."""
        return 2 if self.output and self.output[0].startswith("callvault: ") else 0


def shown_commands(guide: str) -> list[Shown]:
    lines = (ROOT / guide).read_text().splitlines()
    found: list[Shown] = []
    inside = False
    command: list[str] = []
    start = 0
    output: list[str] = []

    def close() -> None:
        if command:
            found.append(Shown(guide, start, " ".join(command), tuple(output)))

    for number, line in enumerate(lines, 1):
        if not inside:
            inside = line.strip() == "```console"
            continue
        if line.strip() == "```":
            close()
            inside, command, output = False, [], []
            continue
        if command and command[-1].endswith("\\"):
            command[-1] = command[-1][:-1].rstrip()
            command.append(line.strip())
        elif line.startswith("$ "):
            close()
            command, output, start = [line[2:].strip()], [], number
        elif command:
            output.append(line)
    return found


def every_shown_command() -> list[Shown]:
    return [shown for guide in GUIDES if (ROOT / guide).exists() for shown in shown_commands(guide)]


def is_run_by_the_docs_test(shown: Shown) -> bool:
    _env, argv = shown.env_and_argv()
    return bool(argv) and argv[0] in {"callvault", "python3"} and shown.command not in ELSEWHERE


def output_matches(shown: Shown, printed: str) -> str | None:
    """None when every shown line is printed, in order; else the first that is not."""
    lines = [line.rstrip() for line in printed.splitlines()]
    at = 0
    for expected in shown.output:
        pattern = re.compile(".*?".join(re.escape(part) for part in expected.rstrip().split("…")))
        while at < len(lines) and not pattern.fullmatch(lines[at]):
            at += 1
        if at == len(lines):
            return expected
        at += 1
    return None
