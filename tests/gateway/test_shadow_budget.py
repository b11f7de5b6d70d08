"""The shadow budget's bucket and its meter, on their own (the runner's use: tests/shadow/test_priority.py)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from gateway.settings import GatewaySettings
from gateway.shadow_budget import CpuBudget, metered


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_holds_one_second_of_its_share_and_refills_at_that_rate() -> None:
    clock = Clock()
    budget = CpuBudget(0.1, clock=clock)
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
