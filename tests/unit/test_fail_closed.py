"""Secrets and tokens fail closed: no dev value or placeholder off loopback, bounded lifetimes.

Each test here failed on main before issue 14 (the closing note says how).
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from callvault.api.ranges import RangeNotSatisfiable, parse_range
from callvault.api.tokens import (
    API_AUDIENCE,
    ISSUER,
    AudioLink,
    TokenRejected,
    issue_audio_link,
    issue_token,
    link_opens_its_recording,
    read_audio_link,
    read_token,
)
from callvault.rules.access import Role
from callvault.rules.secret_form import weak_because
from callvault.settings import DEV_API_TOKEN_SECRET, Settings

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
SECRET = secrets.token_hex(32)
REMOTE = {
    "kafka_bootstrap": "kafka-kafka-bootstrap.kafka:9092",
    "s3_endpoint": "https://s3.eu-west-1.amazonaws.com",
    "kafka_allow_plaintext_reason": "these tests are about secrets; the transport has its own below",
}
STRONG = {
    "pseudonym_key": secrets.token_hex(32),
    "api_token_secret": secrets.token_urlsafe(32),
    "audit_signing_key": secrets.token_hex(32),
}


@pytest.mark.parametrize("env", ["dev", "prod"])
def test_dev_secrets_are_refused_off_loopback_whatever_env_says(env: str) -> None:
    with pytest.raises(ValueError, match="CALLVAULT_PSEUDONYM_KEY is the published dev value"):
        Settings(env=env, **REMOTE).check_production_ready()
    with pytest.raises(ValueError, match="CALLVAULT_API_TOKEN_SECRET is the published dev value"):
        Settings(env=env, **REMOTE, pseudonym_key=STRONG["pseudonym_key"]).check_production_ready()
    with pytest.raises(ValueError, match="CALLVAULT_AUDIT_SIGNING_KEY is the published dev value"):
        Settings(
            env=env,
            **REMOTE,
            pseudonym_key=STRONG["pseudonym_key"],
            api_token_secret=STRONG["api_token_secret"],
        ).check_production_ready()


def test_an_audit_signing_key_that_is_not_an_ed25519_seed_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="32-byte Ed25519 seed"):
        Settings(audit_signing_key="not-a-key")


def test_dev_s3_keys_are_refused_off_loopback_and_unset_keys_mean_the_credential_chain() -> None:
    with pytest.raises(ValueError, match="S3_ACCESS_KEY/CALLVAULT_S3_SECRET_KEY are the dev values"):
        Settings(
            **REMOTE, **STRONG, s3_access_key="callvault-dev", s3_secret_key="callvault-dev-secret"
        ).check_production_ready()
    chain = Settings(**REMOTE, **STRONG)
    chain.check_production_ready()
    assert chain.s3_keys() is None  # boto3 then uses the pod's identity or the instance profile
    assert Settings().s3_keys() == ("callvault-dev", "callvault-dev-secret")  # the embedded store


@pytest.mark.parametrize(
    "value",
    [
        "replace: 32+ random bytes; rotating it breaks every pseudonym, so never rotate casually",
        "replace-with-32-random-bytes-replace-with-32-random-bytes",
        "a-real-secret-of-some-length-but-not-random",
        "x" * 64,
        "ab" * 40,
        "0123456789abcdef",  # hex, but 8 bytes
        DEV_API_TOKEN_SECRET,
    ],
)
def test_placeholder_like_secrets_are_refused(value: str) -> None:
    assert weak_because(value) is not None
    with pytest.raises(ValueError, match="refusing to run"):
        Settings(
            **REMOTE, pseudonym_key=value, api_token_secret=STRONG["api_token_secret"]
        ).check_production_ready()


@pytest.mark.parametrize(
    "value",
    [secrets.token_hex(32), secrets.token_urlsafe(32), secrets.token_bytes(48).hex()],
    ids=["token_hex", "token_urlsafe", "hex_of_48_bytes"],  # the same ids in every collection (xdist)
)
def test_generated_secrets_pass(value: str) -> None:
    assert weak_because(value) is None


def test_on_loopback_with_env_dev_the_dev_values_run() -> None:
    Settings().check_production_ready()  # the embedded stack: dev, every endpoint this machine
    Settings(
        kafka_bootstrap="localhost:9092,[::1]:9093", s3_endpoint="http://127.0.0.2:9000",
        kms_endpoint="http://127.0.0.2:9000",
    ).check_production_ready()  # fmt: skip
    assert not Settings(kafka_bootstrap="127.0.0.1:9092,kafka:9092").on_loopback
    assert not Settings(s3_endpoint="").on_loopback  # AWS itself
    # Dev on loopback: the store's endpoint answers KMS too (moto). The clients' keys in AWS KMS: not here.
    assert Settings(s3_endpoint="http://127.0.0.2:9000").kms_url == "http://127.0.0.2:9000"
    assert Settings(s3_endpoint="http://127.0.0.2:9000", env="prod").kms_url is None
    assert not Settings(s3_endpoint="http://127.0.0.2:9000", env="prod").on_loopback
    elsewhere = Settings(s3_endpoint="http://127.0.0.2:9000", kms_endpoint="https://kms.example.eu")
    assert elsewhere.kms_url == "https://kms.example.eu" and not elsewhere.on_loopback


# Production behind sidecar proxies (a service mesh, Dapr, `kubectl port-forward`): every endpoint on
# 127.0.0.1. On main before issue 25 the dev secrets ran there; loopback alone proves nothing.
SIDECARS = {
    "kafka_bootstrap": "127.0.0.1:9092",
    "s3_endpoint": "http://127.0.0.1:9000",
    "kms_endpoint": "http://127.0.0.1:9001",
}


@pytest.mark.parametrize(
    "name", ["CALLVAULT_PSEUDONYM_KEY", "CALLVAULT_API_TOKEN_SECRET", "CALLVAULT_AUDIT_SIGNING_KEY"]
)
def test_env_prod_refuses_the_dev_values_on_loopback_too(name: str) -> None:
    settings = Settings(env="prod", **SIDECARS)
    assert settings.on_loopback and not settings.dev_values_allowed
    with pytest.raises(ValueError, match=f"{name} is the published dev value.*CALLVAULT_ENV is prod"):
        settings.check_production_ready()
    assert settings.s3_keys() is None, "no dev S3 keys either: the default credential chain"


def test_env_prod_refuses_placeholders_on_loopback() -> None:
    placeholder = "replace-with-32-random-bytes-replace-with-32-random-bytes"
    with pytest.raises(ValueError, match="CALLVAULT_API_TOKEN_SECRET"):
        weak = {**STRONG, "api_token_secret": placeholder}
        Settings(env="prod", **SIDECARS, **weak).check_production_ready()
    Settings(env="prod", **SIDECARS, **STRONG).check_production_ready()  # generated secrets run


def test_an_api_bound_off_loopback_refuses_the_dev_token_secret() -> None:
    """Anyone on the network could mint an admin token with the published secret."""
    settings = Settings(api_host="0.0.0.0")
    assert not settings.dev_values_allowed
    refused = "CALLVAULT_API_TOKEN_SECRET is the published dev value.*bind address"
    with pytest.raises(ValueError, match=refused):
        settings.check_production_ready()


def test_env_is_dev_or_prod() -> None:
    with pytest.raises(ValueError, match="env"):
        Settings(env="staging")  # a third word would leave unclear which rule applies


# -- tokens ------------------------------------------------------------------------------


def test_a_token_cannot_outlive_the_maximum() -> None:
    with pytest.raises(ValueError, match="valid for 24 h at most"):
        issue_token(SECRET, "c@acme", Role.QA, ["acme"], NOW, timedelta(days=30), timedelta(hours=24))
    forged = jwt.encode(
        {"iss": ISSUER, "aud": API_AUDIENCE, "sub": "c", "role": "qa", "tenants": ["acme"], "jti": "j",
         "iat": int(NOW.timestamp()), "exp": int((NOW + timedelta(days=365)).timestamp())},
        SECRET, algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(TokenRejected, match="issued for longer than the 24 h"):
        read_token(SECRET, forged, NOW, timedelta(hours=24))


def test_a_token_not_yet_valid_says_so() -> None:
    early = jwt.encode(
        {"iss": ISSUER, "aud": API_AUDIENCE, "sub": "c", "role": "qa", "tenants": ["acme"], "jti": "j",
         "iat": int(NOW.timestamp()), "nbf": int((NOW + timedelta(hours=1)).timestamp()),
         "exp": int((NOW + timedelta(hours=2)).timestamp())},
        SECRET, algorithm="HS256",
    )  # fmt: skip
    with pytest.raises(TokenRejected, match="not valid before 2026-12-01 11:00:00 UTC"):
        read_token(SECRET, early, NOW)
    read_token(SECRET, early, NOW + timedelta(hours=1))


def _link(**patch: object) -> AudioLink:
    values: dict[str, object] = {
        "tenant": "acme", "call_id": "c-1", "bucket": "callvault-recordings",
        "key": "acme/2026/12/01/c-1.wav",
        "content_type": "audio/wav", "size_bytes": 10, "sha256": "0" * 64, "recording_expires_at": None,
        "expires_at": NOW + timedelta(minutes=5), "access_id": "a", "subject": "c@acme", **patch,
    }  # fmt: skip
    return AudioLink(**values)  # type: ignore[arg-type]


def test_an_audio_link_is_refused_from_its_stated_expiry() -> None:
    token = issue_audio_link(SECRET, _link())
    read_audio_link(SECRET, token, NOW + timedelta(minutes=4, seconds=59))
    with pytest.raises(TokenRejected, match="expired"):
        read_audio_link(SECRET, token, NOW + timedelta(minutes=5))


@pytest.mark.parametrize(
    ("patch", "opens"),
    [
        ({}, True),
        ({"bucket": "callvault-exports", "key": "acme/6f1c1f55.zip"}, False),
        ({"bucket": "callvault-audit"}, False),
        ({"key": "beta/2026/12/01/c-1.wav"}, False),
        ({"key": "acme/2026/12/01/c-2.wav"}, False),
        ({"key": "acme/../beta/2026/12/01/c-1.wav"}, False),
    ],
)
def test_an_audio_link_opens_only_its_calls_recording(patch: dict[str, str], opens: bool) -> None:
    assert link_opens_its_recording(_link(**patch), "callvault-recordings") is opens


# -- absurd input: 416 or 422, never 500 ------------------------------------------------


def test_a_range_with_thousands_of_digits_is_unsatisfiable_not_an_error() -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=" + "9" * 5000 + "-", 100)
    assert parse_range("bytes=0-" + "9" * 5000, 100) is not None
    assert parse_range("bytes=-" + "9" * 5000, 100) is not None


# -- bodies: the token before the body, and never an unbounded one -------------------------


async def _through_guard(headers: list[tuple[bytes, bytes]], chunks: list[bytes]) -> tuple[int, int]:
    """Send a request through BodyGuard to an app that reads its body; (status, chunks the app read)."""
    from callvault.api.body_guard import BodyGuard

    read = 0

    async def app(scope: object, receive: object, send: object) -> None:
        nonlocal read
        while True:
            message = await receive()  # type: ignore[operator]
            read += 1
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"ok"})  # type: ignore[operator]

    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, object]:
        return pending.pop(0)

    answers: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        answers.append(message)

    guard = BodyGuard(
        app, max_bytes=1024, check_token=lambda h: None if h == "Bearer good" else "send a token"
    )
    scope = {"type": "http", "method": "POST", "path": "/api/v1/x", "headers": headers}
    await guard(scope, receive, send)  # type: ignore[arg-type]
    return int(answers[0]["status"]), read  # type: ignore[arg-type]


async def test_a_body_without_a_good_token_is_never_read() -> None:
    status, read = await _through_guard([(b"content-length", b"67108864")], [b"x" * 1000] * 5)
    assert (status, read) == (401, 0)


async def test_a_body_past_the_limit_is_413_declared_or_streamed() -> None:
    good = (b"authorization", b"Bearer good")
    assert await _through_guard([good, (b"content-length", b"5000")], [b"x" * 5000]) == (413, 0)
    status, read = await _through_guard([good], [b"x" * 600, b"x" * 600, b"x" * 600])  # chunked
    assert status == 413 and read == 1
    assert await _through_guard([good, (b"content-length", b"10")], [b"x" * 10]) == (200, 1)


def test_the_default_bucket_names_are_refused_on_aws() -> None:
    """On AWS bucket names are global: `callvault-recordings` is anyone's (issue 19, item 5)."""
    aws = {**REMOTE, **STRONG, "s3_endpoint": ""}
    with pytest.raises(
        ValueError, match="CALLVAULT_RECORDINGS_BUCKET is the default name 'callvault-recordings'"
    ):
        Settings(**aws).check_production_ready()
    named = {
        f"{kind}_bucket": f"acme-callvault-{kind}"
        for kind in ("staging", "recordings", "metadata", "audit", "exports")
    }
    Settings(**aws, **named).check_production_ready()
    with pytest.raises(ValueError, match="is still the placeholder 'your-org-callvault-audit'"):
        Settings(**{**REMOTE, **STRONG, "audit_bucket": "your-org-callvault-audit"}).check_production_ready()


# -- Kafka's transport (issue 26, item 2) ------------------------------------------------------------

BROKERS = {"kafka_bootstrap": "kafka-kafka-bootstrap.kafka:9093", "s3_endpoint": REMOTE["s3_endpoint"]}


def test_plaintext_kafka_off_this_machine_is_refused_unless_a_reason_is_given() -> None:
    """On main every client spoke plain text to any broker, and nothing said so."""
    with pytest.raises(ValueError, match="CALLVAULT_KAFKA_ALLOW_PLAINTEXT_REASON"):
        Settings(**BROKERS, **STRONG).check_production_ready()
    with pytest.raises(ValueError, match="SASL_PLAINTEXT"):
        Settings(
            **BROKERS, **STRONG, kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_username="worker", kafka_sasl_password="w",
        ).check_production_ready()  # fmt: skip
    said = Settings(**BROKERS, **STRONG, kafka_allow_plaintext_reason="a private VLAN with MACsec")
    said.check_production_ready()
    notice = said.plaintext_notice()
    assert notice is not None and notice.endswith(
        "to kafka-kafka-bootstrap.kafka:9093, because: a private VLAN with MACsec"
    )
    tls = Settings(
        **BROKERS, **STRONG, kafka_security_protocol="SASL_SSL", kafka_sasl_username="worker",
        kafka_sasl_password="w",
    )  # fmt: skip
    tls.check_production_ready()
    assert tls.plaintext_notice() is None
    assert Settings().plaintext_notice() is None, "the embedded broker is on this machine"


def test_incomplete_kafka_security_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="needs CALLVAULT_KAFKA_SASL_USERNAME and CALLVAULT_KAFKA_SASL_PASS"):
        Settings(kafka_security_protocol="SASL_SSL")
    with pytest.raises(ValueError, match="CALLVAULT_KAFKA_CERT_FILE and CALLVAULT_KAFKA_KEY_FILE go"):
        Settings(kafka_security_protocol="SSL", kafka_cert_file="/etc/callvault/user.crt")
    with pytest.raises(ValueError, match="is for TLS"):
        Settings(kafka_cert_file="/c", kafka_key_file="/k")


def test_every_kafka_client_gets_the_same_security_options(tmp_path) -> None:  # noqa: ANN001
    from callvault.stream.kafka_security import client_options, faust_credentials

    sasl = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="api", kafka_sasl_password="pw")
    options = client_options(sasl)
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "api" and options["ssl_context"] is not None
    credentials = faust_credentials(sasl)
    assert credentials.username == "api" and credentials.mechanism.value == "SCRAM-SHA-512"
    assert client_options(Settings()) == {"security_protocol": "PLAINTEXT"}
    with pytest.raises(ValueError, match="CALLVAULT_KAFKA_CA_FILE"):
        client_options(Settings(kafka_security_protocol="SSL", kafka_ca_file=str(tmp_path / "missing.pem")))
