"""The API started while the broker is down serves, says it is unready, and becomes ready once the
broker comes up, with no restart (issue 19, item 9).

Before, it started its producer once at start-up with no retry: with no broker the process exited,
and under Kubernetes it crash-looped. The broker is reached through a TCP proxy the test opens only
later; the API's process is the same one throughout.
"""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from callvault.embedded.processes import free_port
from callvault.embedded.worker_process import start_callvault_process
from tests.conftest import ARTIFACTS, make_settings, prepare_async, settings_env
from tests.faults.s3_proxy import FaultProxy
from tests.stack import Servers

pytestmark = pytest.mark.integration


async def _status(client: httpx.AsyncClient, path: str) -> int | None:
    try:
        return (await client.get(path)).status_code
    except httpx.TransportError:
        return None


async def _until(client: httpx.AsyncClient, path: str, status: int, timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while (seen := await _status(client, path)) != status:
        assert asyncio.get_running_loop().time() < deadline, f"{path} still {seen} after {timeout:.0f}s"
        await asyncio.sleep(0.3)


async def test_the_api_waits_for_the_broker_and_becomes_ready_without_a_restart(servers: Servers) -> None:
    settings = make_settings(servers, "b" + secrets.token_hex(3))
    await prepare_async(settings)  # topics on the real broker, buckets in the store
    host, _, port = settings.kafka_bootstrap.rpartition(":")
    proxy = FaultProxy(host, int(port)).start()
    proxy.set("refuse")
    api_port = free_port()
    env = {
        **settings_env(settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{proxy.port}"})),
        "CALLVAULT_API_HOST": "127.0.0.1",
        "CALLVAULT_API_PORT": str(api_port),
        "CALLVAULT_API_OPS_PORT": "0",
    }
    ARTIFACTS.mkdir(exist_ok=True)
    api = start_callvault_process(
        ["api"], env, ARTIFACTS / f"api-broker-late-{settings.app_id}.log", "api-late"
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=5) as client:
            await _until(client, "/healthz", 200, 60)
            unready = await client.get("/readyz")
            assert unready.status_code == 503 and "kafka" in unready.json()["problems"], unready.text
            pid = api.pid

            proxy.set("pass")  # the broker comes up
            await _until(client, "/readyz", 200, 60)

            assert api.alive() and api.pid == pid, "the API was restarted"
    finally:
        api.stop()
        proxy.stop()
