"""What the intake indexes of a span (trace_viewer.otlp.index_span): its attributes' search
keys and the outcomes (HTTP status, injected fault, order status), the same whether an
attribute is met for the first time or again on another span (they are cached by their
bytes)."""

from __future__ import annotations

from array import array

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from common.fault_rules import ATTR_INJECTED
from trace_viewer.attributes import attribute_key, value_text
from trace_viewer.otlp import index_span

ORDER = ("order-service", "place_order")


def reference(span: Span, service: str) -> tuple[set[int], bool, int | None, str | None]:
    """The index by its rules, spelled out attribute by attribute: every scalar attribute
    (a string up to 256 characters) keyed by its text; the first integer
    ``http.response.status_code`` (or ``http.status_code``); a fault if any
    ``ordersim.fault.injected`` is true; the last ``shop.order.status`` of the order span."""
    keys: set[int] = set()
    fault, status, order = False, None, None
    for kv in span.attributes:
        text = value_text(kv.value)
        if text is not None:
            keys.add(attribute_key(kv.key, text))
        integer = kv.value.WhichOneof("value") == "int_value"
        if kv.key in ("http.response.status_code", "http.status_code"):
            if status is None and integer:
                status = kv.value.int_value
        elif kv.key == ATTR_INJECTED:
            fault = fault or kv.value.bool_value
        elif kv.key == "shop.order.status" and (service, span.name) == ORDER:
            order = text
    return keys, fault, status, order


def indexed(span: Span, service: str) -> tuple[set[int], bool, int | None, str | None]:
    found = index_span(span, service)
    return set(array("q", found.keys)), found.fault, found.http_status, found.order_status


values = st.one_of(
    st.builds(AnyValue, string_value=st.sampled_from(["", "confirmed", "x" * 300, "true"])),
    st.builds(AnyValue, int_value=st.sampled_from([0, 200, 402, -1])),
    st.builds(AnyValue, bool_value=st.booleans()),
    st.builds(AnyValue, double_value=st.sampled_from([0.5, 402.0, float("inf")])),
    st.just(AnyValue()),  # no value
)
attributes = st.builds(
    KeyValue,
    key=st.sampled_from(
        [
            "http.response.status_code",
            "http.status_code",
            ATTR_INJECTED,
            "shop.order.status",
            "shop.order.id",
            "db.system.name",
        ]
    ),
    value=values,
)
spans = st.builds(
    lambda name, kvs: Span(name=name, attributes=kvs),
    st.sampled_from(["place_order", "POST /charges"]),
    st.lists(attributes, max_size=6),
)


@settings(max_examples=300, deadline=None)
@given(
    batch=st.lists(
        st.tuples(spans, st.sampled_from(["order-service", "payment-service"])), max_size=6
    )
)
def test_a_span_is_indexed_by_its_own_attributes_and_name(batch: list[tuple[Span, str]]) -> None:
    for span, service in batch + batch:  # each attribute met again the second time round
        assert indexed(span, service) == reference(span, service)


def test_an_attribute_seen_on_another_span_first_says_nothing_of_this_one() -> None:
    status = KeyValue(key="shop.order.status", value=AnyValue(string_value="payment_failed"))
    fault = KeyValue(key=ATTR_INJECTED, value=AnyValue(bool_value=True))
    other = Span(name="POST /charges", attributes=[status, fault])
    order = Span(name="place_order", attributes=[status])
    assert indexed(other, "order-service")[1:] == (True, None, None)
    assert indexed(order, "payment-service")[1:] == (False, None, None)
    assert indexed(order, "order-service")[1:] == (False, None, "payment_failed")
