"""The residency check every command that touches the buckets runs first: fail closed, with a sentence."""

from __future__ import annotations

import sys
import time

from botocore.exceptions import BotoCoreError, ClientError

from callvault.cli.errors import UserError
from callvault.settings import Settings
from callvault.storage.errors import describe
from callvault.storage.location import check_residency, outside_eea_notice

RETRY_S = 2.0


def refuse_outside_residency(settings: Settings, *, wait_for_store: bool, announce: bool = True) -> None:
    """Raise UserError naming each bucket kept where it may not be; `announce`: first say which places
    outside the EEA are allowed and why. `wait_for_store`: a long-running process asks again until the
    store answers, rather than start unchecked or exit on a store that is only down for a while."""
    notice = outside_eea_notice(settings) if announce else None
    if notice:
        print(notice, file=sys.stderr, flush=True)
    while True:
        try:
            problems = check_residency(settings)
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
