"""How callvault's Kafka clients authenticate and encrypt: one set of options for every one of them.

The worker (and faust's own consumers and producers), the API's access log, the
command line, the demo and the tests all build their aiokafka clients with
`client_options(settings)`, so a cluster with TLS listeners and SCRAM or mTLS
users (Strimzi, MSK, a KRaft cluster of one's own) is reached the same way by
every component, each with its own user (`CALLVAULT_KAFKA_SASL_USERNAME`).
What a broker answers when it refuses a client is turned into a sentence that
names the setting to look at (`refusal_sentence`).
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

from callvault.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL: the brokers' CA, and this client's certificate for mTLS."""
    if not settings.kafka_security_protocol.endswith("SSL"):
        return None
    try:
        context = ssl.create_default_context(cafile=settings.kafka_ca_file)  # None: the system's CAs
    except (OSError, ssl.SSLError) as exc:
        said = f"CALLVAULT_KAFKA_CA_FILE {settings.kafka_ca_file!r} cannot be read as PEM: {exc}"
        raise ValueError(said) from exc
    if settings.kafka_cert_file and settings.kafka_key_file:
        try:
            context.load_cert_chain(settings.kafka_cert_file, settings.kafka_key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"CALLVAULT_KAFKA_CERT_FILE / CALLVAULT_KAFKA_KEY_FILE cannot be read as a PEM pair: {exc}"
            ) from exc
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """The keyword arguments every aiokafka client of callvault takes, beside its bootstrap servers."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if settings.kafka_security_protocol.startswith("SASL_"):
        assert settings.kafka_sasl_password is not None, "the settings' validator requires it"
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options


def faust_credentials(settings: Settings) -> Any:
    """The same, as faust's `broker_credentials` (None for PLAINTEXT)."""
    import faust

    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    assert settings.kafka_sasl_password is not None, "the settings' validator requires it"
    return faust.SASLCredentials(
        username=settings.kafka_sasl_username,
        password=settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.kafka_sasl_mechanism,
    )


def tls_problem(settings: Settings, timeout_s: float = 5.0) -> str | None:
    """A TLS handshake with the first broker, to tell a certificate no CA here vouches for apart.

    aiokafka logs why a TLS connection failed but raises only "unable to bootstrap"; this asks the
    question again directly. None: the handshake worked (or no TLS is configured).
    """
    context = ssl_context(settings)
    if context is None:
        return None
    host, _, port = settings.kafka_bootstrap.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s) as raw:
            with context.wrap_socket(raw, server_hostname=host.strip("[]")):
                return None
    except ssl.SSLCertVerificationError as exc:
        return f"certificate verify failed: {exc.verify_message}"
    except (OSError, ValueError) as exc:
        return f"no TLS handshake ({type(exc).__name__}: {exc})"


def refusal_sentence(exc: BaseException, settings: Settings) -> str:
    """What a failed connection means, naming the setting to check; never the password."""
    text = f"{type(exc).__name__}: {exc} {tls_problem(settings) or ''}"
    lowered = text.lower()
    where = f"the Kafka brokers at {settings.kafka_bootstrap}"
    if "certificate verify failed" in lowered or "certificateverif" in lowered:
        return (
            f"{where} present a certificate that CALLVAULT_KAFKA_CA_FILE "
            f"({settings.kafka_ca_file or 'the system CAs'}) does not vouch for"
        )
    # A SASL client whose TLS handshake works but that cannot bootstrap: the broker refused its login
    # (aiokafka logs the broker's answer and raises only "unable to bootstrap").
    tls_fine = settings.kafka_security_protocol == "SASL_PLAINTEXT" or tls_problem(settings) is None
    sasl_refused = settings.kafka_security_protocol.startswith("SASL_") and tls_fine
    if sasl_refused or "authentication" in lowered:
        return (
            f"{where} did not let the user {settings.kafka_sasl_username!r} in "
            f"({settings.kafka_sasl_mechanism}); check CALLVAULT_KAFKA_SASL_USERNAME and "
            "CALLVAULT_KAFKA_SASL_PASSWORD (and that the broker is up)"
        )
    if settings.kafka_security_protocol == "SSL" and settings.kafka_cert_file and tls_fine:
        # TLS 1.3 finishes the handshake before the broker checks the client's certificate: a refused
        # one shows as a connection that cannot bootstrap.
        return (
            f"{where} did not accept the client certificate in CALLVAULT_KAFKA_CERT_FILE "
            f"({settings.kafka_cert_file}); check that a CA the brokers trust signed it, and that its "
            "user is known to them"
        )
    return (
        f"cannot reach {where} with CALLVAULT_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} "
        f"({type(exc).__name__}); is the broker up, and does its listener speak that protocol?"
    )
