"""The API fuzzed from its own OpenAPI spec (schemathesis) against a real `callvault api` process.

With a valid token of each role for tenant `acme`, thousands of generated
requests, free ones and ones aimed at a real call of tenant `globex`: no answer
is a 500, and no answer shows anything of `globex`.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from callvault.api.tokens import issue_token
from callvault.embedded.processes import ChildProcess
from callvault.rules.access import Role
from callvault.settings import Settings
from tests.integration.helpers import Bus

pytestmark = pytest.mark.integration

FREE_EXAMPLES = 15  # per operation and role
AIMED_EXAMPLES = 8  # per operation with a {tenant} in its path, and role, aimed at globex's call


def _token(settings: Settings, role: Role) -> str:
    secret = settings.api_token_secret.get_secret_value()
    return issue_token(secret, f"{role.value}@acme", role, ["acme"], datetime.now(UTC), timedelta(hours=1))


def _tenants_named(value: Any) -> set[str]:
    """Every `tenant` field anywhere in a JSON answer."""
    found: set[str] = set()
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("tenant"), str):
                found.add(item["tenant"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _fuzz(schema: Any, base_url: str, tokens: dict[Role, str], theirs: dict[str, str]) -> dict[str, int]:
    """Runs every operation with every token; returns how many requests each status got."""
    statuses: dict[str, int] = {}
    problems: list[str] = []
    session = requests.Session()

    def check(case: Any, role: Role) -> None:
        bearer = {"Authorization": f"Bearer {tokens[role]}"}
        response = case.call(base_url=base_url, session=session, headers=bearer, timeout=30)
        statuses[str(response.status_code)] = statuses.get(str(response.status_code), 0) + 1
        where = f"{case.method} {case.path} {case.path_parameters} as {role.value}"
        if response.status_code >= 500:
            problems.append(f"{where}: {response.status_code} {response.text[:200]}")
        # A refusal may repeat what the request named ("no call 'x' in tenant 'globex'", the same
        # sentence as for a call that does not exist); an answer that is not a refusal may not.
        if response.status_code < 400 and theirs["call_id"] in response.text:
            problems.append(f"{where}: the answer names globex's call")
        if response.status_code < 400 and (case.path_parameters or {}).get("tenant") == "globex":
            problems.append(f"{where}: {response.status_code} for a call of another tenant")
        kind = response.headers.get("content-type") or [""]  # schemathesis keeps each header's values
        if (
            str(kind[0] if isinstance(kind, list) else kind).startswith("application/json")
            and response.status_code < 400
        ):
            named = _tenants_named(json.loads(response.text)) - {"acme"}
            if named:
                problems.append(f"{where}: the answer names tenants {sorted(named)}")

    for result in schema.get_all_operations():
        operation = result.ok()
        for role in tokens:
            runs = [(operation.as_strategy(), FREE_EXAMPLES)]
            if "{tenant}" in operation.path:
                aimed = {k: v for k, v in theirs.items() if "{" + k + "}" in operation.path}
                runs.append((operation.as_strategy(path_parameters=aimed), AIMED_EXAMPLES))
            for strategy, examples in runs:
                _run(strategy, examples, lambda case, role=role: check(case, role))
    assert not problems, f"{len(problems)} problems, such as {problems[:5]}"
    return statuses


def _run(strategy: Any, examples: int, body: Any) -> None:
    @settings(max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        body(case)

    run()


@pytest.mark.timeout(900)
async def test_no_500_and_no_answer_crosses_tenants(
    settings: Settings, worker: ChildProcess, api_urls: tuple[str, str]
) -> None:
    url, ops = api_urls
    async with Bus(settings) as bus:
        ours, theirs = bus.script(tenant="acme"), bus.script(tenant="globex")
        for call in (ours, theirs):
            await bus.send_call(call)
        for call in (ours, theirs):
            await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
    schema = schemathesis.openapi.from_url(f"{ops}/openapi.json")
    tokens = {role: _token(settings, role) for role in Role}
    target = {
        "tenant": "globex",
        "day": theirs.start.astimezone(UTC).date().isoformat(),
        "call_id": theirs.call_id,
    }
    statuses = await asyncio.to_thread(_fuzz, schema, url, tokens, target)
    total = sum(statuses.values())
    print(f"schemathesis: {total} requests, by status {dict(sorted(statuses.items()))}")
    assert total >= 1000
