"""The base every contract object shares: a `type` discriminator and an `event_id`."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict


class ContractModel(BaseModel):
    """Inputs ignore unknown fields: the contract grows additively, old readers must not break."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    def to_json_bytes(self) -> bytes:
        return self.model_dump_json(exclude_none=True).encode("utf-8")


# Namespace of callvault's deterministic ids: replaying the same input yields the same ids.
CALLVAULT_NAMESPACE = uuid.UUID("6c1f6b7e-3f0a-5d4e-9a51-4c0c2a7d0b11")


def deterministic_id(*parts: str) -> uuid.UUID:
    return uuid.uuid5(CALLVAULT_NAMESPACE, "\x1f".join(parts))
