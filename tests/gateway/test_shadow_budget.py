"""The shadow budget's bucket and its meter, on their own (the runner's use: tests/shadow/test_priority.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from gateway.shadow_budget import CpuBudget, metered
from tests.support import ProcessCpu


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_holds_one_second_of_its_share_at_most_and_refills_at_that_rate() -> None:
    clock = Clock()
    budget = CpuBudget(0.1, clock=clock, burst=1.0)
    assert budget.capacity == pytest.approx(0.1)  # a second's share, below the burst
    assert budget.allows()
    budget.charge(0.15)  # one long shadow overdraws it
    assert not budget.allows()
    clock.now += 0.4  # -0.05 + 0.04
    assert not budget.allows()
    clock.now += 0.2  # + 0.02
    assert budget.allows()
    clock.now += 100  # an idle spell does not save up more than one second's worth
    budget.charge(0.1)
    assert not budget.allows()
    assert budget.used == pytest.approx(0.25)


def test_after_an_idle_spell_at_most_a_burst_of_shadow_work_runs_back_to_back() -> None:
    # the bench's open loop: a second's share (50 ms at 5 %) spent at once set the p99 of
    # the requests arriving meanwhile; the bucket now holds `burst` (5 ms by default)
    clock = Clock()
    budget = CpuBudget(0.05, clock=clock)
    assert budget.capacity == pytest.approx(0.005)
    clock.now += 3600
    ran = 0
    while budget.allows():
        budget.charge(0.001)  # shadows of 1 ms each, back to back
        ran += 1
    assert ran == 5
    clock.now += 0.02  # then the share's rate: 1 ms of work per 20 ms
    assert budget.allows()
    budget.charge(0.001)
    assert not budget.allows()


@pytest.mark.parametrize(
    ("busy", "shadows", "rate"),
    [
        (0.10, 0.0, 0.05),  # headroom to spare: the whole share
        (0.72, 0.0, 0.03),  # 0.03 left below the ceiling
        (0.90, 0.0, 0.01),  # over it: the floor
        (0.80, 0.04, 0.01),  # the shadows' own 0.04 is not the clients' load: 0.76, still over
        (0.74, 0.04, 0.05),  # 0.70 of clients: 0.05 left, the whole share
    ],
)
def test_the_rate_is_what_the_process_leaves_below_the_ceiling_and_at_least_the_floor(
    busy: float, shadows: float, rate: float
) -> None:
    clock = Clock()
    cpu = ProcessCpu(clock)
    budget = CpuBudget(0.05, clock=clock, ceiling=0.75, floor=0.01, cpu_clock=cpu)
    cpu.busy = busy
    clock.now += 0.5
    budget.charge(shadows * 0.5)  # what shadows held the loop in that half second
    budget.allows()
    assert budget.rate == pytest.approx(rate)
    # and the bucket fills at that rate: empty it, and 50 ms later it holds 0.05 * `rate`
    budget.charge(budget._tokens)
    clock.now += 0.05  # within the sample: no new reading
    budget.allows()
    assert budget._tokens == pytest.approx(0.05 * rate)


def test_a_budget_of_a_whole_core_never_says_no() -> None:
    budget = CpuBudget(1.0, clock=Clock())
    budget.charge(50)
    assert budget.allows() and budget.unlimited


@pytest.mark.anyio
async def test_the_meter_charges_the_steps_not_the_waits() -> None:
    charges: list[float] = []

    async def work() -> str:
        await asyncio.sleep(0.05)
        deadline = time.perf_counter() + 0.02
        while time.perf_counter() < deadline:  # 20 ms holding the loop
            pass
        await asyncio.sleep(0)
        return "done"

    started = time.perf_counter()
    assert await metered(work(), charges.append) == "done"
    assert time.perf_counter() - started >= 0.07
    assert 0.02 <= sum(charges) < 0.04
    assert len(charges) == 3  # one per step: before the sleep, the busy part, after the yield


@pytest.mark.anyio
async def test_a_timeout_cancels_the_metered_call_and_is_charged_what_ran() -> None:
    charges: list[float] = []
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(metered(asyncio.sleep(10), charges.append), 0.01)
    assert charges and sum(charges) < 0.01


@pytest.mark.parametrize("share", [0, -0.1, 1.5])
def test_the_budget_setting_is_a_share_of_one_core(share: float) -> None:
    with pytest.raises(ValidationError, match="shadow_cpu_budget"):
        GatewaySettings(shadow_cpu_budget=share)


@pytest.mark.parametrize(
    ("name", "value"),
    [("shadow_cpu_ceiling", 0), ("shadow_cpu_floor", -0.01), ("shadow_cpu_floor", 2), ("shadow_cpu_burst_ms", 0)],
)
def test_the_ceiling_floor_and_burst_settings_are_checked(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=name):
        GatewaySettings(**{name: value})
