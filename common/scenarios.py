"""The planted performance bugs ("find the bug"): every scenario, declared once.

Modelled on the OpenTelemetry Demo's single flag file: each scenario has a name, the
service that plants it, what you notice, and the variant that service runs while it is
on (off: the normal code). ``ORDERSIM_SCENARIOS`` (comma-separated) switches them on; an
unknown name stops start-up, naming the valid ones. A service asks
:meth:`common.settings.ServiceSettings.planted` for its own scenarios once, when its app
is built, and picks the variant then; no request handler tests a scenario.

docs/scenarios.md walks through each one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scenario(StrEnum):
    SEQUENTIAL_CALLS = "sequential_calls"
    POOL_OF_ONE = "pool_of_one"
    N_PLUS_ONE = "n_plus_one"
    SLOW_CARD_RANGE = "slow_card_range"


@dataclass(frozen=True)
class Planted:
    service: str  # the service.name of the service that plants it
    symptom: str  # what you notice in the waterfall
    variant: str  # what that service runs instead while it is on, and where it is chosen


REGISTRY: dict[Scenario, Planted] = {
    Scenario.SEQUENTIAL_CALLS: Planted(
        "order-service",
        "two pairs of calls that should overlap run one after the other",
        "steps 2 and 4 await in_turn instead of settle_all (OrderFlow, order_service/flow.py)",
    ),
    Scenario.POOL_OF_ONE: Planted(
        "inventory-service",
        "database statements wait for each other; slow orders wait before they query",
        "a connection pool of one (inventory_service/app.py)",
    ),
    Scenario.N_PLUS_ONE: Planted(
        "inventory-service",
        "one SELECT per product where one query would do",
        "GET /products lists with storage.list_products_one_by_one (inventory_service/app.py)",
    ),
    Scenario.SLOW_CARD_RANGE: Planted(
        "payment-service",
        "orders paid with one range of card numbers take about 300 ms longer",
        "5555… cards go to a legacy processor that answers in 300 ms "
        "(route_by_bin_range, payment_service/app.py)",
    ),
}


def parse(value: str) -> frozenset[Scenario]:
    """``"n_plus_one, pool_of_one"`` → the scenarios; ValueError names an unknown one and
    the valid names."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in Scenario.__members__.values()]
    if unknown:
        valid = ", ".join(Scenario)
        raise ValueError(
            f"unknown scenario {', '.join(map(repr, unknown))}; the scenarios are: {valid}"
        )
    return frozenset(Scenario(name) for name in names)


def describe(scenario: Scenario) -> str:
    """One line: "n_plus_one (inventory-service): one SELECT per product …"."""
    planted = REGISTRY[scenario]
    return f"{scenario} ({planted.service}): {planted.symptom}"
