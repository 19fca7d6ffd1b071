"""Each client's key in a KMS: made, used to wrap data keys, and destroyed at the contract's end.

Issue 29 (keys per client), its second part. One KMS key per tenant, under the alias
`alias/callvault/{tenant}` (AWS KMS in production, moto's KMS on the embedded stack and in tests),
or the client's own key (bring your own key). A data key is asked of KMS (`GenerateDataKey`, AES-256)
with the encryption context naming tenant and data class, so a wrapped key of one tenant or class
never unwraps as another's; it is kept a short while (`DataKeys`) so KMS is not asked per object,
each object still getting a key of its own (`contract.sealed` derives it with a fresh salt).

Crypto-shredding: `schedule_destruction` asks KMS to delete the key after the shortest window it
allows; from then on `unwrap` refuses (KMS refuses a key pending deletion; moto's does not, so
callvault checks the key's state itself). Blocking (boto3): call these off the event loop.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import ClientError

from callvault.contract.sealed import SealedHeader
from callvault.observability.metrics import KMS_REQUESTS
from callvault.settings import Settings
from callvault.storage.client import count_requests
from callvault.storage.errors import error_code

ALIAS_PREFIX = "alias/callvault/"
# The key of calls under legal hold whose client's key was shredded (not under ALIAS_PREFIX: no tenant
# name can collide with it).
HOLD_ALIAS = "alias/callvault-hold"
USABLE = "Enabled"


class KeyRefused(RuntimeError):
    """A tenant's key cannot be used (destroyed, pending deletion, disabled, unknown); says which."""


def alias_of(tenant: str) -> str:
    return f"{ALIAS_PREFIX}{tenant}"


def make_kms_client(settings: Settings, *, attempts: int = 3) -> BaseClient:
    """The KMS: `CALLVAULT_KMS_ENDPOINT` (moto's server on the embedded stack), else AWS's for the
    region. A KMS named by its endpoint is asked with the store's credentials (the embedded stack's, a
    KMS beside an on-premises store); AWS KMS with the default chain (pod identity)."""
    endpoint = settings.kms_url
    keys = settings.s3_keys() if endpoint else None
    client = boto3.client(
        "kms",
        endpoint_url=endpoint,
        aws_access_key_id=keys[0] if keys else None,
        aws_secret_access_key=keys[1] if keys else None,
        config=Config(region_name=settings.kms_region or settings.s3_region,
                      retries={"max_attempts": attempts, "mode": "standard"}),
    )  # fmt: skip
    count_requests(client, "kms", KMS_REQUESTS)
    return client


def tenant_key(kms: BaseClient, tenant: str) -> dict[str, Any] | None:
    """The tenant's key's metadata (its ARN, its state), or None when it has none."""
    try:
        return dict(kms.describe_key(KeyId=alias_of(tenant))["KeyMetadata"])
    except ClientError as exc:
        if error_code(exc) == "NotFoundException":
            return None
        raise


def ensure_tenant_key(kms: BaseClient, tenant: str) -> tuple[str, bool]:
    """The tenant's key ARN, made (with its alias) if it had none; and whether it was made now."""
    return _ensure_key(
        kms, alias_of(tenant), f"callvault: recordings and metadata of tenant {tenant}", tenant
    )


def ensure_hold_key(kms: BaseClient) -> str:
    """The hold key's ARN, made if there is none: held calls of a shredded client are wrapped under it."""
    about = "callvault: calls under legal hold whose client's key was shredded"
    return _ensure_key(kms, HOLD_ALIAS, about)[0]


def _ensure_key(kms: BaseClient, alias: str, description: str, tenant: str = "") -> tuple[str, bool]:
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]), False
    except ClientError as exc:
        if error_code(exc) != "NotFoundException":
            raise
    tags = [{"TagKey": "callvault-tenant", "TagValue": tenant}] if tenant else []
    made = kms.create_key(Description=description, KeyUsage="ENCRYPT_DECRYPT", Tags=tags)["KeyMetadata"]
    try:
        kms.create_alias(AliasName=alias, TargetKeyId=made["KeyId"])
    except ClientError as exc:
        if error_code(exc) != "AlreadyExistsException":
            raise
        # Another process made one at the same moment: use that, and retire this one at once.
        kms.schedule_key_deletion(KeyId=made["KeyId"], PendingWindowInDays=7)
        return _ensure_key(kms, alias, description, tenant)[0], False
    return str(made["Arn"]), True


def rewrap(kms: BaseClient, header: SealedHeader, to_key: str) -> tuple[str, bytes]:
    """The object's data key wrapped under `to_key` instead (KMS ReEncrypt: the data key never leaves
    KMS in the clear), with the same encryption context; the key id and the new wrapped key."""
    answer = kms.re_encrypt(
        CiphertextBlob=header.wrapped_key,
        SourceKeyId=header.key_id,
        SourceEncryptionContext=header.context,
        DestinationKeyId=to_key,
        DestinationEncryptionContext=header.context,
    )
    return str(answer["KeyId"]), bytes(answer["CiphertextBlob"])


def context_of(tenant: str, data_class: str) -> dict[str, str]:
    return {"tenant": tenant, "data_class": data_class}


@dataclass
class _Cached:
    plaintext: bytes
    wrapped: bytes
    key_id: str
    until: float
    uses: int = 0


class DataKeys:
    """Data keys from KMS, kept `ttl_s` seconds or `max_uses` objects per (tenant, class), whichever
    comes first: KMS is asked about once per tenant and class per period, not per object."""

    def __init__(self, kms: BaseClient, *, ttl_s: float = 300.0, max_uses: int = 10_000) -> None:
        self.kms, self.ttl_s, self.max_uses = kms, ttl_s, max_uses
        self._cache: dict[tuple[str, str, str], _Cached] = {}
        self._lock = threading.Lock()
        self.requests = 0  # GenerateDataKey calls made (callvault_kms_requests_total counts every KMS call)

    def for_object(self, tenant: str, data_class: str, key: str | None = None) -> tuple[bytes, bytes, str]:
        """(data key, its wrapped form, the KMS key ARN) to seal one object of the tenant and class;
        `key`: the client's own key (bring your own key), else the tenant's alias."""
        now = time.monotonic()
        with self._lock:
            slot = (tenant, data_class, key or "")  # a client bringing its own key starts a new one
            cached = self._cache.get(slot)
            if cached is None or cached.until <= now or cached.uses >= self.max_uses:
                answer = self.kms.generate_data_key(
                    KeyId=key or alias_of(tenant),
                    KeySpec="AES_256",
                    EncryptionContext=context_of(tenant, data_class),
                )
                self.requests += 1
                cached = _Cached(
                    answer["Plaintext"], answer["CiphertextBlob"], answer["KeyId"], now + self.ttl_s
                )
                self._cache[slot] = cached
            cached.uses += 1
            return cached.plaintext, cached.wrapped, cached.key_id


def unwrap(kms: BaseClient, header: SealedHeader) -> bytes:
    """The data key of a sealed object, from KMS; `KeyRefused` with a sentence when its key is destroyed,
    pending deletion or disabled (a restored old version of a shredded tenant's object stays closed)."""
    try:
        state = kms.describe_key(KeyId=header.key_id)["KeyMetadata"].get("KeyState", USABLE)
    except ClientError as exc:
        if error_code(exc) in {"NotFoundException", "KMSInvalidStateException"}:
            raise KeyRefused(f"the key {header.key_id} that sealed this object no longer exists") from None
        raise
    if state != USABLE:
        raise KeyRefused(
            f"the key {header.key_id} that sealed this object is {state}: the client's data was shredded "
            "at the end of its contract (or its key disabled); nothing sealed under it opens"
        )
    try:
        return bytes(
            kms.decrypt(
                CiphertextBlob=header.wrapped_key, KeyId=header.key_id, EncryptionContext=header.context
            )["Plaintext"]
        )
    except ClientError as exc:
        if error_code(exc) in {"InvalidCiphertextException", "IncorrectKeyException"}:
            raise KeyRefused(
                "the object's wrapped key does not unwrap under its key and context: it was altered, or "
                "moved from another tenant or class"
            ) from None
        if error_code(exc) in {"KMSInvalidStateException", "DisabledException", "NotFoundException"}:
            raise KeyRefused(f"the key {header.key_id} cannot be used: {error_code(exc)}") from None
        raise


def schedule_destruction(kms: BaseClient, key_id: str, days: int) -> datetime:
    """Crypto-shred: KMS deletes the key after `days` (7 to 30 on AWS); returns the date it will."""
    bare = kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"]  # moto takes the id, not the ARN
    answer = kms.schedule_key_deletion(KeyId=bare, PendingWindowInDays=days)
    return answer["DeletionDate"]
