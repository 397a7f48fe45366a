"""The OTLP intake under generated input (hypothesis): it has no OpenAPI for a fuzzer to read,
so the bodies are built here from the OTLP messages, valid and then corrupted.

Properties, over protobuf and JSON, HTTP and gRPC:

- never a 5xx, an INTERNAL/UNKNOWN status or a hang (every call has a timeout);
- a valid request is a 200 without rejections, and every span comes back as it was sent
  (OTLP JSON and Jaeger JSON both open, as strict JSON);
- a corrupt request is a 400 whose body is a ``google.rpc.Status``, or a 200 whose
  ``partialSuccess`` counts and names the spans refused; a bad field in one span costs that
  span alone, invalid UTF-8 costs nothing (repaired), an encoding that does not match the
  body is a 400, one we do not speak a 415.

Derandomized (a fixed seed), no example database, bounded examples: the same inputs every
run, a few seconds in all.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import itertools
import json
import zlib
from collections.abc import Iterator
from typing import Any

import grpc
import httpx
import pytest
import zstandard
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
    KeyValueList,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import (
    ResourceSpans,
    ScopeSpans,
    Span,
)
from opentelemetry.proto.trace.v1.trace_pb2 import (
    Status as SpanStatus,
)

from ordersim.testing.processes import Viewer, running_viewer

MAX_BODY = 512 * 1024
TIMEOUT = 10  # seconds: a hang is a failure, not a stuck test
PROTOBUF = "application/x-protobuf"
JSON = "application/json"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
FUZZ = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

_counter = itertools.count(1)


@pytest.fixture(scope="module")
def viewer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Viewer]:
    data = tmp_path_factory.mktemp("viewer")
    with running_viewer(data, TRACE_VIEWER_MAX_BODY_BYTES=str(MAX_BODY)) as running:
        yield running


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=TIMEOUT) as http:
        yield http


# --- valid requests ---------------------------------------------------------------------------

texts = st.text(max_size=24)
scalars = st.one_of(
    texts.map(lambda s: AnyValue(string_value=s)),
    st.booleans().map(lambda b: AnyValue(bool_value=b)),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(lambda i: AnyValue(int_value=i)),
    st.floats(allow_nan=True, allow_infinity=True).map(lambda f: AnyValue(double_value=f)),
    st.binary(max_size=12).map(lambda b: AnyValue(bytes_value=b)),
)
any_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda vs: AnyValue(array_value=ArrayValue(values=vs))),
        st.lists(st.tuples(texts, children), max_size=3).map(
            lambda kvs: AnyValue(
                kvlist_value=KeyValueList(values=[KeyValue(key=k, value=v) for k, v in kvs])
            )
        ),
    ),
    max_leaves=6,
)
attributes = st.lists(
    st.builds(lambda k, v: KeyValue(key=k, value=v), texts, any_values), max_size=4
)
timestamps = st.integers(min_value=0, max_value=2**63 - 1)
ids8 = st.binary(min_size=8, max_size=8).filter(any)


@st.composite
def spans(draw: st.DrawFn) -> Span:
    start = draw(timestamps)
    span = Span(
        span_id=draw(ids8),
        name=draw(texts),
        kind=draw(st.integers(min_value=0, max_value=5)),
        start_time_unix_nano=start,
        end_time_unix_nano=draw(st.one_of(st.just(start), timestamps)),
        attributes=draw(attributes),
        status=SpanStatus(code=draw(st.integers(0, 2)), message=draw(texts)),
        trace_state=draw(st.sampled_from(["", "vendor=value"])),
        flags=draw(st.sampled_from([0, 1, 256, 257])),
    )
    for _ in range(draw(st.integers(0, 2))):
        event = span.events.add(name=draw(texts), time_unix_nano=draw(timestamps))
        event.attributes.extend(draw(attributes))
    for _ in range(draw(st.integers(0, 1))):
        span.links.add(trace_id=draw(st.binary(min_size=16, max_size=16)), span_id=draw(ids8))
    return span


@st.composite
def requests(draw: st.DrawFn) -> ExportTraceServiceRequest:
    """A valid export request; its spans in one trace of a fresh id, under one or two
    resources and scopes, parents among themselves (span ids unique)."""
    trace_id = hashlib.sha256(f"fuzz-{next(_counter)}".encode()).digest()[:16]
    request = ExportTraceServiceRequest()
    seen: set[bytes] = set()
    for _ in range(draw(st.integers(1, 2))):
        rs = ResourceSpans(
            resource=Resource(attributes=draw(attributes)),
            schema_url=draw(st.sampled_from(["", "https://opentelemetry.io/schemas/1.26.0"])),
        )
        for _ in range(draw(st.integers(1, 2))):
            ss = ScopeSpans(
                scope=InstrumentationScope(name=draw(texts), version=draw(texts)),
                schema_url=draw(st.sampled_from(["", "https://example.com/schemas/2"])),
            )
            for span in draw(st.lists(spans(), min_size=1, max_size=4)):
                if span.span_id in seen:
                    continue
                span.trace_id = trace_id
                if seen and draw(st.booleans()):
                    span.parent_span_id = draw(st.sampled_from(sorted(seen)))
                seen.add(span.span_id)
                ss.spans.append(span)
            rs.scope_spans.append(ss)
        request.resource_spans.append(rs)
    return request


def all_spans(request: ExportTraceServiceRequest) -> list[Span]:
    return [span for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]


def hex_ids(span: dict[str, Any]) -> dict[str, Any]:
    for obj in (span, *span.get("links", [])):
        for key in ("traceId", "spanId", "parentSpanId"):
            if obj.get(key):
                obj[key] = base64.b64decode(obj[key]).hex()
    return span


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """The request as an OTLP/JSON body (hex ids, integer enums)."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for rs in document.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            ss["spans"] = [hex_ids(span) for span in ss.get("spans", [])]
    return document


def comparable(value: Any) -> Any:
    """OTLP JSON with one spelling for ±infinity (the viewer writes Jaeger's "+Inf")."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return (
        {"Infinity": "+Inf", "-Infinity": "-Inf"}.get(value, value)
        if isinstance(value, str)
        else value
    )


def strict_json(response: httpx.Response) -> Any:
    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(response.text, parse_constant=refuse)


def stored_spans(client: httpx.Client, viewer: Viewer, trace_id: str) -> dict[str, dict[str, Any]]:
    response = client.get(f"{viewer.ui}/api/v3/traces/{trace_id}")
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, response.text
    return {
        span["spanId"]: span
        for rs in strict_json(response)["result"]["resourceSpans"]
        for ss in rs["scopeSpans"]
        for span in ss["spans"]
    }


def reply(response: httpx.Response, media: str) -> ExportTraceServiceResponse:
    assert response.status_code == 200, (response.status_code, response.content[:300])
    if media == PROTOBUF:
        return ExportTraceServiceResponse.FromString(response.content)
    return json_format.ParseDict(response.json(), ExportTraceServiceResponse())


def assert_refusal_or_partial(
    response: httpx.Response, media: str
) -> ExportTraceServiceResponse | None:
    """A corrupt request's answer: a 400 with a google.rpc.Status, or a 200 whose partial
    success names what it refused. Never a 5xx."""
    assert response.status_code in (200, 400, 413), (response.status_code, response.content[:300])
    if response.status_code != 200:
        if media == PROTOBUF:
            status = Status.FromString(response.content)
        else:
            status = json_format.ParseDict(response.json(), Status())
        assert status.message and status.code in (3, 8)
        return None
    answer = reply(response, media)
    if answer.partial_success.rejected_spans:
        assert answer.partial_success.error_message
    return answer


def post(
    client: httpx.Client, viewer: Viewer, body: bytes, media: str, **headers: str
) -> httpx.Response:
    return client.post(
        viewer.traces_endpoint, content=body, headers={"content-type": media, **headers}
    )


def encode(request: ExportTraceServiceRequest, media: str) -> bytes:
    if media == PROTOBUF:
        return bytes(request.SerializeToString())
    return json.dumps(otlp_json(request)).encode()


# --- the properties ---------------------------------------------------------------------------


@FUZZ
@given(request=requests(), media=st.sampled_from([PROTOBUF, JSON]))
def test_a_valid_request_is_stored_whole_and_as_sent(
    viewer: Viewer, client: httpx.Client, request: ExportTraceServiceRequest, media: str
) -> None:
    answer = reply(post(client, viewer, encode(request, media), media), media)
    assert not answer.HasField("partial_success"), answer
    sent = all_spans(request)
    trace_id = sent[0].trace_id.hex()
    got = stored_spans(client, viewer, trace_id)
    expected = {
        span.span_id.hex(): hex_ids(json_format.MessageToDict(span, use_integers_for_enums=True))
        for span in sent
    }
    assert comparable(got) == comparable(expected)
    jaeger = client.get(f"{viewer.ui}/api/traces/{trace_id}")
    assert jaeger.status_code == 200, jaeger.text
    assert {s["spanID"] for s in strict_json(jaeger)["data"][0]["spans"]} == set(expected)


@FUZZ
@given(
    request=requests(),
    media=st.sampled_from([PROTOBUF, JSON]),
    cut=st.floats(min_value=0, max_value=1, exclude_max=True),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=4),
)
def test_truncated_or_bit_flipped_bodies_are_refused_cleanly(
    viewer: Viewer,
    client: httpx.Client,
    request: ExportTraceServiceRequest,
    media: str,
    cut: float,
    flips: list[tuple[float, int]],
) -> None:
    body = bytearray(encode(request, media))
    for where, bit in flips:
        body[int(where * len(body))] ^= 1 << bit
    if not flips:
        del body[max(1, int(cut * len(body))) :]
    assert_refusal_or_partial(post(client, viewer, bytes(body), media), media)


# What a client may put in the wrong place: other types, huge and non-finite numbers.
wrong_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=2**64, max_value=2**80),
    st.integers(max_value=-1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
SPAN_FIELDS = [
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "kind",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "attributes",
    "events",
    "links",
    "status",
    "flags",
    "traceState",
]


@FUZZ
@given(request=requests(), data=st.data())
def test_a_bad_field_in_one_json_span_costs_that_span_alone(
    viewer: Viewer, client: httpx.Client, request: ExportTraceServiceRequest, data: st.DataObject
) -> None:
    document = otlp_json(request)
    located = [
        span for rs in document["resourceSpans"] for ss in rs["scopeSpans"] for span in ss["spans"]
    ]
    ids = [span["spanId"] for span in located]  # before the victim's field is spoilt
    victim = data.draw(st.sampled_from(located))
    field = data.draw(st.sampled_from(SPAN_FIELDS))
    victim[field] = data.draw(wrong_values)
    body = json.dumps(document).encode()  # NaN/Infinity tokens too: some clients send them

    answer = assert_refusal_or_partial(post(client, viewer, body, JSON), JSON)
    assert answer is not None, "one bad span never costs the batch"
    others = {span_id for s, span_id in zip(located, ids, strict=True) if s is not victim}
    trace_id = all_spans(request)[0].trace_id.hex()
    got = set(stored_spans(client, viewer, trace_id))
    assert others <= got, "every other span is stored"
    moved = field == "traceId" and victim["spanId"] not in got
    refused = answer.partial_success.rejected_spans
    assert len(got & set(ids)) + refused + moved >= len(located)


@FUZZ
@given(
    request=requests(),
    media=st.sampled_from([PROTOBUF, JSON]),
    garbage=st.binary(min_size=8, max_size=8),
)
def test_invalid_utf8_in_a_span_name_is_repaired_never_lost(
    viewer: Viewer,
    client: httpx.Client,
    request: ExportTraceServiceRequest,
    media: str,
    garbage: bytes,
) -> None:
    sent = all_spans(request)
    sent[0].name = "MARKMARK"
    body = encode(request, media)
    assume(body.count(b"MARKMARK") == 1)
    # The same length, so protobuf's framing holds; in JSON, bytes that cannot end the string.
    junk = garbage if media == PROTOBUF else bytes(0x80 | b for b in garbage)
    answer = reply(post(client, viewer, body.replace(b"MARKMARK", junk), media), media)
    assert answer.partial_success.rejected_spans == 0
    got = stored_spans(client, viewer, sent[0].trace_id.hex())
    assert set(got) == {span.span_id.hex() for span in sent}


ENCODERS = {
    "identity": lambda b: b,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "zlib": zlib.compress,
    "zstd": zstandard.compress,
    "raw-deflate": lambda b: zlib.compress(b, wbits=-15),
}


@FUZZ
@given(
    request=requests(),
    media=st.sampled_from([PROTOBUF, JSON]),
    header=st.sampled_from(
        ["", "identity", "gzip", "deflate", "zlib", "zstd", "br", "x-gzip", "gzip, br"]
    ),
    encoder=st.sampled_from(sorted(ENCODERS)),
)
def test_content_encodings_match_or_are_refused(
    viewer: Viewer,
    client: httpx.Client,
    request: ExportTraceServiceRequest,
    media: str,
    header: str,
    encoder: str,
) -> None:
    body = ENCODERS[encoder](encode(request, media))
    response = post(client, viewer, body, media, **{"content-encoding": header})
    if header in ("br", "x-gzip", "gzip, br"):
        assert response.status_code == 415
        return
    matched = (header or "identity") == encoder
    if matched:
        assert not reply(response, media).HasField("partial_success")
        trace_id = all_spans(request)[0].trace_id.hex()
        assert len(stored_spans(client, viewer, trace_id)) == len(all_spans(request))
    else:
        assert_refusal_or_partial(response, media)


@FUZZ
@given(
    request=requests(),
    flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 7)), max_size=3),
)
def test_grpc_answers_ok_or_invalid_argument(
    viewer: Viewer, request: ExportTraceServiceRequest, flips: list[tuple[float, int]]
) -> None:
    body = bytearray(request.SerializeToString())
    for where, bit in flips:
        body[int(where * len(body))] ^= 1 << bit
    with grpc.insecure_channel(viewer.grpc.removeprefix("http://")) as channel:
        try:
            answer = ExportTraceServiceResponse.FromString(
                channel.unary_unary(EXPORT)(bytes(body), timeout=TIMEOUT)
            )
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, exc
            assert exc.details()
            return
    if answer.partial_success.rejected_spans:
        assert answer.partial_success.error_message
    if not flips:
        assert not answer.HasField("partial_success")
