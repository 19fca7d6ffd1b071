"""Markdown tables of every contract type's fields, read from the same JSON Schemas as `schemas/`.

`docs/contract.md` is what a producer integrates against; a table kept by hand
would drift from the models the way the command table did. So each type's
fields, their types and their limits are rendered here from
`callvault.contract.schemas.all_schemas()`, and the page is rewritten by
`make docs` and checked by `tests/unit/test_docs.py`. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

from callvault.contract.schemas import all_schemas

_GROUPS = {
    "call-events": "Call events (`call-events`, written by the platform)",
    "lifecycle": "Lifecycle events (`lifecycle`, written by callvault: the audit log)",
    "commands": "Commands (`commands`, written by the DPO's tools and the API)",
    "deadletter": "Dead letters (`deadletter`, written by callvault)",
    "exports": "Portable exports (what a data subject takes to another organisation; on no topic)",
}


_FORMATS = {"date-time": "RFC 3339 with offset", "uuid": "UUID"}


def _kind(spec: dict[str, Any], defs: dict[str, Any]) -> str:
    """A field's type in a few words: `string (uuid)`, `integer ≥ 0`, `one of a, b`, `ObjectRef`."""
    if "$ref" in spec:
        name = spec["$ref"].rsplit("/", 1)[-1]
        target = defs.get(name, {})
        return _kind(target, defs) if "enum" in target else f"object `{name}`"
    if "anyOf" in spec:
        kinds = [_kind(s, defs) for s in spec["anyOf"] if s.get("type") != "null"]
        nullable = any(s.get("type") == "null" for s in spec["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "const" in spec:
        return f"`{spec['const']}`"
    if "enum" in spec:
        return "one of " + ", ".join(f"`{v}`" for v in spec["enum"])
    kind = str(spec.get("type", "any"))
    if kind == "array":
        return f"list of {_kind(spec.get('items', {}), defs)}"
    details = []
    if "format" in spec:
        details.append(_FORMATS.get(spec["format"], spec["format"]))
    for key, sign in (("minimum", "≥"), ("exclusiveMinimum", ">"), ("maximum", "≤")):
        if key in spec:
            details.append(f"{sign} {spec[key]}")
    if "minLength" in spec or "maxLength" in spec:
        details.append(f"{spec.get('minLength', 0)} to {spec.get('maxLength', '…')} characters")
    if "pattern" in spec and "format" not in spec:
        details.append(f"matching `{spec['pattern']}`")
    return kind + (f" ({', '.join(details)})" if details else "")


# What the common fields are, where a model says nothing of its own.
_COMMON = {
    "type": "the message's type: the tables' titles",
    "event_id": "identifies the message; see the rules above",
    "call_id": "the platform's id of the call",
    "tenant": "the client the call is made for",
    "occurred_at": "when it happened (call events) or when callvault acted (lifecycle)",
}


def _rows(schema: dict[str, Any]) -> list[str]:
    defs = schema.get("$defs", {})
    required = {*schema.get("required", ()), "type"}  # the discriminator has a default, but is required
    rows = ["| field | type | required | what it is |", "|---|---|---|---|"]
    for name, spec in schema.get("properties", {}).items():
        said = " ".join(str(spec.get("description") or _COMMON.get(name, "")).split()).replace("|", "\\|")
        kind = _kind(spec, defs).replace("|", "\\|")
        rows.append(f"| `{name}` | {kind} | {'yes' if name in required else 'no'} | {said} |")
    return rows


def _object_rows(schemas: dict[str, dict[str, Any]]) -> list[str]:
    """The nested objects (`ObjectRef`, `SourcePosition`, ...) once each, after the types."""
    seen: dict[str, dict[str, Any]] = {}
    for schema in schemas.values():
        for name, spec in schema.get("$defs", {}).items():
            if spec.get("type") == "object":
                seen.setdefault(name, {**spec, "$defs": schema.get("$defs", {})})
    lines: list[str] = []
    for name in sorted(seen):
        lines += ["", f"#### `{name}`", "", *_rows(seen[name])]
    return lines


def field_tables() -> list[str]:
    """Every type of every topic with a table of its fields; then the nested objects."""
    schemas = all_schemas()
    lines: list[str] = []
    for group, title in _GROUPS.items():
        lines += [f"### {title}", ""]
        for name, schema in schemas.items():
            if name.startswith(f"{group}/"):
                lines += [f"#### `{schema['title']}`", "", *_rows(schema), ""]
    lines += ["### Objects inside events", *_object_rows(schemas)]
    return lines
