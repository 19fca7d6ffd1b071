"""The residency check every command that touches the buckets runs first: fail closed, with a sentence."""

from __future__ import annotations

import sys
import time

from botocore.exceptions import BotoCoreError, ClientError

from callvault.cli.errors import UserError
from callvault.rules.residency import outside_eea
from callvault.settings import Settings
from callvault.storage.client import make_s3_client, make_staging_s3_client
from callvault.storage.errors import describe
from callvault.storage.location import residency_problems

RETRY_S = 2.0


def refuse_outside_residency(settings: Settings, *, wait_for_store: bool) -> None:
    """Raise UserError naming each bucket kept where it may not be; say which places outside the EEA
    are allowed and why. `wait_for_store`: a long-running process asks again until the store answers,
    rather than start unchecked or exit on a store that is only down for a while."""
    outside = outside_eea(settings.allowed_places)
    if outside:
        print(
            f"storage outside the EEA allowed: {', '.join(outside)}, because: "
            f"{settings.allowed_regions_reason.strip()}",
            file=sys.stderr,
            flush=True,
        )
    s3 = make_s3_client(settings, attempts=2)
    staging = make_staging_s3_client(settings, attempts=2) if settings.staging_is_separate else None
    while True:
        try:
            problems = residency_problems(s3, settings, staging)
            break
        except (BotoCoreError, ClientError) as exc:
            sentence = describe(exc, settings.s3_endpoint)
            if not wait_for_store:
                raise UserError(sentence) from exc
            print(
                f"{sentence}; asking again in {RETRY_S:.0f} s to check where the buckets are", file=sys.stderr
            )
            time.sleep(RETRY_S)
    if problems:
        raise UserError("refusing to run: " + "; ".join(problems))
