"""The S3 stores the storage case runs against, each with what it is known to let pass.

One test case, several stores (as eventsourcing runs one case against every
persistence adapter): moto in-process, moto's server, a real Ceph RGW, and any
endpoint named by CALLVAULT_TEST_S3 (MinIO, AWS). A check that a store is known
to be too lenient for (moto lets COMPLIANCE retention be shortened) skips there
with that sentence, and must hold on the stricter stores.
"""

from __future__ import annotations

import contextlib
import os
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from tests.stores import rgw

# What a store is known to let pass, and the sentence a test skips with there.
SHORTENS_COMPLIANCE = "moto lets COMPLIANCE retention be shortened and its mode changed"
ACCEPTS_TAMPERED_LINKS = "moto serves presigned URLs whose signature was tampered with"
ACCEPTS_WRONG_MD5 = "moto stores a body whose Content-MD5 does not match it"
MOTO_LENIENCE = frozenset({SHORTENS_COMPLIANCE, ACCEPTS_TAMPERED_LINKS, ACCEPTS_WRONG_MD5})

LANES = ("moto in-process", "moto server", "ceph rgw", "CALLVAULT_TEST_S3")


@dataclass(frozen=True)
class Lane:
    name: str
    endpoint: str | None
    keys: tuple[str, str]
    region: str
    lenient: frozenset[str]
    location: str | None  # what the store reports as a bucket's location; None: not known up front
    fetch: Callable[[str], tuple[int, bytes]]  # a plain HTTP GET, as a coach's browser does
    # The KMS that holds the clients' keys: "" for boto3's own endpoint (moto in-process answers it),
    # None where the lane has none (objects are not sealed there).
    kms_endpoint: str | None = ""


def _urllib_get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - a test's own store
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as refused:
        return int(refused.code), b""


def _requests_get(url: str) -> tuple[int, bytes]:
    """moto in-process answers HTTP only through `requests`, which it patches."""
    answer = requests.get(url, timeout=10)
    return answer.status_code, answer.content


@contextlib.contextmanager
def open_lane(name: str) -> Iterator[Lane]:
    """Start the store (or skip, saying why); stop it at the end."""
    import pytest

    region = "eu-west-1"
    if name == "moto in-process":
        from moto import mock_aws

        with mock_aws():
            yield Lane(name, None, ("testing", "testing"), region, MOTO_LENIENCE, region, _requests_get)
    elif name == "moto server":
        from callvault.embedded.stack import EmbeddedStack

        stack = EmbeddedStack()
        stack.start_store()
        try:
            yield Lane(name, stack.s3_endpoint, ("testing", "testing"), region, MOTO_LENIENCE, region,
                       _urllib_get, stack.s3_endpoint)  # fmt: skip
        finally:
            stack.stop()
    elif name == "ceph rgw":
        why = rgw.missing()
        if why:
            pytest.skip(why)
        from callvault.embedded.stack import EmbeddedStack

        kms = EmbeddedStack()  # RGW has no KMS API: moto's server holds the keys, RGW the bytes
        kms.start_store()
        try:
            with rgw.CephRGW() as gateway:
                # RGW knows no AWS region; asking for one proves `storage init` copes.
                yield Lane(name, gateway.endpoint, (rgw.ACCESS_KEY, rgw.SECRET_KEY), region, frozenset(),
                           "default", _urllib_get, kms.s3_endpoint)  # fmt: skip
        finally:
            kms.stop()
    elif name == "CALLVAULT_TEST_S3":
        endpoint = os.environ.get("CALLVAULT_TEST_S3")
        if not endpoint:
            pytest.skip("CALLVAULT_TEST_S3 is not set: no store of your own (MinIO, AWS) to run the case on")
        keys = (
            os.environ.get("CALLVAULT_TEST_S3_ACCESS_KEY", "callvault-dev"),
            os.environ.get("CALLVAULT_TEST_S3_SECRET_KEY", "callvault-dev-secret"),
        )
        yield Lane(name, endpoint, keys, os.environ.get("CALLVAULT_TEST_S3_REGION", "us-east-1"),
                   frozenset(), None, _urllib_get, os.environ.get("CALLVAULT_TEST_KMS"))  # fmt: skip
    else:  # pragma: no cover - a typo in LANES
        raise ValueError(f"no store lane called {name!r}")
