"""Kafka over TLS with SCRAM-SHA-512 users, on a real Apache Kafka broker (issue 26, item 2).

The broker here has a SASL_SSL listener with a certificate from a CA this test
makes (with `cryptography`) and one SCRAM user per component, created when its
log directory is formatted. The worker (faust's clients included), the API's
access log, the command line and the platform's producer each connect with
their own user. A wrong password, a CA that did not sign the broker's
certificate, and a plaintext client are refused with a sentence that names the
setting to fix. On main none of this could connect: there were no such settings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import TopicAuthorizationFailedError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from callvault.api.tokens import issue_token
from callvault.embedded.kafka_broker import ApacheKafka, Secured, grant, missing_reason
from callvault.embedded.processes import ChildProcess, free_port
from callvault.rules.access import Role
from callvault.rules.kafka_acls import acls
from callvault.settings import Settings
from callvault.stream.bus import make_producer
from callvault.stream.kafka_security import client_options
from tests.cli import run_callvault
from tests.conftest import ARTIFACTS, make_settings, prepare_async, settings_env, spawn_api, spawn_worker
from tests.integration.helpers import Bus
from tests.stack import Servers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# Each component's Kafka user, and which component's grants (rules/kafka_acls.py) it gets.
USERS = {name: secrets.token_urlsafe(12) for name in ("worker", "api", "cli", "platform", "auditor", "tests")}
COMPONENT_OF = {"worker": "worker", "api": "api", "cli": "dpo", "platform": "platform", "auditor": "auditor"}
# The test's own eyes, not a callvault component: it sends as the platform and watches as the DPO does.
WATCHER = ("platform", "dpo")


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _ca(common: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(common)).issuer_name(_name(common))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    return key, cert


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _broker_keystore(folder: Path) -> tuple[Path, Path, Path]:
    """The broker's keystore (PKCS#8 key and certificate for 127.0.0.1), its CA, and a stranger CA."""
    ca_key, ca = _ca("callvault test CA")
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name("kafka")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    keystore = folder / "broker.pem"
    keystore.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + _pem(cert)
        + _pem(ca)
    )
    (folder / "ca.pem").write_bytes(_pem(ca))
    stranger_key, stranger = _ca("someone else's CA")
    (folder / "stranger-ca.pem").write_bytes(_pem(stranger))
    _client_certificate(folder / "api", "api", ca_key, ca)  # the API as an mTLS user (CN = its user)
    _client_certificate(folder / "forged-api", "api", stranger_key, stranger)  # the same CN, another CA
    return keystore, folder / "ca.pem", folder / "stranger-ca.pem"


def _client_certificate(
    stem: Path, user: str, ca_key: ec.EllipticCurvePrivateKey, ca: x509.Certificate
) -> None:
    """`{stem}.crt` and `{stem}.key`: a client certificate whose CN is the Kafka user, signed by `ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(_name(user)).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    stem.with_suffix(".crt").write_bytes(_pem(cert))
    stem.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@pytest.fixture(scope="module")
def secure_broker() -> Iterator[tuple[ApacheKafka, Path, Path]]:
    reason = missing_reason()
    if reason is not None:
        pytest.skip(f"no Apache Kafka here: {reason}")
    run_dir = ARTIFACTS / f"secure-kafka-{secrets.token_hex(3)}"
    run_dir.mkdir(parents=True, exist_ok=True)
    keystore, ca, stranger = _broker_keystore(run_dir)
    broker = ApacheKafka(
        run_dir, free_port(), Secured(keystore, USERS, free_port(), mtls_port=free_port(), client_ca=ca)
    )
    child: ChildProcess = broker.start()
    try:
        yield broker, ca, stranger
    finally:
        child.stop()


def _as(base: Settings, user: str) -> Settings:
    """The same topics and buckets, as one component's own Kafka user."""
    return Settings(**{**base.model_dump(), "kafka_sasl_username": user, "kafka_sasl_password": USERS[user]})


@pytest.fixture(scope="module")
def secured(servers: Servers, secure_broker: tuple[ApacheKafka, Path, Path]) -> Settings:
    broker, ca, _ = secure_broker
    assert broker.secured is not None
    bootstrap = f"127.0.0.1:{broker.secured.port}"
    settings = make_settings(
        servers, "k" + secrets.token_hex(3),
        kafka_bootstrap=bootstrap, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="worker", kafka_sasl_password=USERS["worker"], kafka_ca_file=str(ca),
    )  # fmt: skip
    grants = [*COMPONENT_OF.items(), *(("tests", component) for component in WATCHER)]
    for user, component in grants:  # least privilege, as the StandardAuthorizer enforces it
        for acl in acls(component, settings.kafka_topics()):
            grant(broker, user, acl)
    asyncio.run(prepare_async(settings))  # the worker's user creates the topics
    return settings


async def test_the_worker_the_api_the_cli_and_the_platform_each_use_their_own_user(
    servers: Servers, secured: Settings
) -> None:
    worker = spawn_worker(secured, "worker-sasl-ssl")
    api, base, _ = spawn_api(_as(secured, "api"))
    try:
        async with Bus(_as(secured, "tests")) as bus:
            call = bus.script()
            await bus.send_call(call)
            archived = await bus.wait_types(
                call.call_id, "recording.archived", "metadata.archived", timeout=90
            )
            day = archived[0]["recording_started_at"][:10]

            token = issue_token(
                secured.api_token_secret.get_secret_value(), "coach@acme", Role.QA, ["acme"],
                dt.datetime.now(dt.UTC), dt.timedelta(hours=1), secured.token_max_lifetime,
            )  # fmt: skip
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                answer = await http.get(
                    f"/api/v1/calls/acme/{day}/{call.call_id}",
                    params={"purpose": "coaching"},
                    headers={"Authorization": f"Bearer {token}"},
                )
            assert answer.status_code == 200, answer.text
            await bus.wait_types(call.call_id, "recording.accessed", timeout=30)  # the API's user wrote it

            env = settings_env(_as(secured, "cli"))
            placed = await asyncio.to_thread(
                run_callvault, "hold", "place", call.call_id, "--tenant", "acme", "--reason", "case 7",
                env=env, timeout=90,
            )  # fmt: skip
            assert placed.returncode == 0, placed.stderr
            await bus.wait_types(call.call_id, "legal_hold.placed", timeout=30)
    finally:
        api.stop()
        worker.stop()


@pytest.mark.parametrize(
    ("case", "names"),
    [
        ("wrong password", "CALLVAULT_KAFKA_SASL_PASSWORD"),
        ("unknown CA", "CALLVAULT_KAFKA_CA_FILE"),
        ("plaintext", "CALLVAULT_KAFKA_SECURITY_PROTOCOL"),
    ],
)
def test_a_refused_client_gets_a_sentence_naming_the_setting(
    secured: Settings, secure_broker: tuple[ApacheKafka, Path, Path], case: str, names: str
) -> None:
    _, _, stranger = secure_broker
    env = settings_env(_as(secured, "cli"))
    if case == "wrong password":
        env["CALLVAULT_KAFKA_SASL_PASSWORD"] = "not-" + USERS["cli"]
    elif case == "unknown CA":
        env["CALLVAULT_KAFKA_CA_FILE"] = str(stranger)
    else:
        env["CALLVAULT_KAFKA_SECURITY_PROTOCOL"] = "PLAINTEXT"
    refused = run_callvault(
        "hold", "place", "c-none", "--tenant", "acme", "--reason", "r", env=env, timeout=120
    )
    assert refused.returncode == 2, (refused.returncode, refused.stderr[-2000:])
    assert names in refused.stderr and "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert USERS["cli"] not in refused.stderr, "a password never appears in a sentence"


async def _may_write(settings: Settings, topic: str) -> bool:
    producer = make_producer(settings, request_timeout_ms=10_000)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"{}", key=b"acl-probe")
    except TopicAuthorizationFailedError:
        return False
    finally:
        await producer.stop()
    return True


async def _may_read(settings: Settings, topic: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, **client_options(settings))
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()  # noqa: SLF001 - fresh metadata for this user
        if not consumer.partitions_for_topic(topic):
            return False  # not even allowed to see the topic
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        await consumer.getmany(timeout_ms=2000)
    except TopicAuthorizationFailedError:
        return False
    finally:
        await consumer.stop()
    return True


async def test_each_user_is_refused_what_is_not_its_own(secured: Settings) -> None:
    """issue 26, item 3: on main every client could write `commands` (erase a subject, release a hold)."""
    platform, api, auditor = (_as(secured, u) for u in ("platform", "api", "auditor"))
    assert await _may_write(platform, secured.call_events_topic)
    assert not await _may_write(platform, secured.commands_topic), "the platform may not command"
    assert not await _may_read(platform, secured.lifecycle_topic), "nor read the audit log"
    assert await _may_write(api, secured.lifecycle_topic)
    assert not await _may_write(api, secured.call_events_topic), "the API may not forge call events"
    assert await _may_read(auditor, secured.lifecycle_topic)
    assert not await _may_write(auditor, secured.lifecycle_topic), "the auditor reads only"

    # What the command line says when a user not the DPO's tries a command.
    env = settings_env(api)
    refused = await asyncio.to_thread(
        run_callvault, "hold", "place", "c-acl", "--tenant", "acme", "--reason", "r", env=env, timeout=120
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    said = refused.stderr.strip().splitlines()[-1]
    assert said.startswith("callvault: ") and "'api'" in said and "ACLs" in said, said
    assert "Traceback" not in refused.stderr


def _with_certificate(base: Settings, broker: ApacheKafka, ca: Path, stem: Path) -> Settings:
    """The same topics and buckets over the mTLS listener, as the user its certificate names."""
    assert broker.secured is not None and broker.secured.mtls_port is not None
    return Settings(**{
        **base.model_dump(), "kafka_bootstrap": f"127.0.0.1:{broker.secured.mtls_port}",
        "kafka_security_protocol": "SSL", "kafka_sasl_username": None, "kafka_sasl_password": None,
        "kafka_ca_file": str(ca), "kafka_cert_file": str(stem.with_suffix(".crt")),
        "kafka_key_file": str(stem.with_suffix(".key")),
    })  # fmt: skip


async def test_a_component_with_a_client_certificate_is_the_user_it_names(
    secured: Settings, secure_broker: tuple[ApacheKafka, Path, Path]
) -> None:
    """Issue 26: mTLS users (Strimzi's `authentication: tls`) were configured but never run on a broker.
    The API's certificate (CN=api) gets the API's ACLs on an SSL listener that requires one; the same
    CN signed by another CA is refused with a sentence naming CALLVAULT_KAFKA_CERT_FILE."""
    broker, ca, _ = secure_broker
    folder = ca.parent
    api = _with_certificate(secured, broker, ca, folder / "api")
    assert await _may_write(api, secured.lifecycle_topic), "the API's own grant, by its certificate"
    assert not await _may_write(api, secured.call_events_topic), "and no more"

    forged = _with_certificate(secured, broker, ca, folder / "forged-api")
    refused = await asyncio.to_thread(
        run_callvault, "hold", "place", "c-none", "--tenant", "acme", "--reason", "r",
        env=settings_env(forged), timeout=120,
    )  # fmt: skip
    assert refused.returncode == 2, (refused.returncode, refused.stderr[-2000:])
    assert "CALLVAULT_KAFKA_CERT_FILE" in refused.stderr and "Traceback" not in refused.stderr, (
        refused.stderr[-2000:]
    )
