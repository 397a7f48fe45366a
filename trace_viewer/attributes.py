"""How the search index keys an attribute: one 64-bit number per (key, value as text).

Jaeger compares a searched tag with an attribute as text: ``{"http.response.status_code":
"402"}`` matches the integer 402, ``"true"`` the boolean (its storage compares
``pcommon.Value.AsString()``). So an attribute is indexed by the text of its value, as
``AsString`` writes it, and a search computes the same key from the text it was given.

Only scalar values are indexed (string, integer, boolean, double), and strings up to
:data:`MAX_VALUE_CHARS` characters: what one searches for is an id, a status, a name, not a
stack trace or a SQL statement. Arrays, maps and bytes are shown but not searchable.

The key is a hash rather than the text itself, so an index row is two integers (the
store's ``span_attributes``); two different (key, value) pairs share a key only by a
64-bit collision, about one chance in 10^10 for the ~10^5 distinct pairs a full store
holds, and a search would then list a trace it should not have.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from decimal import Decimal

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

#: Longer strings are not indexed (a search for them finds nothing).
MAX_VALUE_CHARS = 256

_cache: dict[tuple[str, str], int] = {}
_CACHE_SIZE = 100_000


def attribute_key(key: str, text: str) -> int:
    """The index key of an attribute whose value reads ``text``: a signed 64-bit integer
    (SQLite's INTEGER)."""
    cached = _cache.get((key, text))
    if cached is not None:
        return cached
    digest = hashlib.blake2b(
        key.encode("utf-8", "surrogatepass") + b"\0" + text.encode("utf-8", "surrogatepass"),
        digest_size=8,
    ).digest()
    number = int.from_bytes(digest, "little", signed=True)
    if len(_cache) >= _CACHE_SIZE:  # values repeat (statuses, routes); ids do not
        _cache.clear()
    _cache[(key, text)] = number
    return number


def double_text(value: float) -> str:
    """A double as pdata's ``AsString`` writes it: ECMAScript's number-to-string (``2``,
    ``0.5``, ``1e-7``, ``1e+21``)."""
    if not math.isfinite(value):
        go = "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
        return f"json: unsupported value: {go}"
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        mantissa, exponent = repr(value).split("e")  # repr is shortest, exponent-form here
        return f"{mantissa.removesuffix('.0')}e{exponent[0]}{int(exponent[1:])}"
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


def value_text(value: AnyValue) -> str | None:
    """The text an indexed value is searched by, or None when it is not indexed."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        text: str = value.string_value
        return text if len(text) <= MAX_VALUE_CHARS else None
    if kind == "int_value":
        return str(value.int_value)
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "double_value":
        return double_text(value.double_value)
    return None


def attribute_keys(attributes: Iterable[KeyValue], into: set[int], prefix: str = "") -> None:
    """Add the index keys of ``attributes`` (their keys after ``prefix``) to ``into``."""
    for kv in attributes:
        text = value_text(kv.value)
        if text is not None:
            into.add(attribute_key(prefix + kv.key, text))
