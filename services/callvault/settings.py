"""Configuration: the contract's `CALLVAULT_*` variables, with defaults for the embedded stack."""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cached_property
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from callvault.observability.logs import LogFormat
from callvault.rules.audit_checkpoint import private_key, public_hex
from callvault.rules.client_policy import Bounds, Defaults
from callvault.rules.command_signature import SigningIdentity, parse_command_keys, parse_signing_identity
from callvault.rules.data_classes import data_classes
from callvault.rules.durations import CalendarDuration
from callvault.rules.kafka_acls import Topics
from callvault.rules.residency import EEA_COUNTRIES, EEA_REGIONS, check_country, outside_eea, parse_places
from callvault.rules.retention import RetentionPolicy
from callvault.rules.secret_form import bootstrap_hosts, endpoint_host, is_loopback_host, weak_because
from callvault.rules.sites import parse_sites

DEV_PSEUDONYM_KEY = "callvault-dev-only-pseudonym-key-do-not-use-in-production"
DEV_API_TOKEN_SECRET = "callvault-dev-only-api-token-secret-do-not-use-in-production"
# An Ed25519 seed everyone can read in this file: checkpoints it signs prove nothing off loopback.
DEV_AUDIT_SIGNING_KEY = "ca11ba11" * 8
# Likewise the embedded stack's command key: whoever reads this file may sign as it.
DEV_COMMAND_SIGNING_KEY = "callvault-dev:" + "c0dec0de" * 8
# The buckets of no data class; each data class names its own (`rules.data_classes`).
STAGING_BUCKET_SETTING = "staging_bucket"
SERVICE_BUCKET_SETTINGS = ("audit_bucket", "exports_bucket")
DEV_S3_ACCESS_KEY = "callvault-dev"
DEV_S3_SECRET_KEY = "callvault-dev-secret"
EMBEDDED_KAFKA = "127.0.0.1:19092"
EMBEDDED_S3 = "http://127.0.0.1:19000"


def _iso_duration(value: str) -> str:
    CalendarDuration.parse(value)  # a sentence naming the forms it takes, otherwise
    return value


# Every duration setting, a data class's default term included, is checked by its type.
IsoDuration = Annotated[str, AfterValidator(_iso_duration), Field(description="ISO 8601 duration")]


def bucket_settings() -> tuple[str, ...]:
    """Every bucket callvault is configured with: each is checked for placeholders and global defaults."""
    return (STAGING_BUCKET_SETTING, *(c.bucket_setting for c in data_classes()), *SERVICE_BUCKET_SETTINGS)


# The worker's faust table of call state: its changelog topic is named after it.
STATE_TABLE = "call-state"


class Settings(BaseSettings):
    """Every variable has a default that works against `callvault dev` with nothing set."""

    model_config = SettingsConfigDict(env_prefix="CALLVAULT_", env_file=".env", extra="ignore", frozen=True)

    # The contract's variables.
    kafka_bootstrap: str = EMBEDDED_KAFKA
    s3_endpoint: str = EMBEDDED_S3
    # Unset: the dev values on loopback, elsewhere the default AWS credential chain
    # (pod identity, instance profile, AWS_* variables).
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None
    s3_region: str = "eu-west-1"
    topic_prefix: str = "callvault."
    staging_bucket: str = "callvault-staging"
    recordings_bucket: str = "callvault-recordings"
    metadata_bucket: str = "callvault-metadata"
    audit_bucket: str = "callvault-audit"
    recording_retention: IsoDuration = "P1M"
    metadata_retention: IsoDuration = "P6M"
    timezone: str = "Europe/Brussels"
    disclosure_grace: IsoDuration = "PT5M"
    payment_margin: IsoDuration = Field(
        "PT2S", description="how far a recording pause must reach beyond each payment window, on both sides"
    )
    kms_endpoint: str = Field(
        "",
        description="the KMS holding each client's key; empty: AWS KMS in the region (with "
        "CALLVAULT_ENV=dev and the store on loopback: the store's endpoint, moto answering KMS too)",
    )
    encryption: Literal["on", "off"] = Field(
        "on",
        description="on: recordings and metadata are sealed under their client's key before they are "
        "written; off only with CALLVAULT_ENCRYPTION_OFF_REASON",
    )
    encryption_off_reason: str = Field(
        "",
        description="why new objects are stored unsealed (CALLVAULT_ENCRYPTION=off); printed at every start",
    )
    kms_region: str = Field("", description="the KMS's region; empty: CALLVAULT_S3_REGION's")
    kms_deletion_days: int = Field(
        7, ge=7, le=30, description="how long KMS waits before it destroys a shredded client's key (7 to 30)"
    )
    pause_silence_dbfs: float = Field(
        -50.0,
        le=0,
        ge=-100,
        description="the loudest a paused span of a PCM WAV recording may be (dBFS, 100 ms windows); "
        "louder is pause_not_silent",
    )
    pseudonym_key: SecretStr = SecretStr(DEV_PSEUDONYM_KEY)

    # Beyond the contract. Producers' uploads may live in another store than the
    # archive (the platform's own S3, say); unset, staging shares the archive's store.
    staging_s3_endpoint: str | None = Field(
        None, description="S3 endpoint of the staging bucket when it is not CALLVAULT_S3_ENDPOINT"
    )
    staging_s3_access_key: str | None = None
    staging_s3_secret_key: SecretStr | None = None
    staging_s3_region: str | None = None
    # Where data may be kept (see rules/residency.py): AWS regions or ISO 3166 countries.
    allowed_regions: str = Field(
        ",".join(EEA_REGIONS),
        description="where buckets may be: AWS regions, or countries of stores on premises; comma-separated",
    )
    allowed_regions_reason: str = Field(
        "",
        description="why places outside the EEA in CALLVAULT_ALLOWED_REGIONS are allowed (an adequacy "
        "decision, standard contractual clauses); logged at start",
    )
    storage_country: str | None = Field(
        None,
        description="ISO 3166 country of a store on premises (MinIO, Ceph RGW); decides instead of the "
        "location the store reports",
    )
    sites: str = Field(
        "",
        description="processing sites and their countries, e.g. be-machelen=BE,nl-weert=NL,ma-rabat=MA; "
        "once set, every API token must name one",
    )
    source_buckets: str = Field(
        "",
        description="buckets besides the staging bucket that a recording.stored may name, comma-separated",
    )

    # How every Kafka client (the worker and faust's own, the API's access log, the command line)
    # reaches the brokers: see `kafka_security.py` beside this file.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL", "SASL_PLAINTEXT"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL, SASL_SSL or SASL_PLAINTEXT; PLAINTEXT (and SASL_PLAINTEXT) off loopback "
        "only with CALLVAULT_KAFKA_ALLOW_PLAINTEXT_REASON",
    )
    kafka_sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"] = Field(
        "SCRAM-SHA-512", description="with SASL_SSL or SASL_PLAINTEXT"
    )
    kafka_sasl_username: str | None = Field(None, description="this component's Kafka user (SASL)")
    kafka_sasl_password: SecretStr | None = Field(None, description="its password (SASL)")
    kafka_ca_file: str | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL, SASL_SSL)"
    )
    kafka_cert_file: str | None = Field(None, description="PEM client certificate, for mutual TLS")
    kafka_key_file: str | None = Field(None, description="PEM private key of that certificate")
    kafka_allow_plaintext_reason: str = Field(
        "",
        description="why Kafka may be spoken in plain text off loopback (a private network with its own "
        "encryption, say); printed at every start",
    )

    # Tuning with safe defaults.
    env: Literal["dev", "prod"] = Field(
        "dev",
        description="dev or prod. Dev and placeholder secrets run only with dev and every endpoint (Kafka, "
        "S3, the API's bind address) on loopback; prod refuses them everywhere, loopback or not",
    )
    partitions: int = Field(4, ge=1, description="partitions of the topics callvault creates")
    replication_factor: int = Field(
        1,
        ge=1,
        le=7,
        description="replicas of every topic callvault or faust creates (its own, the changelog, the "
        "leader topic); 1 suits the embedded broker, a real cluster wants 3",
    )
    app_id: str = Field("callvault-worker", description="consumer group of the worker")
    max_event_bytes: int = Field(64 * 1024, ge=1024)
    source_retries: int = Field(3, ge=0, description="checks of a missing source before rejecting")
    source_retry_backoff: IsoDuration = "PT2S"
    source_stuck_s: float = Field(
        120.0,
        gt=0,
        description="how long one source may keep failing while the store answers others, before the "
        "call is rejected as source_unreadable (an outage of the whole store still blocks)",
    )
    s3_max_put_bytes: int = Field(
        5 * 1024**3,
        ge=1,
        description="largest object one PUT may write (5 GiB on AWS); larger exports go up in parts",
    )
    tick_interval_s: float = Field(1.0, gt=0, description="how often the worker wakes due calls")
    settled_state_ttl: IsoDuration = Field(
        "P1D", description="how long a decided call's state stays to absorb late duplicates"
    )
    purge_interval_s: float = Field(10.0, gt=0, description="how often the leader runs a purge pass")
    purge_rescan_s: float = Field(
        60.0, gt=0, description="how often a pass lists the store; passes in between use the last listing"
    )
    purge_batch_keys: int = Field(
        1000, ge=1, le=1000, description="versions deleted per DeleteObjects request and journal entry"
    )
    deletion_in_flight_s: float = Field(
        30.0, gt=0, description="age before a journaled deletion counts as interrupted and is finished"
    )
    audit_retention: IsoDuration = Field(
        "P5Y", description="object-lock retention of each audit segment (see docs/auditors.md)"
    )
    audit_signing_key: SecretStr = Field(
        SecretStr(DEV_AUDIT_SIGNING_KEY),
        description="Ed25519 seed (32 bytes, hex or base64) signing audit checkpoints; required outside dev",
    )
    audit_previous_signing_key: SecretStr | None = Field(
        None,
        description="while rotating: the key that signed the last checkpoint, which signs the hand-over",
    )
    audit_public_key: str | None = Field(
        None,
        description="hex of the Ed25519 public key an auditor trusts; default the signing key's public half",
    )
    command_keys: str = Field(
        "",
        description="who may issue commands: NAME=public key (hex), comma-separated, or @file with one a "
        "line; the worker carries out a command only when one of these keys signed it",
    )
    command_signing_key: SecretStr | None = Field(
        None,
        description="NAME:SEED of whoever sends commands from here (`callvault keys new NAME` makes one); "
        "the embedded stack's dev key when unset there",
    )
    command_max_age: IsoDuration = Field(
        "PT15M", description="how long after it was issued a command may first be taken (either side)"
    )
    audit_checkpoint_s: float = Field(3600.0, gt=0, description="how often the leader signs a checkpoint")
    audit_segment_records: int = Field(5000, ge=1, description="most lifecycle records in one segment")
    audit_flush_s: float = Field(30.0, gt=0, description="longest a lifecycle record waits for its segment")
    stop_wait_s: float = Field(
        5.0, ge=0, description="on SIGTERM, how long the worker lets its agents finish what they hold"
    )
    s3_max_concurrency: int = Field(16, ge=1, description="threads doing S3 calls off the loop")
    intake_one_hop: bool = Field(
        True,
        description="the intake processes a call event itself when its worker holds the call's "
        "partition (one hop: 0.3 ms of CPU an event less); false sends every event through `calls`",
    )
    batch_size: int = Field(
        64, ge=1, description="call messages read together; each call's state is written once a batch"
    )
    batch_wait_s: float = Field(0.05, gt=0, description="how long a batch waits to fill up")
    # Tansu waits half the session timeout on every group join: dev keeps them short.
    broker_session_timeout_s: float = 6.0
    broker_rebalance_timeout_s: float = 3.0
    broker_heartbeat_interval_s: float = 1.0
    # Tansu answers a partition's end offset with its last batch's first offset + 1,
    # so faust's table recovery stops short of a multi-record last batch and loses
    # state. One record per batch (1 byte) keeps it whole there; real Kafka needs no help.
    producer_max_batch_bytes: int = Field(
        16384, ge=1, description="largest producer batch; 1 on the embedded broker (Tansu)"
    )
    log_level: str = "info"
    log_format: LogFormat = Field("text", description="text, or json: an object a line")
    worker_http_host: str = Field("127.0.0.1", description="address of the worker's health and metrics")
    worker_http_port: int = Field(
        8081, ge=0, le=65535, description="port of the worker's /healthz, /readyz, /metrics (0: any free one)"
    )

    # The QA retrieval API (`callvault api`).
    api_host: str = Field("127.0.0.1", description="address the API listens on")
    api_port: int = Field(8080, ge=0, le=65535, description="port the API listens on")
    api_ops_host: str = Field("127.0.0.1", description="address of the API's ops listener")
    api_ops_port: int = Field(
        8082, ge=0, le=65535, description="port of /metrics, /openapi.json and /docs of the API (0: off)"
    )
    api_token_secret: SecretStr = Field(
        SecretStr(DEV_API_TOKEN_SECRET),
        description="HMAC key signing the API's tokens (HS256 JWTs); required outside dev",
    )
    api_max_body_bytes: int = Field(
        65536, ge=1024, description="largest request body the API reads (after checking the token)"
    )
    api_trusted_proxies: str = Field(
        "", description="addresses whose X-Request-ID is kept (as client_request_id), comma-separated"
    )
    api_token_max_lifetime: IsoDuration = Field(
        "PT24H", description="longest a token may be valid, issued or presented (hours, minutes)"
    )
    api_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        "auto",
        description="the API's event loop: auto (uvloop where installed, as uvicorn chooses), uvloop, or "
        "asyncio's own",
    )
    api_audio_mode: Literal["stream", "presigned"] = Field(
        "stream",
        description="stream: audio through the API; presigned: a short-lived S3 URL for a recording "
        "stored unsealed (a sealed one is streamed all the same: the store holds only its ciphertext)",
    )
    api_audio_link_s: int = Field(
        300, ge=10, le=3600, description="how long an audio link handed to a player stays valid"
    )
    api_max_search_days: int = Field(186, ge=1, description="widest date range one search may cover")
    api_search_budget: int = Field(
        200, ge=1, description="listings and document reads one search may make before it answers partial"
    )
    api_restrictions_ttl_s: float = Field(
        2.0, ge=0, description="how long the API trusts its copy of the restricted subjects"
    )

    # Subject requests (beyond the contract's table, additive).
    exports_bucket: str = Field("callvault-exports", description="where access-request exports wait")
    export_retention: IsoDuration = Field("P7D", description="how long an export exists")
    identity_check_max: IsoDuration = Field(
        "P1M",
        description="how long a request filed with --identity-pending may wait for its identity check "
        "before it shows as overdue",
    )
    export_link_s: int = Field(
        86400, ge=60, le=604800, description="how long an export's download link lasts (S3: 7 days at most)"
    )
    # Client policies (issue 16): the bounds within which a tenant's terms may be set.
    policy_shortest_term: IsoDuration = Field("P1D", description="the shortest term a client policy may set")
    policy_longest_term: IsoDuration = Field("P10Y", description="the longest term a client policy may set")
    policy_max_lead: IsoDuration = Field(
        "P1Y", description="how far ahead of its change a client-policy version may take effect"
    )

    @field_validator("disclosure_grace", "source_retry_backoff", "api_token_max_lifetime", "payment_margin")
    @classmethod
    def _exact(cls, value: str) -> str:
        if not CalendarDuration.parse(value).is_exact:
            raise ValueError(f"{value} must be hours, minutes or seconds (such as PT5M)")
        return value

    @field_validator("s3_endpoint", "staging_s3_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if not value:
            return value
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"'{value}' is not an S3 endpoint URL such as http://127.0.0.1:9000")
        return value

    @field_validator("allowed_regions")
    @classmethod
    def _places(cls, value: str) -> str:
        parse_places(value)
        return value

    @field_validator("storage_country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return check_country(value) if value else None

    @field_validator("sites")
    @classmethod
    def _sites(cls, value: str) -> str:
        parse_sites(value)
        return value

    @cached_property
    def site_countries(self) -> dict[str, str]:
        """The declared processing sites, by name: their ISO 3166 country."""
        return parse_sites(self.sites)

    @model_validator(mode="after")
    def _reason_for_places_outside_the_eea(self) -> Settings:
        outside = outside_eea(self.allowed_places)
        if outside and not self.allowed_regions_reason.strip():
            raise ValueError(
                f"CALLVAULT_ALLOWED_REGIONS allows {', '.join(outside)}, outside the EEA; say why in "
                "CALLVAULT_ALLOWED_REGIONS_REASON (the adequacy decision or safeguards that cover it)"
            )
        country = self.storage_country
        if country and country not in EEA_COUNTRIES and country not in self.allowed_places:
            raise ValueError(
                f"CALLVAULT_STORAGE_COUNTRY is {country}, outside the EEA and not in "
                "CALLVAULT_ALLOWED_REGIONS; add it there, with CALLVAULT_ALLOWED_REGIONS_REASON, only where "
                "an adequacy decision or safeguards cover it"
            )
        return self

    @property
    def allowed_places(self) -> frozenset[str]:
        """Where buckets may be: AWS regions, or countries for a store on premises."""
        return parse_places(self.allowed_regions)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"'{value}' is not an IANA time zone such as Europe/Brussels") from exc
        return value

    @field_validator("api_token_secret")
    @classmethod
    def _hs256_key(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes: it is an HS256 key (RFC 7518, section 3.2)")
        return value

    @field_validator("audit_signing_key", "audit_previous_signing_key")
    @classmethod
    def _ed25519_seed(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            private_key(value.get_secret_value())  # raises with the sentence
        return value

    @field_validator("command_keys")
    @classmethod
    def _command_keys_form(cls, value: str) -> str:
        parse_command_keys(value)  # raises with the entry at fault
        return value

    @field_validator("command_signing_key")
    @classmethod
    def _command_signing_key_form(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().strip():
            return None
        if value is not None:
            parse_signing_identity(value.get_secret_value())  # raises with the sentence, never the seed
        return value

    @field_validator("command_max_age")
    @classmethod
    def _command_window(cls, value: str) -> str:
        duration = CalendarDuration.parse(value)
        if not duration.is_exact or duration.as_timedelta() <= timedelta(0):
            raise ValueError("the command window is hours, minutes or seconds (such as PT15M)")
        return value

    @property
    def command_window(self) -> timedelta:
        return CalendarDuration.parse(self.command_max_age).as_timedelta()

    @property
    def trusted_command_keys(self) -> dict[str, str]:
        """The public keys the worker believes, by name: `CALLVAULT_COMMAND_KEYS`; on the embedded
        stack with none given, its dev key, so `make demo` works with nothing set."""
        keys = parse_command_keys(self.command_keys)
        if not keys and self.dev_values_allowed:
            dev = parse_signing_identity(DEV_COMMAND_SIGNING_KEY)
            keys = {dev.name: dev.public_key}
        return keys

    def command_identity(self) -> SigningIdentity:
        """Who signs the commands sent from here; ValueError with the setting to set if nobody may."""
        given = self.command_signing_key.get_secret_value() if self.command_signing_key else None
        if given is not None and (given.strip() != DEV_COMMAND_SIGNING_KEY or self.dev_values_allowed):
            return parse_signing_identity(given)
        if given is None and self.dev_values_allowed:
            return parse_signing_identity(DEV_COMMAND_SIGNING_KEY)
        state = "is the published dev key" if given is not None else "is not set"
        raise ValueError(
            f"CALLVAULT_COMMAND_SIGNING_KEY {state} ({self._why_not_dev()}): a command counts only when "
            "its issuer signs it; `callvault keys new NAME` makes a key pair, and the worker's "
            "CALLVAULT_COMMAND_KEYS must name its public half"
        )

    @property
    def trusted_audit_key(self) -> str:
        """The public key checkpoints are checked against: the one the auditor pinned.

        Deriving it from CALLVAULT_AUDIT_SIGNING_KEY would let the audited party choose the
        key its own log is checked against, so that is done on the embedded stack only
        (`dev_values_allowed`); anywhere else a key must be pinned (ValueError otherwise).
        """
        if self.audit_public_key:
            return self.audit_public_key.strip().lower()
        if self.dev_values_allowed:
            return public_hex(private_key(self.audit_signing_key.get_secret_value()))
        raise ValueError(
            "refusing to verify against a key derived from CALLVAULT_AUDIT_SIGNING_KEY, the audited "
            "party's own secret: pin the public key handed over at go-live with --public-key or "
            "CALLVAULT_AUDIT_PUBLIC_KEY (`callvault audit public-key` prints it)"
        )

    @field_validator("audit_public_key")
    @classmethod
    def _public_key_form(cls, value: str | None) -> str | None:
        if value is not None and value.strip() and not re.fullmatch(r"[0-9a-fA-F]{64}", value.strip()):
            raise ValueError("an audit public key is 32 bytes of Ed25519 as 64 hex characters")
        return value or None

    @field_validator("pseudonym_key")
    @classmethod
    def _key_length(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @property
    def on_loopback(self) -> bool:
        """Every endpoint callvault is configured with, and the API's bind address, is this machine."""
        hosts = [*bootstrap_hosts(self.kafka_bootstrap), endpoint_host(self.s3_endpoint), self.api_host]
        if self.staging_s3_endpoint:
            hosts.append(endpoint_host(self.staging_s3_endpoint))
        if self.encryption == "on" or self.kms_endpoint:  # the KMS holding the clients' keys (AWS: not here)
            hosts.append(endpoint_host(self.kms_url) if self.kms_url else None)
        return bool(hosts) and all(h is not None and is_loopback_host(h) for h in hosts)

    @property
    def dev_values_allowed(self) -> bool:
        """Whether the published dev secrets may run: the embedded or a test stack, and nothing else.

        Loopback alone proves nothing: production behind a sidecar proxy (a service
        mesh, `kubectl port-forward`) has every endpoint on 127.0.0.1 too. So the
        operator must also say `CALLVAULT_ENV=dev`, which production never does.
        """
        return self.env == "dev" and self.on_loopback

    def _why_not_dev(self) -> str:
        if self.env != "dev":
            return "CALLVAULT_ENV is prod"
        return "not every endpoint and the API's bind address is on loopback"

    def s3_keys(self) -> tuple[str, str] | None:
        """The archive store's access key and secret; None for the default AWS credential chain."""
        if self.s3_access_key and self.s3_secret_key is not None:
            return self.s3_access_key, self.s3_secret_key.get_secret_value()
        if self.dev_values_allowed:
            return DEV_S3_ACCESS_KEY, DEV_S3_SECRET_KEY
        return None

    def secret_problems(self) -> list[str]:
        """Why these settings must not pseudonymize, sign or write anything; empty when they may.

        The dev values are for the embedded stack only (`dev_values_allowed`): a
        deployment that forgets a variable must stop, not run with a secret the
        whole world knows.
        """
        if self.dev_values_allowed:
            return []
        why = self._why_not_dev()
        problems = []
        secrets = {
            "CALLVAULT_PSEUDONYM_KEY": (self.pseudonym_key.get_secret_value(), DEV_PSEUDONYM_KEY),
            "CALLVAULT_API_TOKEN_SECRET": (self.api_token_secret.get_secret_value(), DEV_API_TOKEN_SECRET),
            "CALLVAULT_AUDIT_SIGNING_KEY": (self.audit_signing_key.get_secret_value(), DEV_AUDIT_SIGNING_KEY),
        }
        for name, (value, dev) in secrets.items():
            if value == dev:
                problems.append(
                    f"{name} is the published dev value, which runs only with CALLVAULT_ENV=dev on "
                    f"loopback ({why}); set it"
                )
            elif (why := weak_because(value)) is not None:
                problems.append(f"{name} {why}")
        given = self.command_signing_key.get_secret_value().strip() if self.command_signing_key else ""
        if given == DEV_COMMAND_SIGNING_KEY:
            problems.append(
                f"CALLVAULT_COMMAND_SIGNING_KEY is the published dev key, which runs only with "
                f"CALLVAULT_ENV=dev on loopback ({why}); `callvault keys new NAME` makes yours"
            )
        dev_public = parse_signing_identity(DEV_COMMAND_SIGNING_KEY).public_key
        trusting_dev = [
            name for name, key in parse_command_keys(self.command_keys).items() if key == dev_public
        ]
        if trusting_dev:
            problems.append(
                f"CALLVAULT_COMMAND_KEYS trusts the published dev key (as {trusting_dev[0]!r}), with which "
                "anyone can sign a command; remove it"
            )
        if self.s3_access_key == DEV_S3_ACCESS_KEY or (
            self.s3_secret_key is not None and self.s3_secret_key.get_secret_value() == DEV_S3_SECRET_KEY
        ):
            problems.append(
                f"CALLVAULT_S3_ACCESS_KEY/CALLVAULT_S3_SECRET_KEY are the dev values, which run only with "
                f"CALLVAULT_ENV=dev on loopback ({why}); set real keys, or unset both to use the default "
                "AWS credential chain"
            )
        for name in bucket_settings():
            if getattr(self, name).startswith("your-org-"):
                problems.append(
                    f"CALLVAULT_{name.upper()} is still the placeholder {getattr(self, name)!r}; name yours"
                )
        if not self.s3_endpoint:  # AWS: bucket names are global, and the defaults are anyone's
            for name in bucket_settings():
                default = type(self).model_fields[name].default
                if getattr(self, name) == default:
                    problems.append(
                        f"CALLVAULT_{name.upper()} is the default name {default!r}, and on AWS bucket names "
                        f"are global; name yours (such as your-org-{default})"
                    )
        return problems

    def check_production_ready(self) -> None:
        """Refuse, with every reason, to run with dev or placeholder secrets outside the embedded stack."""
        problems = self.secret_problems() + self.transport_problems()
        if problems:
            raise ValueError("refusing to run: " + "; ".join(problems))

    @property
    def upload_buckets(self) -> frozenset[str]:
        """Where a recording's source may lie: the only buckets callvault reads or deletes uploads in."""
        extra = {name.strip() for name in self.source_buckets.split(",") if name.strip()}
        return frozenset({self.staging_bucket, *extra})

    @property
    def own_buckets(self) -> frozenset[str]:
        """Callvault's archive: never a source, so never read or deleted as one."""
        classes = {c.bucket(self) for c in data_classes()}
        return frozenset({*classes, *(getattr(self, name) for name in SERVICE_BUCKET_SETTINGS)})

    @model_validator(mode="after")
    def _kafka_security_complete(self) -> Settings:
        sasl = self.kafka_security_protocol.startswith("SASL_")
        if sasl and not (self.kafka_sasl_username and self.kafka_sasl_password is not None):
            raise ValueError(
                f"CALLVAULT_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol}, which needs "
                "CALLVAULT_KAFKA_SASL_USERNAME and CALLVAULT_KAFKA_SASL_PASSWORD"
            )
        if bool(self.kafka_cert_file) != bool(self.kafka_key_file):
            raise ValueError(
                "CALLVAULT_KAFKA_CERT_FILE and CALLVAULT_KAFKA_KEY_FILE go together (mutual TLS)"
            )
        if self.kafka_cert_file and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError(
                "CALLVAULT_KAFKA_CERT_FILE is for TLS: set CALLVAULT_KAFKA_SECURITY_PROTOCOL to SSL"
            )
        return self

    @property
    def kafka_in_plain_text(self) -> bool:
        return self.kafka_security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT")

    def transport_problems(self) -> list[str]:
        """Why these settings must not talk to Kafka as they stand; empty when they may.

        Commands, access events and the audit log cross the wire to the brokers: off this
        machine in plain text, anyone on the path reads them and can write commands.
        """
        on_this_machine = all(is_loopback_host(h) for h in bootstrap_hosts(self.kafka_bootstrap))
        if self.kafka_in_plain_text and not on_this_machine and not self.kafka_allow_plaintext_reason.strip():
            return [
                f"CALLVAULT_KAFKA_SECURITY_PROTOCOL is {self.kafka_security_protocol} and the brokers "
                f"({self.kafka_bootstrap}) are not on this machine; use SSL or SASL_SSL, or say why plain "
                "text is acceptable in CALLVAULT_KAFKA_ALLOW_PLAINTEXT_REASON"
            ]
        return []

    def plaintext_notice(self) -> str | None:
        """The line every start prints when Kafka is spoken in plain text off this machine, and why."""
        on_this_machine = all(is_loopback_host(h) for h in bootstrap_hosts(self.kafka_bootstrap))
        if not self.kafka_in_plain_text or on_this_machine:
            return None
        return (
            f"Kafka in plain text ({self.kafka_security_protocol}) to {self.kafka_bootstrap}, because: "
            f"{self.kafka_allow_plaintext_reason.strip()}"
        )

    @model_validator(mode="after")
    def _encryption_off_says_why(self) -> Settings:
        if self.encryption == "off" and not self.encryption_off_reason.strip():
            raise ValueError(
                "CALLVAULT_ENCRYPTION=off stores new recordings and metadata readable by anyone who can read "
                "the buckets; say why that is acceptable in CALLVAULT_ENCRYPTION_OFF_REASON"
            )
        return self

    @property
    def kms_url(self) -> str | None:
        """The KMS's endpoint: CALLVAULT_KMS_ENDPOINT; unset, the store's own with CALLVAULT_ENV=dev and the
        store on loopback (the embedded stack's moto answers KMS too), else None: AWS KMS in the region
        (production behind a sidecar has its store on loopback as well, and says prod)."""
        if self.kms_endpoint:
            return self.kms_endpoint
        host = endpoint_host(self.s3_endpoint)
        return self.s3_endpoint if self.env == "dev" and host is not None and is_loopback_host(host) else None

    def encryption_notice(self) -> str | None:
        """The line every start prints when new objects are stored unsealed, and why."""
        if self.encryption == "on":
            return None
        return (
            "new recordings and metadata are stored unsealed (CALLVAULT_ENCRYPTION=off), because: "
            f"{self.encryption_off_reason.strip()}"
        )

    @model_validator(mode="after")
    def _sources_outside_the_archive(self) -> Settings:
        overlap = self.upload_buckets & self.own_buckets
        if overlap:
            raise ValueError(
                f"{', '.join(sorted(overlap))} is both an upload bucket (CALLVAULT_STAGING_BUCKET or "
                "CALLVAULT_SOURCE_BUCKETS) and one of callvault's archive buckets; sources are deleted "
                "after archiving, so they must live elsewhere"
            )
        return self

    @property
    def staging_is_separate(self) -> bool:
        """Whether recordings must be streamed across stores instead of copied server-side."""
        return bool(self.staging_s3_endpoint) and self.staging_s3_endpoint != self.s3_endpoint

    @property
    def trusted_proxies(self) -> frozenset[str]:
        return frozenset(a.strip() for a in self.api_trusted_proxies.split(",") if a.strip())

    @property
    def token_max_lifetime(self) -> timedelta:
        return CalendarDuration.parse(self.api_token_max_lifetime).as_timedelta()

    @cached_property
    def identity_check(self) -> CalendarDuration:
        return CalendarDuration.parse(self.identity_check_max)

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def retention(self) -> RetentionPolicy:
        """The controller's own terms (the privacy statement's) by data class: every tenant's default."""
        terms = {c.name: CalendarDuration.parse(c.default_term(self)) for c in data_classes()}
        return RetentionPolicy(terms=terms, zone=self.zone)

    @cached_property
    def policy_defaults(self) -> Defaults:
        """What applies to a tenant (or a class) no client policy speaks of."""
        return Defaults(retention=self.retention, grace=CalendarDuration.parse(self.disclosure_grace))

    @property
    def policy_bounds(self) -> Bounds:
        return Bounds(
            CalendarDuration.parse(self.policy_shortest_term),
            CalendarDuration.parse(self.policy_longest_term),
            CalendarDuration.parse(self.policy_max_lead),
        )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    @property
    def call_events_topic(self) -> str:
        return self.topic("call-events")

    @property
    def lifecycle_topic(self) -> str:
        return self.topic("lifecycle")

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    @property
    def commands_topic(self) -> str:
        return self.topic("commands")

    @property
    def calls_topic(self) -> str:
        """Internal: validated events and wake-ups, partitioned by callvault itself by call_id."""
        return self.topic("internal.calls")

    def kafka_topics(self) -> Topics:
        """This deployment's topic names and group, as the ACL table (`rules.kafka_acls`) reads them."""
        return Topics(
            call_events=self.call_events_topic,
            lifecycle=self.lifecycle_topic,
            deadletter=self.deadletter_topic,
            commands=self.commands_topic,
            calls=self.calls_topic,
            app_id=self.app_id,
        )

    @property
    def state_changelog_topic(self) -> str:
        """faust's changelog of the call-state table (`{app_id}-{table}-changelog`), which faust creates."""
        return f"{self.app_id}-{STATE_TABLE}-changelog"

    def placed_topics(self) -> list[str]:
        """The topics whose partitions must number `partitions`: each call's state, and each partition's
        audit chain, is placed and looked for by that count (`stream.messages.state_partition`, the
        audit checkpoint's heads). `call-events` may differ: an event not on its call's partition is
        passed on through `calls`."""
        return [self.calls_topic, self.state_changelog_topic, self.lifecycle_topic]

    def all_topics(self) -> list[str]:
        return [
            self.call_events_topic,
            self.lifecycle_topic,
            self.deadletter_topic,
            self.commands_topic,
            self.calls_topic,
        ]
