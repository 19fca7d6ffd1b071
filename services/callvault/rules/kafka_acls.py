"""Least privilege on Kafka: what each component may do to which topic and group, declared once. Pure.

The `commands` topic is the DPO's authority and `lifecycle` is the audit log,
so who may write them matters as much as who may read the recordings. Each
component connects as its own Kafka user (`CALLVAULT_KAFKA_SASL_USERNAME`) and
is granted exactly these ACLs; the tests grant them on a real broker with the
StandardAuthorizer and check that each user is refused what is not its own,
and `deploy/k8s/base/users.yaml` (Strimzi `KafkaUser`s, `authorization:
simple`) is checked against this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Operation = Literal["Read", "Write", "Describe", "Create", "All"]


@dataclass(frozen=True, slots=True)
class Acl:
    resource: Literal["topic", "group"]
    name: str
    operations: tuple[Operation, ...]
    prefixed: bool = False  # a name prefix (faust's changelog and leader topics, its groups)


@dataclass(frozen=True, slots=True)
class Topics:
    """The topic names of one deployment (its `CALLVAULT_TOPIC_PREFIX`) and the worker's group."""

    call_events: str
    lifecycle: str
    deadletter: str
    commands: str
    calls: str
    app_id: str


COMPONENTS = ("platform", "worker", "api", "dpo", "auditor")


def acl_rows(t: Topics) -> list[str]:
    """The operators' guide's table of who may do what, for the default topic names."""
    lines = ["| component (Kafka user) | resource | operations |", "|---|---|---|"]
    for component in COMPONENTS:
        for a in acls(component, t):
            name = f"`{a.name}*`" if a.prefixed else f"`{a.name}`"
            operations = ", ".join(a.operations)
            lines.append(f"| {component} (`callvault-{component}`) | {a.resource} {name} | {operations} |")
    return lines


def acls(component: str, t: Topics) -> list[Acl]:
    """The grants of one component; a ValueError names the known ones."""
    read: tuple[Operation, ...] = ("Read", "Describe")
    write: tuple[Operation, ...] = ("Write", "Describe")
    # The worker may create its own topics when they are missing (`callvault worker` does), no others.
    own: tuple[Operation, ...] = ("Describe", "Create")
    grants: dict[str, list[Acl]] = {
        # The call-center platform: call events in, nothing read back.
        "platform": [Acl("topic", t.call_events, write)],
        "worker": [
            Acl("topic", t.call_events, (*read, "Create")),
            Acl("topic", t.calls, ("Read", "Write", *own)),
            Acl("topic", t.lifecycle, ("Read", "Write", *own)),  # emits it, and archives it
            Acl("topic", t.deadletter, ("Write", *own)),
            Acl("topic", t.commands, (*read, "Create")),
            Acl("topic", f"{t.app_id}-", ("All",), prefixed=True),  # faust's changelog and leader topic
            Acl("group", t.app_id, ("All",), prefixed=True),  # the worker's group, faust's leader group
        ],
        # The API: its access events, nothing else.
        "api": [Acl("topic", t.lifecycle, write)],
        # The DPO's command line: commands out; their answers (or dead letters) read, without a group.
        "dpo": [
            Acl("topic", t.commands, write),
            Acl("topic", t.lifecycle, read),
            Acl("topic", t.deadletter, read),
        ],
        # The auditor's replay: the audit log, read-only.
        "auditor": [Acl("topic", t.lifecycle, read)],
    }
    if component not in grants:
        raise ValueError(f"{component!r} is not a callvault component (known: {', '.join(COMPONENTS)})")
    return grants[component]
