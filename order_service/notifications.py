"""A confirmed order's notification to its customer, sent after the response.

The route's response calls :meth:`Confirmations.send` once the 201 has gone out
(:class:`~order_service.background.AfterResponse`); ``send`` only *starts* a
:class:`~order_service.background.Detached` job and returns. The notification itself runs
in its own trace (``send_confirmation``, whose span links to the order's ``place_order``
span), outside the request's ASGI cycle: neither the request's server span nor its
duration counts it. Run by Starlette's ``BackgroundTasks``, it would have hung under the
request's span after that span ended, and the request's duration would have waited for
it (docs/async-context.md).

The sink is shipping-service's ``POST /notifications`` (no mail server). A notification
that fails is recorded on its span and logged; the order stays confirmed.
"""

from __future__ import annotations

import logging

from opentelemetry import trace

from order_service.background import Detached
from order_service.models import Order
from shipping_service.client import ShippingClient

logger = logging.getLogger(__name__)


class Confirmations:
    """::

    confirmations = Confirmations(shipping, detached)
    confirmations.send(order, place_order_span.get_span_context())
    """

    def __init__(self, shipping: ShippingClient, detached: Detached) -> None:
        self._shipping = shipping
        self._detached = detached

    def send(self, order: Order, origin: trace.SpanContext) -> None:
        """Start sending ``order``'s confirmation in a trace of its own, linked to
        ``origin`` (the order's span); returns at once."""
        order_id = order.order_id

        async def notify(span: trace.Span) -> None:
            try:
                await self._shipping.notify(order_id)
            except Exception as exc:
                # Never re-raised: the order is confirmed, whatever becomes of its mail.
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, str(exc)))
                logger.warning("the confirmation of order %s was not sent: %s", order_id, exc)
                return
            span.add_event("notified")

        self._detached.start(
            "send_confirmation",
            origin,
            notify,
            attributes={"shop.order.id": order_id, "shop.order.trace_id": order.trace_id},
        )
