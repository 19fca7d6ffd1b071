"""Reading a running process's probes and metrics, as an operator's tooling would."""

from __future__ import annotations

import asyncio
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families

from callvault.embedded.processes import ChildProcess

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(base: str) -> Samples:
    """Every sample of `{base}/metrics`, by name and sorted labels."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every sample of `name` whose labels include these."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= set(lab))


async def wait_ok(url: str, timeout: float) -> httpx.Response:
    """GET `url` until it answers 200; fail with the last answer after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: object = None
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            try:
                answer = await client.get(url)
                if answer.status_code == 200:
                    return answer
                last = answer.text
            except httpx.TransportError as exc:
                last = exc
            await asyncio.sleep(0.3)
    raise AssertionError(f"{url} not 200 within {timeout}s; last: {last}")


def worker_ops(proc: ChildProcess) -> str:
    """The base URL of a worker's health and metrics (spawn_worker picked its port)."""
    env = proc.env or {}
    return f"http://127.0.0.1:{env['CALLVAULT_WORKER_HTTP_PORT']}"


async def passes_after(procs: list[ChildProcess], more: int, timeout: float = 60) -> None:
    """Wait until these workers have finished `more` purge passes beyond those finished now.

    The positive signal for "later passes did nothing more": a pass counts as
    finished only once what it did is written to `lifecycle`. Passes are summed
    over the workers, since only the leader of the moment runs them.
    """

    def finished() -> float:
        return sum(
            value(scrape(worker_ops(proc)), "callvault_purge_passes_total", result="done") for proc in procs
        )

    for proc in procs:  # a worker can purge before its metrics endpoint is up: wait for it first
        await wait_ok(f"{worker_ops(proc)}/metrics", timeout)
    start = await asyncio.to_thread(finished)
    deadline = time.monotonic() + timeout
    while await asyncio.to_thread(finished) < start + more:
        assert time.monotonic() < deadline, f"fewer than {more} purge passes finished in {timeout}s"
        await asyncio.sleep(0.2)


def _owned(samples: Samples, topic: str) -> set[str]:
    """The partitions of `topic` a worker reports lag for: the ones assigned to it now."""
    return {
        dict(labels)["partition"]
        for (name, labels), _ in samples.items()
        if name == "callvault_consumer_lag" and dict(labels).get("topic") == topic
    }


async def sharing(procs: list[ChildProcess], topic: str, partitions: int, timeout: float = 60) -> None:
    """Wait until these workers are ready and split `topic`'s partitions between them, each some."""
    deadline = time.monotonic() + timeout
    while True:
        seen = [await asyncio.to_thread(scrape, worker_ops(proc)) for proc in procs]
        owned = [_owned(samples, topic) for samples in seen]
        ready = all(value(samples, "callvault_worker_ready") == 1 for samples in seen)
        split = all(owned) and sum(map(len, owned)) == len(set().union(*owned)) == partitions
        if ready and split:
            return
        assert time.monotonic() < deadline, f"the group did not settle within {timeout}s: {owned}"
        await asyncio.sleep(0.3)
