"""A real Apache Kafka broker (KRaft, broker and controller in one process) as a child process.

Tansu is the embedded stack's broker; Apache Kafka is what users run, and where
the two differ Apache Kafka is the truth. `make kafka` resolves the pinned
`org.apache.kafka:kafka_2.13` and its runtime dependencies from Maven Central
into `.kafka/lib/` (`kafka/pom.xml`, checked against `kafka/SHA256SUMS`); this
module formats a single-node KRaft log directory (`StorageTool format
--standalone`), starts `kafka.Kafka` on free loopback ports with a small heap,
and calls it ready when a metadata request names the broker, not when a log
line says so.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

from callvault.embedded.processes import ChildProcess, free_port, tcp_open
from callvault.rules.kafka_acls import Acl

VERSION = "4.1.1"  # kafka/pom.xml pins the same
HEAP = os.environ.get("CALLVAULT_KAFKA_HEAP", "512m")
_LIB_ENV = "CALLVAULT_KAFKA_LIB"  # another folder of the broker's jars (a developer's own build)
_REPO_LIB = Path(__file__).resolve().parents[3] / ".kafka" / "lib"

_LOG4J2 = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Logger:
      - name: kafka
        level: WARN
      - name: org.apache.kafka
        level: WARN
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


def kafka_lib() -> Path | None:
    """The folder of the broker's jars, or None when `make kafka` has not resolved them here."""
    lib = Path(os.environ.get(_LIB_ENV) or _REPO_LIB)
    return lib if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")) else None


def missing_reason() -> str | None:
    """Why no Apache Kafka broker can start here; None when one can."""
    if shutil.which("java") is None:
        return "no java on PATH (Apache Kafka needs Java 17)"
    if kafka_lib() is None:
        return f"the broker's jars are not in {_REPO_LIB} (run `make kafka`, or set {_LIB_ENV})"
    return None


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes in URL-safe base64, as Kafka's own Uuid.randomUuid.

    Like Kafka's, it never starts with '-': the storage tool's argument parser would read such an
    id as an option ("--cluster-id: expected one argument"), one format in 64 (a red CI run).
    """
    while True:
        found = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not found.startswith("-"):
            return found


@dataclass(frozen=True)
class Secured:
    """A SASL_SSL listener: the broker's certificate (for 127.0.0.1) and the SCRAM-SHA-512 users; and,
    with `mtls_port`, an SSL listener that requires a client certificate signed by `client_ca`, whose
    CN is the user (Strimzi's `authentication: tls`)."""

    keystore: Path  # PEM: the broker's private key (PKCS#8) and certificate
    users: dict[str, str]  # name -> password, created when the log directory is formatted
    port: int  # the SASL_SSL listener; `ApacheKafka.port` stays a PLAINTEXT one for the broker itself
    mtls_port: int | None = None
    client_ca: Path | None = None  # PEM: the CA whose client certificates the mTLS listener takes


class ApacheKafka:
    """One node, both roles, PLAINTEXT on loopback; its data in `run_dir/kafka`, kept across restarts.

    With `secured`, clients connect to a SASL_SSL listener (TLS, SCRAM-SHA-512 users) and the
    PLAINTEXT one carries only the broker's own traffic.
    """

    def __init__(self, run_dir: Path, port: int, secured: Secured | None = None) -> None:
        self.run_dir = run_dir / "kafka"
        self.port = port
        self.controller_port = free_port()
        self.secured = secured
        self._formatted = False

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _config(self) -> Path:
        data = self.run_dir / "data"
        lines = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"127.0.0.1:{self.controller_port}",
            "listeners": f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "PLAINTEXT",
            "log.dirs": str(data),
            # One node: every internal topic has one replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",  # callvault creates what it uses, as on a real cluster
            "num.partitions": "1",
        }
        if self.secured is not None:
            secure = f"SASL_SSL://127.0.0.1:{self.secured.port}"
            lines["listeners"] += f",{secure}"
            lines["advertised.listeners"] += f",{secure}"
            lines["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
            lines["sasl.enabled.mechanisms"] = "SCRAM-SHA-512"
            lines["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"] = (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            )
            lines["ssl.keystore.type"] = "PEM"
            lines["ssl.keystore.location"] = str(self.secured.keystore)
            if self.secured.mtls_port is not None and self.secured.client_ca is not None:
                mtls = f"SSL://127.0.0.1:{self.secured.mtls_port}"
                lines["listeners"] += f",{mtls}"
                lines["advertised.listeners"] += f",{mtls}"
                lines["listener.security.protocol.map"] += ",SSL:SSL"
                lines["listener.name.ssl.ssl.client.auth"] = "required"
                lines["listener.name.ssl.ssl.truststore.type"] = "PEM"
                lines["listener.name.ssl.ssl.truststore.location"] = str(self.secured.client_ca)
                # The certificate's CN is the user, as Strimzi's tls users are: User:callvault-api.
                lines["ssl.principal.mapping.rules"] = "RULE:^CN=([^,]+)$/$1/,DEFAULT"
            # ACLs decide; the only super user is the broker's own PLAINTEXT and controller traffic.
            lines["authorizer.class.name"] = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            lines["super.users"] = "User:ANONYMOUS"
            lines["allow.everyone.if.no.acl.found"] = "false"
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        (self.run_dir / "log4j2.yaml").write_text(_LOG4J2)
        return path

    def _java(self, main: str, *args: str, heap: str = HEAP) -> list[str]:
        lib = kafka_lib()
        assert lib is not None, missing_reason()
        return [
            "java", f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
            f"-Dlog4j2.configurationFile={self.run_dir / 'log4j2.yaml'}",
            "-cp", f"{lib}/*", main, *args,
        ]  # fmt: skip

    def format(self) -> None:
        """A fresh KRaft log directory with a new cluster id (once; a restart keeps the data)."""
        config = self._config()
        if self._formatted:
            return
        tool = "kafka.tools.StorageTool"
        argv = self._java(
            tool, "format", "--standalone", f"--cluster-id={_cluster_id()}", "-c", str(config), heap="256m"
        )
        for name, password in (self.secured.users if self.secured else {}).items():
            argv += ["--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]"]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"formatting the Kafka log directory failed: {done.stderr.strip()[-500:]}")
        self._formatted = True

    def start(self, timeout: float = 60.0) -> ChildProcess:
        self.format()
        child = ChildProcess(
            f"Kafka broker (Apache Kafka {VERSION})",
            self._java("kafka.Kafka", str(self.run_dir / "server.properties")),
            self.run_dir / "broker.log",
        )
        child.start()
        child.wait_ready(lambda: metadata_names_a_broker(self.bootstrap), timeout, "answering metadata")
        return child


def grant(broker: ApacheKafka, user: str, acl: Acl) -> None:
    """Add one ACL for `User:{user}` through the broker's own PLAINTEXT listener (Kafka's AclCommand)."""
    argv = broker._java(  # noqa: SLF001 - the same JVM options and classpath
        "org.apache.kafka.tools.AclCommand", "--bootstrap-server", broker.bootstrap, "--add",
        "--allow-principal", f"User:{user}", f"--{acl.resource}", acl.name, heap="128m",
    )  # fmt: skip
    for operation in acl.operations:
        argv += ["--operation", operation]
    if acl.prefixed:
        argv += ["--resource-pattern-type", "prefixed"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"granting {acl} to {user} failed: {(done.stderr or done.stdout).strip()[-500:]}")


def metadata_names_a_broker(bootstrap: str, timeout_s: float = 3.0) -> bool:
    """Whether a metadata request to `bootstrap` is answered with at least one broker.

    Called from synchronous code (fixtures, the demo), which may itself run inside
    an event loop: the request runs on a loop of its own in a short-lived thread.
    """
    host, _, port = bootstrap.rpartition(":")
    if not tcp_open(host, int(port)):
        return False  # not listening yet: asking would only fill the log with aiokafka's complaints
    answer: list[bool] = []

    async def ask() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout_s * 1000))
        try:
            await asyncio.wait_for(admin.start(), timeout_s)
            cluster = await asyncio.wait_for(admin.describe_cluster(), timeout_s)
            answer.append(bool(cluster.get("brokers")))
        finally:
            await admin.close()

    def run() -> None:
        try:
            asyncio.run(ask())
        except Exception:  # noqa: BLE001 - not up yet, whatever the reason: ask again
            answer.append(False)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout_s * 3)
    return bool(answer and answer[0])
