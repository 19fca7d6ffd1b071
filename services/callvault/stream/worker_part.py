"""What each of the worker's handlers is built from, constructed in one place.

The call processor, the purger, the command handler, the subject handler and
offboarding each act on the store with the same four parts: the settings, the
bounded S3 runner, the lifecycle emitter and the clock; and each deletes only
through a `Deleter` that journals in the metadata bucket and proves every
deletion. They inherit this constructor instead of repeating it.
"""

from __future__ import annotations

from callvault.clock import Clock
from callvault.settings import Settings
from callvault.storage.sealing import Keyring
from callvault.stream.bus import Emit
from callvault.stream.deletion import Deleter
from callvault.stream.offloop import S3Runner

# How often each worker rereads the registries in the metadata bucket (legal holds, objections, closed
# tenants, client policies): one listing each. What a change there waits for, at most, to be applied.
REGISTRIES_REFRESH_S = 5.0


class WorkerPart:
    def __init__(self, settings: Settings, s3: S3Runner, emit: Emit, clock: Clock) -> None:
        self.settings = settings
        self.s3 = s3
        self.emit = emit
        self.clock = clock
        self.meta = settings.metadata_bucket  # where the registries and the deletion journal live
        # Seals what it writes under each client's key (CALLVAULT_ENCRYPTION) and opens what it reads.
        self.keyring = Keyring.for_settings(settings)
        # Its own deleter: a deletion's journal entry, its batch and its proof, whoever deletes.
        self.deleter = Deleter(s3, self.meta, emit, clock, settings.deletion_in_flight_s)
