"""Full card numbers never reach a span, a log line or a stored row: last 4 only."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from ordersim.testing import System
from tests.helpers import APPROVED, DECLINED, order_body


async def test_card_numbers_stay_out_of_spans_logs_and_databases(
    system: System, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for card in (APPROVED, DECLINED):
        response = await system.order.post("/orders", json=order_body(card=card))
        assert response.json()["card_last4"] == card[-4:]
        assert card not in response.text

    texts = []
    for span in system.spans():
        texts.append(span.name)
        texts += [str(v) for v in span.attributes.values()]
        texts += [str(v) for e in span.events for v in e.attributes.values()]
    assert any("4242" in t for t in texts)  # the last 4 are there, so the scan is real
    assert not [t for t in texts if APPROVED in t or DECLINED in t]

    assert not [r for r in caplog.records if APPROVED in r.getMessage()]

    databases = list(tmp_path.glob("*.db*"))
    assert len({p.name.split(".")[0] for p in databases}) == 4
    for path in databases:
        data = path.read_bytes()
        assert APPROVED.encode() not in data and DECLINED.encode() not in data, path.name
