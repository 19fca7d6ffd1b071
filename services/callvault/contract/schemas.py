"""JSON Schema of every contract type, one file per type, checked in under `schemas/`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

from pydantic import BaseModel

from callvault.contract.call_events import CallEvent
from callvault.contract.commands import Command
from callvault.contract.deadletter import DeadLetter
from callvault.contract.lifecycle import LifecycleEvent
from callvault.contract.portable import SCHEMA_IDS, PortableCall, PortableManifest


def _members(union: object) -> list[type[BaseModel]]:
    return list(get_args(get_args(union)[0]))


def _type_name(model: type[BaseModel]) -> str:
    return str(model.model_fields["type"].default)


def all_schemas() -> dict[str, dict[str, object]]:
    """File name (relative to `schemas/`) to schema, in a stable order."""
    groups = {
        "call-events": _members(CallEvent),
        "lifecycle": _members(LifecycleEvent),
        "commands": _members(Command),
        "deadletter": [DeadLetter],
    }
    out: dict[str, dict[str, object]] = {}
    for group, models in groups.items():
        for model in models:
            schema = model.model_json_schema(mode="serialization")
            schema["$id"] = f"https://callvault.dev/schemas/v1/{group}/{_type_name(model)}.json"
            schema["title"] = _type_name(model)
            out[f"{group}/{_type_name(model)}.json"] = schema
    # What a portable export holds (contract/portable.py): read by the organisation it is taken to.
    for name, model in (("portable.call", PortableCall), ("portable.manifest", PortableManifest)):
        schema = model.model_json_schema(mode="serialization", by_alias=True)
        schema["$id"] = SCHEMA_IDS[name]
        schema["title"] = name
        out[f"exports/{name}.json"] = schema
    return out


def render(schema: dict[str, object]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(root: Path) -> list[Path]:
    written = []
    for name, schema in all_schemas().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def drift(root: Path) -> list[str]:
    """Names of schema files that are missing, stale or no longer generated."""
    expected = all_schemas()
    problems = [
        name
        for name, schema in expected.items()
        if not (root / name).is_file() or (root / name).read_text(encoding="utf-8") != render(schema)
    ]
    existing = {p.relative_to(root).as_posix() for p in root.rglob("*.json")} if root.exists() else set()
    problems += sorted(existing - expected.keys())
    return problems
