"""The parts of the docs written from the code: commands, the contract's fields and topics, audit ids.

A hand-kept table drifts: options were added (`purge --limit`, `--wait`,
`export-link --purpose`) and `docs/commands.md` never heard of them. So each
section between `<!-- generated: NAME -->` and `<!-- end: NAME -->` is written
from the code itself: the commands from typer's own tree with their help
texts, the contract's fields from the JSON Schemas, the topics from the
settings. `make docs` writes them and `tests/unit/test_docs.py` fails when a
committed page differs.

    python -m callvault.cli.reference write   # or: check
"""

from __future__ import annotations

import enum
import sys
import typing
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import Any

import typer

ROOT = Path(__file__).resolve().parents[3]  # the repository: the pages live in its docs/


def _commands(node: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command that runs something, parents first: a group with a callback of its own counts."""
    children = getattr(node, "commands", None)
    if children is None:
        yield path, node
        return
    if path and [p for p in node.params if p.name != "help"]:
        yield path, node  # `callvault api` serves; `callvault api token` is its subcommand
    for name in sorted(children):
        yield from _commands(children[name], [*path, name])


def _first_paragraph(text: str | None) -> str:
    paragraph = (text or "").strip().split("\n\n")[0]
    return " ".join(paragraph.split()).replace("|", "\\|")


def _metavar(param: Any) -> str:
    """What the option takes, from its Python annotation: N, TEXT, PATH, or an enum's values."""
    kind = param.type_descriptor.annotation
    kind = next(iter(typing.get_args(kind)), kind) if typing.get_origin(kind) is list else kind
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return "|".join(str(member.value) for member in kind)
    if kind in (int, float):
        return "N"
    if isinstance(kind, type) and issubclass(kind, PurePath):
        return "PATH"
    return "TEXT"


def _option(param: Any) -> str:
    names = " / ".join(f"`{name}`" for name in (*param.opts, *param.secondary_opts))
    if not param.is_flag and len(param.opts) == 1:
        names = f"`{param.opts[0]} {_metavar(param)}`"
    repeat = " (repeatable)" if getattr(param, "multiple", False) else ""
    return f"{names.replace('|', chr(92) + '|')}{repeat}: {_first_paragraph(param.help)}"


def rows() -> list[str]:
    from callvault.cli.main import app

    root = typer.main.get_command(app)
    lines = ["| command | what it does | options |", "|---|---|---|"]
    for path, command in _commands(root, []):
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if p.param_type_name == "option" and p.name != "help"]
        shown = [a.name.upper() + ("..." if a.nargs == -1 else "") for a in arguments]
        usage = " ".join(["callvault", *path, *shown])
        described = "<br>".join(_option(o) for o in options) or "none"
        lines.append(f"| `{usage}` | {_first_paragraph(command.help)} | {described} |")
    return lines


def topic_rows() -> list[str]:
    """Every topic with its full name under the default prefix, from the settings."""
    from callvault.settings import Settings

    settings = Settings()
    said = {
        settings.call_events_topic: (
            "`call_id` (any partitioner: callvault re-keys)",
            "call events",
            "the platform",
        ),
        settings.lifecycle_topic: (
            "`call_id`; a subject request's pseudonym; a tenant-wide event's tenant",
            "lifecycle events (the audit log)",
            "callvault only",
        ),
        settings.deadletter_topic: ("the original key, numbers redacted", "dead letters", "callvault only"),
        settings.commands_topic: ("`call_id` or the subject's pseudonym", "commands", "the DPO's tools, API"),
        settings.calls_topic: ("`call_id`", "internal: validated events and wake-ups", "callvault only"),
    }
    lines = ["| topic | key | value | written by |", "|---|---|---|---|"]
    for topic in settings.all_topics():
        key, value, writer = said[topic]
        lines.append(f"| `{topic}` | {key} | {value} | {writer} |")
    return lines


def _field_tables() -> list[str]:
    from callvault.contract.field_tables import field_tables

    return field_tables()


def _rule_rows() -> list[str]:
    from callvault.rules.audit_rules import rule_rows

    return rule_rows()


def _acl_rows() -> list[str]:
    from callvault.rules.kafka_acls import acl_rows
    from callvault.settings import Settings

    return acl_rows(Settings().kafka_topics())


def _record_rows() -> list[str]:
    from callvault.rules.processing_record import record_rows

    return record_rows()


# (page, section) -> what writes it
SECTIONS = {
    ("docs/dpo.md", "processing-record"): _record_rows,
    ("docs/operators.md", "kafka-acls"): _acl_rows,
    ("docs/auditors.md", "rules"): _rule_rows,
    ("docs/commands.md", "commands"): rows,
    ("docs/contract.md", "topics"): topic_rows,
    ("docs/contract.md", "fields"): _field_tables,
}


def rendered(page: str, name: str) -> str:
    """The page with its generated section `name` written anew."""
    begin, end = f"<!-- generated: {name} (make docs) -->", f"<!-- end: {name} -->"
    head, found, rest = page.partition(begin)
    if not found or end not in rest:
        raise ValueError(f"the page has no {begin!r} ... {end!r} markers")
    _, _, tail = rest.partition(end)
    page_for = {key[1]: fn for key, fn in SECTIONS.items()}
    return head + begin + "\n\n" + "\n".join(page_for[name]()) + "\n\n" + end + tail


def rendered_pages() -> dict[Path, tuple[str, str]]:
    """Each page: (as committed, as the code writes it)."""
    pages: dict[Path, tuple[str, str]] = {}
    for (page, name), _ in SECTIONS.items():
        path = ROOT / page
        current = pages[path][1] if path in pages else path.read_text()
        committed = pages[path][0] if path in pages else current
        pages[path] = (committed, rendered(current, name))
    return pages


def main(argv: list[str]) -> int:
    pages = rendered_pages()
    if argv[1:] == ["write"]:
        for path, (_, fresh) in pages.items():
            path.write_text(fresh)
            print(f"wrote the generated sections of {path.relative_to(ROOT)}")
        return 0
    if argv[1:] == ["check"]:
        stale = [str(path.relative_to(ROOT)) for path, (now, fresh) in pages.items() if now != fresh]
        if stale:
            print(f"{', '.join(stale)} differ from the code; run `make docs`", file=sys.stderr)
            return 1
        print("the generated sections match the code")
        return 0
    print("usage: python -m callvault.cli.reference write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
