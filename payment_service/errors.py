"""payment-service's typed errors, shared by its routes and its client."""

from __future__ import annotations

from common.errors import ServiceError


class PaymentDeclined(ServiceError):
    """402: the card was declined; ``code`` is card_declined or insufficient_funds."""

    status_code = 402

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
