"""The worker's residency check: no S3 operation runs until every bucket is known to be where it may be.

A service of the faust worker, started after the health server. It checks in
the background and opens `passed`, which every S3Runner of the worker waits on
before its first operation. Meanwhile the worker joins its group and recovers
its state, /healthz answers and /readyz says what is awaited. A check before
all that would leave a worker started during an S3 outage with no liveness and
no partitions (seen in `tests/faults/test_s3_faults.py`). A bucket outside the
allowed places ends the process with the sentence and exit code 2, before
anything was read from or written to a bucket.
"""

from __future__ import annotations

import asyncio
import logging
import os

from botocore.exceptions import BotoCoreError, ClientError
from mode import Service

from callvault.observability.metrics import S3_ERRORS, s3_error_code
from callvault.settings import Settings
from callvault.storage.errors import describe
from callvault.storage.location import check_residency, outside_eea_notice

log = logging.getLogger("callvault.worker")

RETRY_S = 2.0


class ResidencyGate(Service):
    def __init__(self, settings: Settings, passed: asyncio.Event) -> None:
        super().__init__()
        self._settings = settings
        self.passed = passed
        self.waiting_for = "checking where the buckets are"  # "" once it passed

    async def on_start(self) -> None:
        self.add_future(self._check())

    async def _check(self) -> None:
        settings = self._settings
        notice = outside_eea_notice(settings)
        if notice:
            log.warning("%s", notice)
        while True:
            try:
                problems = await asyncio.to_thread(check_residency, settings)
                break
            except (BotoCoreError, ClientError) as exc:
                S3_ERRORS.labels(s3_error_code(exc)).inc()  # an S3 call that failed, like any other
                said = describe(exc, settings.s3_endpoint)
                self.waiting_for = f"checking where the buckets are: {said}"
                log.warning("%s; asking again in %.0f s", self.waiting_for, RETRY_S)
                await asyncio.sleep(RETRY_S)
        if problems:
            log.critical("refusing to run: %s", "; ".join(problems))
            logging.shutdown()  # the sentence reaches the log before the process ends
            os._exit(2)  # no S3 operation has run: each waits for `passed`
        self.waiting_for = ""
        self.passed.set()
