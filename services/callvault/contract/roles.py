"""The roles a person holds in callvault: declared once, for the tokens, the access rules and the events.

`rules.access` says what each role may do; the contract's access events name
the role they were made under. Both read this one enum, so a new role is one
line here (and its permissions in `rules.access`), and the schemas follow.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    QA = "qa"
    AUDITOR = "auditor"
    DPO = "dpo"
    ADMIN = "admin"
