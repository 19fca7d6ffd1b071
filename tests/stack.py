"""Where the tests get a Kafka broker and an S3 endpoint.

In order: servers named by CALLVAULT_TEST_KAFKA / CALLVAULT_TEST_S3; Apache
Kafka and MinIO containers when a Docker engine answers (testcontainers); else
the embedded stack (Tansu and moto as child processes). One per test session.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from callvault.embedded.stack import EmbeddedStack


@dataclass(frozen=True)
class Servers:
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    kind: str


def embedded_servers(stack: EmbeddedStack, kind: str | None = None) -> Servers:
    """The servers of an embedded stack (moto takes any credentials; these are the dev ones)."""
    kind = kind or f"embedded ({stack.broker_name}, moto)"
    return Servers(stack.kafka_bootstrap, stack.s3_endpoint, "callvault-dev", "callvault-dev-secret", kind)


def _docker_answers() -> bool:
    if os.environ.get("CALLVAULT_TEST_NO_DOCKER"):
        return False
    try:
        import docker

        client = docker.from_env(timeout=3)
        client.ping()
        return True
    except Exception:  # noqa: BLE001 - no engine, no socket, no permission: all mean "no"
        return False


@contextlib.contextmanager
def _containers() -> Iterator[Servers]:
    from testcontainers.kafka import KafkaContainer
    from testcontainers.minio import MinioContainer

    with KafkaContainer().with_kraft() as kafka, MinioContainer() as minio:
        cfg = minio.get_config()
        yield Servers(
            kafka.get_bootstrap_server(),
            f"http://{cfg['endpoint']}",
            cfg["access_key"],
            cfg["secret_key"],
            "containers (Apache Kafka, MinIO)",
        )


@contextlib.contextmanager
def _embedded() -> Iterator[Servers]:
    from callvault.embedded.stack import EmbeddedStack

    with EmbeddedStack() as stack:
        yield embedded_servers(stack)


@contextlib.contextmanager
def test_servers() -> Iterator[Servers]:
    kafka = os.environ.get("CALLVAULT_TEST_KAFKA")
    s3 = os.environ.get("CALLVAULT_TEST_S3")
    if kafka and s3:
        yield Servers(
            kafka,
            s3,
            os.environ.get("CALLVAULT_TEST_S3_ACCESS_KEY", "callvault-dev"),
            os.environ.get("CALLVAULT_TEST_S3_SECRET_KEY", "callvault-dev-secret"),
            "provided by CALLVAULT_TEST_KAFKA / CALLVAULT_TEST_S3",
        )
    elif _docker_answers():
        with _containers() as servers:
            yield servers
    else:
        with _embedded() as servers:
            yield servers
