"""The search parameters of the query API, as Jaeger reads them, parsed into a TraceQuery.

- v1 (``GET /api/traces``, as Jaeger UI calls it; and our ``GET /api/summaries``): Jaeger's
  ``cmd/query/app/query_parser.go``: ``service``, ``operation``, ``tags`` (a JSON object;
  repeatable), ``tag`` (``key:value``; repeatable), ``minDuration``/``maxDuration`` (Go
  durations: ``250ms``, ``1.5s``, ``1m30s``), ``start``/``end`` (µs since the epoch),
  ``limit``, ``traceID`` (repeatable); and ``lookback`` (``1h``, ``2d``), which Jaeger UI
  sends beside ``start``: used when ``start`` is absent.
- v3 (``GET /api/v3/traces``): Jaeger v2's ``cmd/query/app/apiv3``: ``query.serviceName``,
  ``query.operationName``, ``query.startTimeMin``/``query.startTimeMax`` (RFC 3339, both
  required), ``query.durationMin``/``query.durationMax``, ``query.attributes`` (a JSON
  object), ``query.searchDepth`` (or ``query.num_traces``), ``query.rawTraces``; each also
  under its snake_case name (``query.service_name``, …), which Jaeger keeps as an alias.

A malformed value raises :class:`BadQuery` naming the parameter, which the API answers with
a 400 in the shape of the version asked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation

from trace_viewer.jaeger import trace_id_from_text
from trace_viewer.store import GO_BOOLS, TraceQuery

#: The longest duration the store can compare against (SQLite's INTEGER, in ns: 292 years).
MAX_DURATION_NS = 2**63 - 1
#: Most traces one search returns (Jaeger's own default is 100).
MAX_LIMIT = 1000
DEFAULT_V1_LIMIT = 100
DEFAULT_SEARCH_DEPTH = 100

_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 MICRO SIGN
    "μs": 1_000,  # U+03BC GREEK SMALL LETTER MU, both as Go's time.ParseDuration takes them
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
#: Jaeger UI's lookbacks also count in days and weeks (``2d``, ``1w``).
_LOOKBACK_NS = _NS | {"d": 24 * _NS["h"], "w": 7 * 24 * _NS["h"]}
_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_UNIT = "|".join(sorted(_LOOKBACK_NS, key=len, reverse=True))  # "ms" before "m"
_TERM = re.compile(rf"({_NUMBER})({_UNIT})")
_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"^\d+$")
_MICROS = re.compile(r"^-?\d+$")
#: Go's strconv.ParseBool.

# What the OpenAPI declares for each parameter (documentation and the fuzzer's guide; the
# parsing below is what holds, so that a bad value is Jaeger's 400, not FastAPI's 422).
DURATION_PATTERN = rf"^({_NUMBER}|({_NUMBER}(ns|us|µs|μs|ms|s|m|h))+)?$"
LOOKBACK_PATTERN = rf"^({_NUMBER}|({_NUMBER}({_UNIT}))+|custom)?$"
INTEGER_PATTERN = r"^(\d+)?$"
MICROS_PATTERN = r"^(-?\d+)?$"
TRACE_ID_PATTERN = r"^[0-9a-fA-F]{1,32}$"
RFC3339_PATTERN = _RFC3339.pattern
BOOL_PATTERN = rf"^({'|'.join(sorted(GO_BOOLS))})?$"


class BadQuery(ValueError):
    """A malformed search parameter: a 400, in Jaeger's error shape of the API asked."""


@dataclass(frozen=True)
class Search:
    """A parsed search: the query, or the traces asked for by id (which Jaeger answers
    whatever the other parameters say)."""

    query: TraceQuery
    trace_ids: tuple[str, ...] = ()


def parse_duration(text: str | None, name: str, units: Mapping[str, int] = _NS) -> int:
    """A Go duration (``250ms``, ``1.5s``, ``1h30m``; a bare number is µs) in ns; 0 when
    empty."""
    if not text:
        return 0
    if re.fullmatch(_NUMBER, text):
        terms = [(text, "us")]
    else:
        terms = _TERM.findall(text)
        if "".join(number + unit for number, unit in terms) != text or any(
            unit not in units for _, unit in terms
        ):
            raise BadQuery(
                f"unable to parse param '{name}': {text[:80]!r} is not a duration "
                "(e.g. 250ms, 1.5s, 800us, 1m30s)"
            )
    try:
        nanos = sum(Decimal(number) * units[unit] for number, unit in terms)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits numbers only
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r}") from exc
    if nanos > MAX_DURATION_NS:
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r} is longer than 292 years")
    return int(nanos)


def parse_bool(text: str | None, name: str) -> bool:
    """A boolean as Go's strconv.ParseBool reads it (``true``, ``1``, ``F``, …); False when
    empty."""
    if not text:
        return False
    if text not in GO_BOOLS:
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r} is not a boolean")
    return GO_BOOLS[text]


def _micros(text: str | None, name: str) -> int | None:
    """µs since the epoch, as ns; None when empty."""
    if not text:
        return None
    if not _MICROS.match(text) or len(text) > 20:
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r} is not µs since the epoch")
    nanos = int(text) * 1000
    if abs(nanos) > MAX_DURATION_NS:
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r} is out of range")
    return nanos


def _count(text: str, highest: int) -> int | None:
    """A whole number from 1 to ``highest`` written in digits (leading zeros allowed), or
    None. (Python refuses to read an integer of over 4,300 digits: the digits that matter
    are read, not the string.)"""
    digits = text.lstrip("0") if _DIGITS.match(text) else ""
    if not digits or len(digits) > len(str(highest)) or int(digits) > highest:
        return None
    return int(digits)


def _limit(text: str | None, name: str, default: int) -> int:
    if not text:
        return default
    limit = _count(text, MAX_LIMIT)
    if limit is None:
        raise BadQuery(f"unable to parse param '{name}': {text[:80]!r}: use 1 to {MAX_LIMIT}")
    return limit


def _tags(json_tags: Sequence[str], simple_tags: Sequence[str], name: str) -> dict[str, str]:
    """Jaeger's ``tags`` (JSON objects of strings) and ``tag`` (``key:value``), merged."""
    tags: dict[str, str] = {}
    for tag in simple_tags:
        key, colon, value = tag.partition(":")
        if not colon:
            raise BadQuery(
                f"malformed 'tag' parameter, expecting key:value, received: {tag[:80]!r}"
            )
        tags[key] = value
    for text in json_tags:
        try:
            document = json.loads(text)
        except (json.JSONDecodeError, RecursionError) as exc:
            raise BadQuery(f"malformed '{name}' parameter, cannot unmarshal JSON: {exc}") from exc
        if not isinstance(document, dict) or not all(isinstance(v, str) for v in document.values()):
            raise BadQuery(
                f"malformed '{name}' parameter: a JSON object of strings, e.g. "
                '{"http.response.status_code":"402"}'
            )
        tags.update(document)
    return tags


def _durations(minimum: str | None, maximum: str | None, names: tuple[str, str]) -> tuple[int, int]:
    low, high = parse_duration(minimum, names[0]), parse_duration(maximum, names[1])
    if low and high and high < low:
        raise BadQuery(f"'{names[1]}' should be greater than '{names[0]}'")
    return low, high


def v1_search(
    *,
    service: str | None,
    operation: str | None,
    tags: Sequence[str],
    tag: Sequence[str],
    min_duration: str | None,
    max_duration: str | None,
    start: str | None,
    end: str | None,
    lookback: str | None,
    limit: str | None,
    trace_ids: Sequence[str],
    errors_only: bool = False,
    default_limit: int = DEFAULT_V1_LIMIT,
    now_ns: int | None = None,
) -> Search:
    """Jaeger's v1 search parameters. Without ``start``, ``lookback`` reaches back from
    ``end`` (or now); without either, every stored trace is searched (Jaeger's default
    window is two days: the store's retention bounds ours)."""
    ids = []
    for value in trace_ids:
        try:
            ids.append(trace_id_from_text(value))
        except ValueError as exc:
            raise BadQuery(f"cannot parse traceID param: {str(exc)[:120]}") from None
    low, high = _durations(min_duration, max_duration, ("minDuration", "maxDuration"))
    start_ns, end_ns = _micros(start, "start"), _micros(end, "end")
    reach = 0 if lookback == "custom" else parse_duration(lookback, "lookback", _LOOKBACK_NS)
    if start_ns is None and reach:
        now = now_ns if now_ns is not None else time.time_ns()
        start_ns = (end_ns if end_ns is not None else now) - reach
    query = TraceQuery(
        service=service or None,
        operation=operation or None,
        attributes=_tags(tags, tag, "tags"),
        min_duration_ns=low,
        max_duration_ns=high,
        start_min_ns=start_ns,
        start_max_ns=end_ns,
        errors_only=errors_only,
        limit=_limit(limit, "limit", default_limit),
    )
    return Search(query, tuple(ids))


def _rfc3339(text: str, name: str) -> int:
    """RFC 3339 (Go's time.RFC3339Nano layout) as ns since the epoch."""
    match = _RFC3339.match(text)
    if match is None:
        raise BadQuery(f"malformed parameter {name}: {text[:80]!r} is not an RFC 3339 time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        offset = (
            timedelta(0)
            if zone == "Z"
            else (1 if zone[0] == "+" else -1)
            * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6]))
        )
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            tzinfo=timezone(offset),
        )
    except ValueError as exc:
        raise BadQuery(f"malformed parameter {name}: {exc}") from exc
    seconds = (moment - _EPOCH) // timedelta(seconds=1)
    return seconds * 1_000_000_000 + int((fraction or "").ljust(9, "0"))


def _int64(nanos: int) -> int:
    """A time as the store compares it: its times are int64 ns (1677 to 2262), so one beyond
    them is the end of that range (0001-01-01 searches from the first trace)."""
    return min(max(nanos, -MAX_DURATION_NS - 1), MAX_DURATION_NS)


def _v3(params: Mapping[str, str], canonical: str) -> tuple[str, str]:
    """A v3 parameter's value and the name it came under: the camelCase name, else its
    snake_case alias (``query.serviceName``, ``query.service_name``)."""
    value = params.get(canonical, "")
    if value:
        return value, canonical
    alias = "query." + re.sub(r"[A-Z]", lambda m: "_" + m[0].lower(), canonical[6:])
    return params.get(alias, ""), alias


def v3_search(params: Mapping[str, str], max_depth: int = MAX_LIMIT) -> Search:
    """Jaeger v2's ``/api/v3/traces`` parameters (its http_gateway's parseFindTracesQuery)."""
    low_text, low_name = _v3(params, "query.startTimeMin")
    high_text, high_name = _v3(params, "query.startTimeMax")
    if not low_text or not high_text:
        raise BadQuery("query.startTimeMin and query.startTimeMax are required")
    low, high = _rfc3339(low_text, low_name), _rfc3339(high_text, high_name)
    if low >= high:
        raise BadQuery("query.startTimeMin must be before query.startTimeMax")
    depth_text, depth_name = _v3(params, "query.searchDepth")
    if not depth_text and params.get("query.num_traces"):
        depth_text, depth_name = params["query.num_traces"], "query.num_traces"
    depth = DEFAULT_SEARCH_DEPTH
    if depth_text:
        counted = _count(depth_text, max_depth)
        if counted is None:
            raise BadQuery(f"malformed parameter {depth_name}: use 1 to {max_depth}")
        depth = counted
    durations = [_v3(params, f"query.duration{end}") for end in ("Min", "Max")]
    for text, name in durations:
        try:
            parse_duration(text, name)
        except BadQuery as exc:
            why = str(exc).removeprefix(f"unable to parse param '{name}': ")
            raise BadQuery(f"malformed parameter {name}: {why}") from None
    raw, raw_name = _v3(params, "query.rawTraces")
    try:
        parse_bool(raw, raw_name)  # read and checked; the store keeps traces as sent
    except BadQuery as exc:
        raise BadQuery(f"malformed parameter {raw_name}: {exc}") from None
    attributes: dict[str, str] = {}
    if params.get("query.attributes"):
        try:
            attributes = _tags([params["query.attributes"]], [], "query.attributes")
        except BadQuery as exc:
            raise BadQuery(f"malformed parameter query.attributes: {exc}") from None
    low_ns, high_ns = _durations(
        durations[0][0], durations[1][0], ("query.durationMin", "query.durationMax")
    )
    query = TraceQuery(
        service=_v3(params, "query.serviceName")[0] or None,
        operation=_v3(params, "query.operationName")[0] or None,
        attributes=attributes,
        min_duration_ns=low_ns,
        max_duration_ns=high_ns,
        start_min_ns=_int64(low),
        start_max_ns=_int64(high),
        limit=depth,
    )
    return Search(query)
