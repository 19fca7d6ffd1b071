"""Whether a configured secret may be used, judged by its form alone. Pure.

Two mistakes must never reach a real store: the published dev values (anyone
can sign an admin token or reverse a pseudonym with them) and a placeholder
left in a manifest ("replace: 32+ random bytes"). So outside the embedded stack
on loopback a secret must look like what a generator prints: at least 32 bytes'
worth of hex (64 characters) or base64 (43), no spaces, enough distinct
characters, and no placeholder words. It is used as it is, never decoded, so
keys already in use keep their pseudonyms.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_HEX = re.compile(r"[0-9a-fA-F]{64,}")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]{43,}={0,2}")
PLACEHOLDER_WORDS = ("replace", "change", "example", "placeholder", "secret", "password", "dev-only", "xxxx")
MIN_DISTINCT = 12  # a random 32-byte secret has far more; "aaaa...", "abab..." have fewer


def weak_because(value: str) -> str | None:
    """Why `value` is not a secret a generator made, or None when it looks like one."""
    if any(ch.isspace() for ch in value):
        return "has spaces: a placeholder or a phrase, not generated random bytes"
    lowered = value.lower()
    word = next((w for w in PLACEHOLDER_WORDS if w in lowered), None)
    if word is not None:
        return f"contains {word!r}: a placeholder or a dev value, not generated random bytes"
    if not (_HEX.fullmatch(value) or _BASE64.fullmatch(value)):
        return "is not at least 32 random bytes written as hex (64 characters) or base64 (43)"
    if len(set(value)) < MIN_DISTINCT:
        return "repeats too few characters to be random"
    return None


def is_loopback_host(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bootstrap_hosts(bootstrap: str) -> list[str]:
    """The hosts of a Kafka bootstrap list such as `a:9092,[::1]:9092`."""
    hosts = []
    for item in bootstrap.split(","):
        item = item.strip()
        if not item:
            continue
        hosts.append(urlsplit(f"//{item}").hostname or item)
    return hosts


def endpoint_host(url: str | None) -> str | None:
    """The host of an S3 endpoint URL; None for AWS itself (no endpoint set)."""
    if not url:
        return None
    return urlsplit(url).hostname
