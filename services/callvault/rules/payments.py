"""Card data never archived: every payment window must lie inside a recording pause. Pure.

PCI DSS forbids keeping card verification codes after authorisation in any form, audio included, and
platforms answer with pause and resume. Their users report the resume forgotten, the pause late or lost,
a pause refused while the platform said OK: so callvault judges the events, as it judges the disclosure.

A recording with a payment window is archived only when each window that the recording spans lies inside
one pause with `margin` (`CALLVAULT_PAYMENT_MARGIN`, PT2S) on both sides; touching pauses count as one. A
pause never resumed runs to the recording's end (fine for card data, and said so). A window whose end has
not arrived is waited for until the grace ends, then counts as exposure. Windows wholly outside the
recording are not in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Moment = datetime


@dataclass(frozen=True, slots=True)
class Span:
    start: Moment
    end: Moment | None  # None: not closed (a pause never resumed, a payment not ended)


@dataclass(frozen=True, slots=True)
class PaymentVerdict:
    state: Literal["no_payment", "secured", "exposed", "waiting"]
    detail: str
    until: Moment | None = None  # waiting: when to judge again
    pauses: tuple[Span, ...] = ()
    windows: tuple[Span, ...] = ()

    @property
    def archivable(self) -> bool:
        return self.state in ("no_payment", "secured")


def pause_spans(events: list[tuple[Moment, bool]], recording_end: Moment) -> tuple[Span, ...]:
    """`(at, paused)` events, in any order, as merged pause spans; an open one runs to the recording's end."""
    spans: list[Span] = []
    opened: Moment | None = None
    for at, paused in sorted(events, key=lambda e: (e[0], not e[1])):
        if paused and opened is None:
            opened = at
        elif not paused and opened is not None:
            spans.append(Span(opened, at))
            opened = None
    if opened is not None:
        spans.append(Span(opened, max(opened, recording_end)))
    merged: list[Span] = []
    for span in spans:
        if merged and merged[-1].end is not None and span.start <= merged[-1].end:
            last = merged.pop()
            merged.append(Span(last.start, max(last.end or span.end, span.end or last.end)))  # type: ignore[type-var]
        else:
            merged.append(span)
    return tuple(merged)


def payment_windows(events: list[tuple[Moment, bool, str | None]]) -> tuple[Span, ...]:
    """`(at, started, payment_id)` events as windows: an end closes the window of its id, or the oldest
    open one; an end with no window open is left out."""
    open_: dict[str | None, list[Moment]] = {}
    windows: list[Span] = []
    for at, started, pid in sorted(events, key=lambda e: (e[0], not e[1])):
        if started:
            open_.setdefault(pid, []).append(at)
            continue
        key = pid if open_.get(pid) else next((k for k, v in open_.items() if v), None)
        if key is None and not open_.get(None):
            continue
        begun = open_[key].pop(0)
        windows.append(Span(begun, at))
    windows += [Span(at, None) for starts in open_.values() for at in starts]
    return tuple(sorted(windows, key=lambda w: w.start))


def judge(
    pauses: tuple[Span, ...],
    windows: tuple[Span, ...],
    *,
    margin: timedelta,
    recording: Span,
    now: Moment,
    wait_until: Moment,
) -> PaymentVerdict:
    """Whether the recording may be archived as far as card data goes (see the module's docstring)."""
    assert recording.end is not None
    inside = [w for w in windows if not _outside(w, recording, margin)]
    if not inside:
        return PaymentVerdict("no_payment", "no payment window in the recording", None, pauses, windows)
    if any(w.end is None for w in inside):
        if now < wait_until:
            return PaymentVerdict("waiting", "a payment has not ended yet", wait_until, pauses, windows)
        return PaymentVerdict(
            "exposed", "a payment window never ended within the grace: card data may be in the recording",
            None, pauses, windows,
        )  # fmt: skip
    for w in inside:
        assert w.end is not None
        if not any(_holds(p, w, margin, recording) for p in pauses):
            return PaymentVerdict(
                "exposed",
                f"the payment from {w.start:%H:%M:%S} to {w.end:%H:%M:%S} UTC is not inside a recording "
                f"pause with {margin.total_seconds():.0f} s on both sides: card data may be in the recording",
                None, pauses, windows,
            )  # fmt: skip
    detail = "every payment window lies inside a pause"
    if any(p.end == recording.end for p in pauses):
        detail += " (a pause ran to the recording's end: the resume never came)"
    return PaymentVerdict("secured", detail, None, pauses, windows)


def _outside(window: Span, recording: Span, margin: timedelta) -> bool:
    assert recording.end is not None
    ends_before = window.end is not None and window.end + margin <= recording.start
    return ends_before or window.start - margin >= recording.end


def _holds(pause: Span, window: Span, margin: timedelta, recording: Span) -> bool:
    """Whether the pause covers the window, widened by the margin, as far as the recording runs."""
    assert pause.end is not None and window.end is not None and recording.end is not None
    need_from = max(window.start - margin, recording.start)
    need_to = min(window.end + margin, recording.end)
    return pause.start <= need_from and need_to <= pause.end
