"""Fault rules: what to inject into which requests (:class:`FaultRule`), validated.

The rule model alone, with pydantic and nothing heavier: the services' settings read their
start-up rules with it (``<SERVICE>_SERVICE_FAULTS``) and ``ordersim faults`` builds rules
with it, neither loading FastAPI. :mod:`common.faults` applies the rules to requests.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

#: Paths no rule ever touches: health probes and this admin API itself.
EXEMPT_PATHS = ("/healthz", "/admin")
ADMIN_PATH = "/admin/faults"

#: The names a fault leaves on the span it touches (read by the viewer and the CLI too).
ATTR_INJECTED = "ordersim.fault.injected"
ATTR_KIND = "ordersim.fault.kind"
ATTR_SCOPE = "ordersim.fault.scope"
ATTR_DELAY_MS = "ordersim.fault.delay_ms"
ATTR_STATUS_CODE = "ordersim.fault.status_code"
ATTR_REASON = "ordersim.fault.reason"
EVENT_INJECTED = "fault.injected"
EVENT_HANG_ENDED = "fault.hang_ended"
#: The status of an injected error (HTTP 500 — a 5xx the order service does not retry).
ERROR_STATUS = 500

_ENDPOINT = re.compile(r"^(?:(?P<method>[A-Za-z]+)\s+)?(?P<path>/\S*)$")
#: An hour: longer delays are a typo, and would outlive any caller.
_MAX_MS = 3_600_000


@functools.lru_cache(maxsize=256)  # matched on every request
def split_endpoint(endpoint: str) -> tuple[str | None, str]:
    """``"post /charges/"`` → ``("POST", "/charges")``; ``"/charges"`` → ``(None, "/charges")``."""
    match = _ENDPOINT.match(endpoint.strip())
    if match is None:
        raise ValueError(
            f"{endpoint!r} is not an endpoint: give a path prefix ('/charges') or a method and "
            "a path prefix ('POST /charges')"
        )
    method = match["method"].upper() if match["method"] else None
    path = match["path"].rstrip("/") or "/"
    return method, path


def is_exempt(path: str) -> bool:
    """True for the paths no fault ever touches (health probes, the admin API)."""
    return any(path == p or path.startswith(p + "/") for p in EXEMPT_PATHS)


def _path_matches(prefix: str, path: str) -> bool:
    # Whole segments: "/charges" matches "/charges" and "/charges/x", not "/chargesx".
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


class FaultRule(BaseModel):
    """What to inject into the requests of one scope: the whole service, or one endpoint.

    Per request, in this order: a hang (the request is never answered until the client
    disconnects); else a delay of ``latency_ms`` ± ``jitter_ms`` (uniform); then, with
    probability ``timeout_rate``, a wait of ``timeout_ms`` before the request is handled
    (the caller's timeout should fire first; the request still lands afterwards); then,
    with probability ``error_rate``, HTTP 500 instead of the handler's answer.
    """

    # Strict: a string where a number belongs is an error, as in every request body.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, strict=True)

    #: None: every endpoint of the service. Else a path prefix ("/charges") or a method and
    #: a path prefix ("POST /charges"), matched by whole path segments.
    endpoint: str | None = None
    latency_ms: float = Field(default=0, ge=0, le=_MAX_MS)
    jitter_ms: float = Field(default=0, ge=0, le=_MAX_MS)
    error_rate: float = Field(default=0, ge=0, le=1)
    timeout_rate: float = Field(default=0, ge=0, le=1)
    timeout_ms: float = Field(default=30_000, gt=0, le=_MAX_MS)
    hang: bool = False
    #: Seeds this rule's own random generator each time the rules are set, for reproducible
    #: runs; None: the service's shared generator.
    seed: int | None = None

    @field_validator("endpoint")
    @classmethod
    def _normalise_endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return None
        method, path = split_endpoint(value)
        if is_exempt(path):
            raise ValueError(f"{path} is never faulted (health probes and the admin API)")
        return f"{method} {path}" if method else path

    @model_validator(mode="after")
    def _injects_something(self) -> FaultRule:
        if not (
            self.latency_ms or self.jitter_ms or self.error_rate or self.timeout_rate or self.hang
        ):
            raise ValueError(
                "the rule injects nothing: set latency_ms, jitter_ms, error_rate, timeout_rate "
                "or hang"
            )
        return self

    @property
    def scope(self) -> str:
        """The endpoint, or "*" for the whole service (the span attribute's value)."""
        return self.endpoint or "*"

    def matches(self, method: str, path: str) -> bool:
        if self.endpoint is None:
            return True
        rule_method, prefix = split_endpoint(self.endpoint)
        return (rule_method is None or rule_method == method) and _path_matches(prefix, path)

    def specificity(self) -> tuple[int, int]:
        """The most specific matching rule wins: longer path, then with a method."""
        if self.endpoint is None:
            return (-1, 0)
        method, prefix = split_endpoint(self.endpoint)
        return (len(prefix), method is not None)

    def describe(self) -> str:
        """One readable line: "latency 100 ms ±20 ms, 30% errors (HTTP 500)"."""
        if self.hang:
            return "hangs every request (until the client gives up)"
        parts = []
        if self.latency_ms or self.jitter_ms:
            jitter = f" ±{_num(self.jitter_ms)} ms" if self.jitter_ms else ""
            parts.append(f"latency {_num(self.latency_ms)} ms{jitter}")
        if self.timeout_rate:
            parts.append(f"{_pct(self.timeout_rate)} time out (held {_num(self.timeout_ms)} ms)")
        if self.error_rate:
            parts.append(f"{_pct(self.error_rate)} errors (HTTP {ERROR_STATUS})")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return ", ".join(parts)


def _num(value: float) -> str:
    return f"{value:g}"


def _pct(rate: float) -> str:
    return f"{rate * 100:g}%"


def distinct_scopes(rules: list[FaultRule]) -> list[FaultRule]:
    seen: set[str] = set()
    for rule in rules:
        if rule.scope in seen:
            where = "the whole service" if rule.endpoint is None else rule.endpoint
            raise ValueError(f"two rules for {where}: give one rule per scope")
        seen.add(rule.scope)
    return rules


#: A service's rules: at most one per scope.
FaultRules = Annotated[list[FaultRule], AfterValidator(distinct_scopes)]


def validate_rules_setting(
    value: object, handler: ValidatorFunctionWrapHandler, variable: str
) -> list[FaultRule]:
    """Validate ``<SERVICE>_SERVICE_FAULTS`` (JSON text, or rules given in code); the error
    names the variable, the rule and the field."""
    if isinstance(value, str | bytes):
        text = value.decode() if isinstance(value, bytes) else value
        try:
            value = json.loads(text) if text.strip() else []
        except ValueError as exc:
            raise ValueError(
                f"{variable} must be a JSON list of fault rules, e.g. "
                f'\'[{{"endpoint": "POST /charges", "error_rate": 0.3}}]\' ({exc})'
            ) from None
    try:
        rules: list[FaultRule] = handler(value)
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ValueError(f"{variable}: {problems}") from None
    return rules


def _problem(error: ErrorDetails) -> str:
    where = [f"rule {part}" if isinstance(part, int) else str(part) for part in error["loc"]]
    message = error["msg"].removeprefix("Value error, ")
    return ": ".join([*where, message])
