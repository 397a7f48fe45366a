"""payment-service's sandbox cards: in test mode the card number decides the outcome, as
payment processors' test modes do it. Plain constants, cheap to import (the CLI, the load
generator and the tests use them too)."""

APPROVED = "4242424242424242"
DECLINED = "4000000000000002"
INSUFFICIENT_FUNDS = "4000000000009995"

#: The sandbox cards by the outcome they give, as ``ordersim order --card`` names them.
BY_OUTCOME = {"approved": APPROVED, "declined": DECLINED, "insufficient": INSUFFICIENT_FUNDS}
