"""free_port: a port for a server about to start, where no outgoing connection can take it first."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from callvault.embedded import processes
from callvault.embedded.processes import free_port


def test_a_port_is_below_the_kernels_ephemeral_range_and_bindable() -> None:
    low = processes._ephemeral_low()
    port = free_port()
    assert processes.LOWEST_PORT <= port < low
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))  # free, as promised


def test_one_process_never_hands_out_a_port_twice() -> None:
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)


def test_a_port_in_use_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        busy = taken.getsockname()[1]
        taken.listen()
        picks = iter([busy, busy])

        class Fixed:
            def randrange(self, _low: int, _high: int) -> int:
                return next(picks, busy + 1 if busy < 65535 else busy - 1)

        monkeypatch.setattr(processes.random, "SystemRandom", Fixed)
        monkeypatch.setattr(processes, "_ephemeral_low", lambda: 65536)
        assert free_port() not in (busy,)


def test_without_room_below_the_range_the_kernel_picks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kernels_low = processes._ephemeral_low()
    narrow = tmp_path / "range"
    narrow.write_text("10500\t60999\n")  # 500 ports below it: too few to pick from at random
    monkeypatch.setattr(processes, "EPHEMERAL_RANGE", narrow)
    assert free_port() >= kernels_low  # bind(0): the kernel's own range
