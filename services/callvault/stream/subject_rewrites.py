"""Requests that rewrite a call's metadata rather than delete it: a rectification, an agent's erasure.

Both write a new version of the document (its tags, dates and lock as before), remove the version it
replaces, and prove the new one with `metadata.archived`, so `audit verify-store` knows every version that
holds data; the subject index follows. `SubjectHandler` (stream/subjects.py) carries them out.
"""

from __future__ import annotations

from callvault.contract.fields import format_rfc3339
from callvault.contract.lifecycle import LifecycleBase
from callvault.rules import evidence
from callvault.rules.call_ref import call_ref
from callvault.rules.client_policy import kms_key_at
from callvault.rules.metadata_doc import canonical_bytes
from callvault.rules.pseudonym import pseudonymize
from callvault.rules.rectification import PARTICIPANT_FIELDS, RectificationRefused, participants_of, rectified
from callvault.rules.retention import RetentionClass
from callvault.rules.subject_requests import RequestRecord, RequestStatus
from callvault.storage import archive as s3ops
from callvault.storage import policies
from callvault.storage import subject_requests as requests_registry
from callvault.storage.holds import held_calls
from callvault.storage.subject_index import SUBJECTS_META, IndexEntry, drop_subjects, put_entries
from callvault.stream.command_errors import CommandRefused
from callvault.stream.worker_part import WorkerPart


class MetadataRewrites(WorkerPart):
    async def _read(self, key: str | None) -> s3ops.StoredDocument | None:
        """The call's metadata document, opened under its client's key; None when it has none."""
        return (
            await self.s3.run("reading the call", s3ops.read_document, self.keyring, self.meta, key)
            if key
            else None
        )

    async def _seal(
        self, tenant: str, stored: s3ops.StoredDocument, policy_keys: dict[str, str | None]
    ) -> s3ops.Seal | None:
        """How a rewritten document is sealed: under the key it was sealed under (its client's, the
        client's own, or the hold key); a document stored unsealed, as a new one would be: under the key
        the client's policy names now (bring your own key), else callvault's key for the client.
        `policy_keys`: the request's own memo of that key by tenant, so a request that rewrites many
        calls reads the policy once."""
        if stored.key_id is not None or not self.keyring.sealing:
            return self.keyring.seal_for(tenant, str(RetentionClass.METADATA), stored.key_id)
        if tenant not in policy_keys:
            history = await self.s3.run("reading the client's policy", policies.history, self.meta, tenant)
            policy_keys[tenant] = kms_key_at(history, self.clock.now())
        return self.keyring.seal_for(tenant, str(RetentionClass.METADATA), policy_keys[tenant])

    async def _rectify(self, record: RequestRecord, entries: list[IndexEntry]) -> LifecycleBase:
        """The call's metadata corrected or completed as a new version (the old one removed), its subject
        index following a corrected participant, proven by `metadata.archived` and `subject.rectified`."""
        asked = record.rectify or {}
        call_id, field = str(asked.get("call_id")), str(asked.get("field"))
        entry = next((e for e in entries if e.call_id == call_id), None)
        key = entry.objects.get(str(RetentionClass.METADATA)) if entry else None
        stored = await self._read(key)
        if entry is None or key is None or stored is None:
            raise CommandRefused(
                f"no call {call_id!r} of this subject is kept in tenant {record.tenant!r} (never archived, "
                "or erased already): nothing to rectify"
            )
        key_bytes = self.settings.pseudonym_key.get_secret_value().encode()
        for name in ("value", "statement"):
            text, signed = asked.get(name), asked.get(f"{name}_digest")
            if (text is None) != (signed is None) or (
                text is not None and pseudonymize(key_bytes, record.tenant, text) != signed
            ):
                raise CommandRefused(
                    f"the registry's {name} for request {record.request_id} is not the one its command signs "
                    "(or is missing): file the request again"
                )
        now = self.clock.now()
        try:
            doc, previous = rectified(
                stored.doc, subject=record.subject, field=field, value=asked.get("value"),
                statement=asked.get("statement"), request_id=record.request_id, at=now,
            )  # fmt: skip
        except RectificationRefused as exc:
            raise CommandRefused(str(exc)) from exc
        subjects = sorted(participants_of(doc))
        moved = field in PARTICIPANT_FIELDS and sorted(entry.subjects) != subjects
        if moved:  # the index follows the participant: the new one's entries first, as at archive time
            named = entry.model_copy(update={"subjects": subjects})
            await self.s3.run("indexing the rectified call", put_entries, self.meta, named, stored.tags)
        written = await self.s3.run(
            f"writing the rectified metadata of call {call_id}", s3ops.rewrite_document, self.meta, key,
            stored, canonical_bytes(doc), {SUBJECTS_META: " ".join(subjects)},
            await self._seal(record.tenant, stored, {}),
        )  # fmt: skip
        ref = written.ref
        if moved:
            gone = sorted(set(entry.subjects) - set(subjects))
            await self.s3.run(
                "dropping the old index entries", drop_subjects, self.meta, entry.tenant, gone, call_id
            )
        # What it said before, only as the tenant's pseudonym of it.
        digest = pseudonymize(key_bytes, record.tenant, str(previous)) if previous is not None else None
        sealed = s3ops.Sealing.pair(written.sealing)
        await self.emit(
            [evidence.metadata_rewritten(record.tenant, call_id, ref, doc, stored.metadata, now, sealed)]
        )
        earlier = await self.s3.run(
            "finding earlier exports", requests_registry.list_requests, self.meta, record.tenant
        )
        recipients = sorted(
            r.request_id + (f" (delivered to {r.deliver_to})" if r.deliver_to else "")
            for r in earlier
            if r.subject == record.subject and r.kind == "access" and r.status is RequestStatus.FULFILLED
        )
        return evidence.subject_outcome(
            record, self.clock.now(), calls=1, metadata=1, call_id=call_id, field=field,
            document_version=ref.version_id,
            previous_digest=digest,
            statement_added=asked.get("statement") is not None, recipients=recipients,
        )  # fmt: skip

    async def _erase_agent(self, record: RequestRecord, entries: list[IndexEntry]) -> LifecycleBase:
        """An agent's erasure: what the company may erase of them. Their id and pseudonym leave every call's
        metadata (a new version, the old one removed, proven by `metadata.archived`) and their index
        entries go; the recordings, the calls' own data and the access log (which names coaches, not
        agents) keep their own terms."""
        held = await self.s3.run("reading legal holds", held_calls, self.meta)
        policy_keys: dict[str, str | None] = {}
        kept: list[str] = []
        rewritten = 0
        for entry in entries:
            if call_ref(entry.tenant, entry.call_id) in held:
                kept.append(entry.call_id)
                continue
            key = entry.objects.get(str(RetentionClass.METADATA))
            stored = await self._read(key)
            if key is not None and stored is not None and stored.doc.get("agent_pseudonym") == record.subject:
                doc = {**stored.doc, "agent_id": None}
                doc.pop("agent_pseudonym", None)
                doc["rectifications"] = [*(stored.doc.get("rectifications") or []), {
                    "field": "agent_id", "kind": "erased", "at": format_rfc3339(self.clock.now()),
                    "request_id": record.request_id,
                }]  # fmt: skip
                subjects = sorted(set(entry.subjects) - {record.subject})
                written = await self.s3.run(
                    f"erasing the agent from call {entry.call_id}", s3ops.rewrite_document, self.meta, key,
                    stored, canonical_bytes(doc), {SUBJECTS_META: " ".join(subjects)},
                    await self._seal(entry.tenant, stored, policy_keys),
                )  # fmt: skip
                await self.emit([evidence.metadata_rewritten(
                    record.tenant, entry.call_id, written.ref, doc, stored.metadata, self.clock.now(),
                    s3ops.Sealing.pair(written.sealing),
                )])  # fmt: skip
                rewritten += 1
            await self.s3.run(
                "dropping the agent's index entry", drop_subjects, self.meta, entry.tenant, [record.subject],
                entry.call_id,
            )  # fmt: skip
        return evidence.subject_outcome(
            record, self.clock.now(), calls=len(entries) - len(kept), metadata=rewritten, held_calls=kept
        )
