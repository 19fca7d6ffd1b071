"""Partial replays: one share of the partitions replayed on its own machine, merged anywhere.

A Kubernetes Indexed Job runs `callvault audit replay --partitions N
--partial-out s3://…` in one pod per partition; each pod reads the global facts
first (every tenant's policy changes, wherever they sit in the log: a pass
that decompresses every segment but parses only the lines naming
`policy.changed`), replays its partition, checks its calls and writes a
partial result as JSON. `callvault audit merge` reads the partials, makes sure
they cover every partition once, joins them (`rules.audit_replay.merge_results`),
checks the subject requests and writes the report a single process would.
JSON, not pickle: partials travel through a bucket and are read by another
machine.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from botocore.client import BaseClient

from callvault.audit.sources import AuditLog
from callvault.contract.fields import format_rfc3339
from callvault.rules import audit_commands
from callvault.rules.audit_chain import ChainBreak, parse_segment
from callvault.rules.audit_replay import (
    ReplayResult,
    Violation,
    _policy_version,
    canonical,
    check_commands,
    check_requests,
    merge_requests,
    merge_results,
)
from callvault.rules.client_policy import PolicyVersion
from callvault.settings import Settings
from callvault.storage import audit_archive as segments
from callvault.storage import audit_checkpoints

FORMAT = "callvault.audit.partial/1"


def global_policies(s3: BaseClient, settings: Settings) -> dict[str, dict[int, PolicyVersion]]:
    """Every policy version the archived log states, from every partition (the global facts)."""
    found: dict[str, dict[int, PolicyVersion]] = {}
    for partition in range(settings.partitions):
        for key in segments.segment_keys(s3, settings.audit_bucket, partition):
            body = segments.read_segment(s3, settings.audit_bucket, key)
            if b"policy.changed" not in body:
                continue
            try:
                _, records = parse_segment(body)
            except ValueError:
                continue  # the partition's own replay reports the break
            for record in records:
                if "policy.changed" not in record.value:
                    continue
                try:
                    event = json.loads(record.value)
                except ValueError:
                    continue
                if isinstance(event, dict) and event.get("type") == "policy.changed":
                    version = _policy_version(event)
                    if version is not None:
                        found.setdefault(version.tenant, {})[version.version] = version
    return found


def partial_document(
    result: ReplayResult,
    requests: dict[str, dict[str, Any]],
    commands: audit_commands.Commands,
    log: AuditLog,
    partitions: list[int],
    of: int,
    as_of: datetime,
) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "partitions": partitions,
        "of_partitions": of,
        "as_of": format_rfc3339(as_of),
        "result": {
            "events": result.events,
            "duplicates": result.duplicates,
            "violations": [asdict(v) for v in result.violations],
            "outcomes_by_tenant": {t: dict(c) for t, c in result.outcomes_by_tenant.items()},
            "outcomes_by_day": {d: dict(c) for d, c in result.outcomes_by_day.items()},
            "lateness_histogram": dict(result.lateness_histogram),
            "lateness_log2": {str(k): n for k, n in result.lateness_log2.items()},
            "deletions_on_time": result.deletions_on_time,
            "accesses_by_site": dict(result.accesses_by_site),
            "accesses_by_role": dict(result.accesses_by_role),
            "accesses_by_purpose": dict(result.accesses_by_purpose),
            "contract_ends": result.contract_ends,
            "payments_by_tenant": {t: dict(c) for t, c in result.payments_by_tenant.items()},
            "policy_history": {
                t: [v.model_dump(mode="json") for v in versions]
                for t, versions in result.policy_history.items()
            },
        },
        "requests": requests,
        "commands": commands,
        # What binds this partial to one log (issue 33): the newest checkpoint it trusted, every segment
        # it read, and the policy facts it judged by; the merge refuses partials that disagree.
        "bound": {
            "checkpoint": log.checkpoint,
            "segments": dict(sorted(log.segment_sha256.items())),
            "policies_sha256": _policies_digest(result),
        },
        "log": {
            "segments": log.segments,
            "checkpoints": log.checkpoints,
            "archived_events": log.archived_events,
            "tail_events": log.tail_events,
            "breaks": [asdict(b) for b in log.breaks],
        },
    }


def read_partial(doc: dict[str, Any]) -> tuple[ReplayResult, dict[str, dict[str, Any]], AuditLog]:
    if doc.get("format") != FORMAT:
        raise ValueError(f"not a partial replay (format {doc.get('format')!r})")
    r = doc["result"]
    result = ReplayResult(
        events=r["events"],
        duplicates=r["duplicates"],
        violations=[
            Violation(v["rule"], v["call_id"], v["tenant"], v["detail"], tuple(v["evidence"]))
            for v in r["violations"]
        ],  # fmt: skip
        outcomes_by_tenant=defaultdict(Counter, {t: Counter(c) for t, c in r["outcomes_by_tenant"].items()}),
        outcomes_by_day=defaultdict(Counter, {d: Counter(c) for d, c in r["outcomes_by_day"].items()}),
        lateness_histogram=Counter(r["lateness_histogram"]),
        lateness_log2=Counter({int(k): n for k, n in r["lateness_log2"].items()}),
        deletions_on_time=r["deletions_on_time"],
        accesses_by_site=Counter(r["accesses_by_site"]),
        accesses_by_role=Counter(r["accesses_by_role"]),
        accesses_by_purpose=Counter(r["accesses_by_purpose"]),
        contract_ends=r["contract_ends"],
        payments_by_tenant=defaultdict(
            Counter, {t: Counter(c) for t, c in r.get("payments_by_tenant", {}).items()}
        ),
        policy_history={
            t: [PolicyVersion.model_validate(v) for v in vs] for t, vs in r["policy_history"].items()
        },
    )
    raw = doc["log"]
    log = AuditLog(
        segments=raw["segments"],
        checkpoints=raw["checkpoints"],
        archived_events=raw["archived_events"],
        tail_events=raw["tail_events"],
        breaks=[ChainBreak(**b) for b in raw["breaks"]],
    )
    return result, doc["requests"], log


def write_partial(s3: BaseClient, doc: dict[str, Any], destination: str) -> str:
    """Into a folder, or under an `s3://bucket/prefix` of the configured store; where it went."""
    name = "partial-" + "-".join(f"{p:03d}" for p in doc["partitions"]) + ".json"
    body = json.dumps(doc, indent=1).encode()
    if destination.startswith("s3://"):
        bucket, _, prefix = destination[5:].partition("/")
        key = f"{prefix.rstrip('/')}/{name}" if prefix else name
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")
        return f"s3://{bucket}/{key}"
    folder = Path(destination)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(body)
    return str(folder / name)


def read_partials(s3: BaseClient, sources: list[str]) -> list[dict[str, Any]]:
    """Every `partial-*.json` in these folders or `s3://` prefixes."""
    docs = []
    for source in sources:
        if source.startswith("s3://"):
            bucket, _, prefix = source[5:].partition("/")
            pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for key in sorted(o["Key"] for page in pages for o in page.get("Contents", ())):
                if key.rsplit("/", 1)[-1].startswith("partial-") and key.endswith(".json"):
                    docs.append(json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))
        else:
            docs.extend(json.loads(p.read_text()) for p in sorted(Path(source).glob("partial-*.json")))
    return docs


def coverage_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Partials must cover every partition of the log, each once."""
    if not docs:
        return ["no partial replay found"]
    of = {doc["of_partitions"] for doc in docs}
    if len(of) != 1:
        return [f"the partials come from logs of different partition counts: {sorted(of)}"]
    count = Counter(p for doc in docs for p in doc["partitions"])
    problems = [f"partition {p} is in {n} partials" for p, n in sorted(count.items()) if n > 1]
    missing = sorted(set(range(of.pop())) - set(count))
    if missing:
        problems.append(f"no partial covers partition(s) {', '.join(map(str, missing))}")
    return problems


def _policies_digest(result: ReplayResult) -> str:
    history = {t: [v.model_dump(mode="json") for v in vs] for t, vs in sorted(result.policy_history.items())}
    return hashlib.sha256(json.dumps(history, sort_keys=True).encode()).hexdigest()


REQUIRED = ("format", "partitions", "of_partitions", "as_of", "result", "log", "bound")

# Partials of one run are replayed within this of each other (the pods of one Job); further apart,
# they are not one replay (a forged partial two years old is not).
MERGE_WINDOW = timedelta(hours=1)


def binding_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Partials merge only when they read one log at one time: their as-of instants within
    `MERGE_WINDOW` of each other, and the same policy facts; each sentence says where they part. That
    each read this store's log is `store_problems`'."""
    problems: list[str] = []
    for doc in docs:
        missing = [name for name in REQUIRED if name not in doc]
        if doc.get("format") != FORMAT or missing:
            said = f"missing {', '.join(missing)}" if missing else f"format {doc.get('format')!r}"
            problems.append(f"a partial is not a {FORMAT} document ({said}): written by another version?")
    if problems:
        return problems
    try:
        instants = [datetime.fromisoformat(doc["as_of"]) for doc in docs]
    except (TypeError, ValueError) as exc:
        return [f"a partial's as_of is not an instant: {exc}"]
    if instants and max(instants) - min(instants) > MERGE_WINDOW:
        shown = "; ".join(f"partitions {doc['partitions']}: {doc['as_of']}" for doc in docs)
        problems.append(
            f"the partials were replayed {max(instants) - min(instants)} apart, more than {MERGE_WINDOW}: "
            f"not one replay ({shown})"
        )
    policies = {str(doc["bound"].get("policies_sha256")) for doc in docs}
    if len(policies) > 1:
        shown = "; ".join(f"partitions {d['partitions']}: {d['bound'].get('policies_sha256')}" for d in docs)
        problems.append(f"the partials disagree on the client policies the calls were judged by ({shown})")
    return problems


def store_problems(s3: BaseClient, settings: Settings, docs: list[dict[str, Any]]) -> list[str]:
    """The log each partial read is the one in this store: the checkpoint it names is there, with the
    same bytes (it signs every partition's chain up to it), and every segment it read is listed (a
    partial of another log, or a forged one, is not). Listings and checkpoints: no segment is read."""
    problems: list[str] = []
    versions = audit_checkpoints.checkpoint_versions(s3, settings.audit_bucket)
    for doc in docs:
        named = doc["bound"].get("checkpoint")
        if named is not None:
            key = audit_checkpoints.checkpoint_key(int(named["seq"]))
            stored = [audit_checkpoints.read_checkpoint(s3, settings.audit_bucket, key, v).sha256()
                      for v in versions.get(key, [])]  # fmt: skip
            if named["sha256"] not in stored:
                problems.append(
                    f"the partial of partitions {doc['partitions']} names checkpoint {named['seq']} "
                    f"({str(named['sha256'])[:12]}…), which this store does not hold: it was read from "
                    "another log, or forged"
                )
        read = set(doc["bound"].get("segments", {}))
        bucket = settings.audit_bucket
        stored_keys = {key for p in doc["partitions"] for key in segments.segment_keys(s3, bucket, p)}
        if read - stored_keys:
            problems.append(
                f"the partial of partitions {doc['partitions']} read {len(read - stored_keys)} segment(s) "
                f"this store does not hold (e.g. {min(read - stored_keys)}): it was read from another log, "
                "or forged"
            )
    return problems


def merge_partials(
    docs: list[dict[str, Any]], command_keys: Mapping[str, str] | None = None
) -> tuple[ReplayResult, AuditLog, datetime]:
    """The partials joined into the result, the log summary and the instant of one whole replay."""
    parts = [read_partial(doc) for doc in docs]
    as_of = max(datetime.fromisoformat(doc["as_of"]) for doc in docs)
    result = merge_results(part for part, _, _ in parts)
    # Each partial read every partition's policy changes: the histories are one and the same.
    result.policy_history = max((part.policy_history for part, _, _ in parts), key=len)
    check_requests(merge_requests(requests for _, requests, _ in parts), as_of, result)
    check_commands(audit_commands.merge(doc.get("commands", {}) for doc in docs), command_keys, result)
    log = AuditLog()
    for _, _, part_log in parts:
        log.join(part_log)
    log.checkpoints = max(part_log.checkpoints for _, _, part_log in parts)
    return canonical(result), log, as_of
