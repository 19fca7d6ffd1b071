"""The coaches' page in a real browser: log in, list, open a call, play its recording."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from callvault.api.tokens import issue_token
from callvault.rules.access import Role
from callvault.settings import Settings
from callvault.simulation.audio import make_wav
from tests.browser import browser_page
from tests.conftest import ARTIFACTS
from tests.integration.helpers import Bus

pytestmark = pytest.mark.integration

SECONDS = 3.0


async def _archive_a_call(settings: Settings) -> str:
    async with Bus(settings) as bus:
        call = bus.script(audio=make_wav(4242, SECONDS, [(1.0, 2.0)]))
        pause = [
            call.at("recording.paused", 1, mode="silence"),
            call.at("recording.resumed", 2, mode="silence"),
        ]
        await bus.send_call(call, call.started(), call.disclosure(), *pause, call.stored(), call.ended())
        await bus.wait_types(call.call_id, "recording.archived", "metadata.archived")
        return call.call_id


def test_a_coach_logs_in_finds_a_call_and_plays_it(settings: Settings, api_url: str) -> None:
    call_id = asyncio.run(_archive_a_call(settings))
    secret = settings.api_token_secret.get_secret_value()
    token = issue_token(secret, "coach@acme", Role.QA, ["acme"], datetime.now(UTC), timedelta(hours=1))

    with browser_page() as page:
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(api_url)
        page.fill("#token", token)
        page.click("#login button[type=submit]")
        page.wait_for_selector("#whoami:has-text('coach@acme')")
        page.fill("#call-id", call_id)
        page.click("#search")
        row = page.locator(f"#results tbody tr[data-call-id='{call_id}']")
        row.wait_for()
        assert "archived" in row.inner_text() and "compliant" in row.inner_text()
        row.click()
        page.fill("#purpose", "coaching session with agent-7")
        page.click("#open")
        page.wait_for_selector("#disclosure:has-text('compliant')")
        assert "day" in page.inner_text("#days-left")
        assert "1.0–2.0 s (silence)" in page.inner_text("#d-pauses")  # the pause, on its timeline too
        assert page.locator("#d-timeline .pause").count() == 1
        duration = page.evaluate(
            """() => new Promise((resolve, reject) => {
                const player = document.getElementById('player');
                const done = () => resolve(player.duration);
                if (player.readyState >= 3) done();
                player.addEventListener('canplay', done, {once: true});
                player.addEventListener('error', () => reject(new Error('audio: ' + player.error?.code)));
                setTimeout(() => reject(new Error('no canplay within 20 s')), 20000);
            })"""
        )
        assert abs(duration - SECONDS) < 0.05, duration
        page.evaluate("document.getElementById('player').play()")
        page.wait_for_function("document.getElementById('player').currentTime > 0.2", timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "qa-page.png"), full_page=True)
        assert errors == []
