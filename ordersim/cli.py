"""``ordersim`` — run the four services and drive them. ``ordersim --help`` lists the commands."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from common import topology


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ordersim",
        description="Four async FastAPI services running an order flow, traced with OpenTelemetry.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    up = commands.add_parser(
        "up",
        help="start the four services as separate processes (Ctrl-C stops them)",
        description="Start inventory, payment, shipping and order services, wait until each "
        "is healthy, print their URLs and stream their logs. Ports, URLs and data directory "
        "come from the environment (e.g. ORDER_SERVICE_PORT, ORDERSIM_DATA_DIR); telemetry "
        "from the standard OTEL_* variables.",
    )
    up.add_argument(
        "--no-viewer",
        action="store_true",
        help="do not start the embedded trace viewer; export to OTEL_EXPORTER_OTLP_ENDPOINT",
    )
    up.add_argument(
        "--replicas",
        type=_replicas,
        default=1,
        metavar="N",
        help="run N processes of each service, sharing its port (SO_REUSEPORT) and its "
        "database (default 1)",
    )
    viewer_help = (
        f"trace viewer or Jaeger query URL (default: {topology.VIEWER.ui_url({})}, or "
        "TRACE_VIEWER_HOST and TRACE_VIEWER_UI_PORT if set)"
    )
    trace = commands.add_parser(
        "trace",
        help="print a stored trace as a waterfall (or as OTLP/Jaeger JSON); "
        "`trace diff A B` compares two",
        usage="ordersim trace [-h] [--json | --jaeger] [--endpoint URL] TRACE_ID\n"
        "       ordersim trace diff [--endpoint URL] TRACE_A TRACE_B",
        description="Fetch a trace from the embedded trace viewer or Jaeger and print its span "
        "tree on a time axis: services, durations, errors. `ordersim trace diff A B` merges "
        "two traces into one tree (spans matched by their path of service and operation from "
        "the root): spans only in A (-, red), only in B (+, green), and in both with each "
        "side's count and time and the difference. Exit status 1 if a trace is not found or "
        "the viewer cannot be reached.",
    )
    trace.add_argument("trace_id", metavar="TRACE_ID", help="32 hex digits (or: diff A B)")
    trace.add_argument("others", nargs="*", help=argparse.SUPPRESS)
    output = trace.add_mutually_exclusive_group()
    output.add_argument(
        "--json",
        dest="output",
        action="store_const",
        const="json",
        default="waterfall",
        help="print the OTLP JSON (GET /api/v3/traces/ID) instead",
    )
    output.add_argument(
        "--jaeger",
        dest="output",
        action="store_const",
        const="jaeger",
        help="print the Jaeger JSON (GET /api/traces/ID) instead",
    )
    trace.add_argument("--endpoint", metavar="URL", help=viewer_help)
    order = commands.add_parser(
        "order",
        help="place a sample order and print its outcome and trace waterfall",
        description="POST a sample order (like examples/order.json) to the order service, "
        "print the outcome and the viewer link, then wait until every service's spans "
        "reached the viewer and print the trace's waterfall.",
        epilog="Exit status: 0 if the order reached a final status (confirmed 201, rejected "
        "409, payment_failed 402 or failed 503) and its trace arrived complete within --wait; "
        "1 otherwise (order service unreachable, 422, unexpected answer, or an incomplete "
        "trace, whose missing services are named); 2 for bad arguments.",
    )
    order.add_argument(
        "--items",
        nargs="+",
        metavar="SKU:QTY",
        help="the order lines (default: SKU-0001:2 SKU-0002:1 SKU-0003:3)",
    )
    order.add_argument(
        "--card",
        default="approved",
        metavar="approved|declined|insufficient|NUMBER",
        help="a sandbox card by outcome, or a card number (default: approved)",
    )
    order.add_argument(
        "--url",
        metavar="ORDER_URL",
        help=_default_help("the order service", topology.ORDER),
    )
    order.add_argument("--endpoint", metavar="VIEWER_URL", help=viewer_help)
    order.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for the whole trace to arrive (default: 10)",
    )
    order.add_argument(
        "--follow",
        action="store_true",
        help="place it with Prefer: respond-async (202) and print its steps as they happen, "
        "from its event stream; then the request's waterfall and its steps'",
    )
    load = commands.add_parser(
        "load",
        help="generate load: open loop (--rate) or closed loop (--concurrency)",
        description="Send a weighted mix of orders (1-5 items, out-of-stock SKUs, declined "
        "and insufficient-funds cards, a few invalid bodies) and report achieved rate, status "
        "counts, HDR latency percentiles, the slowest orders with their trace links, and "
        "whether sampled orders' traces reached the viewer complete. Open-loop latency is "
        "measured from each order's intended send time. Ctrl-C prints the partial report.",
    )
    mode = load.add_mutually_exclusive_group(required=True)
    mode.add_argument("--rate", type=float, metavar="R", help="orders per second (open loop)")
    mode.add_argument("--concurrency", type=int, metavar="N", help="clients (closed loop)")
    load.add_argument(
        "--duration", type=float, default=30.0, metavar="S", help="measured seconds (default: 30)"
    )
    load.add_argument(
        "--warmup",
        type=float,
        default=2.0,
        metavar="S",
        help="seconds of load before measuring (default: 2)",
    )
    load.add_argument(
        "--url",
        metavar="ORDER_URL",
        help=_default_help("the order service", topology.ORDER),
    )
    load.add_argument(
        "--inventory-url",
        metavar="URL",
        help=_default_help("where GET /products lists the catalogue", topology.INVENTORY),
    )
    load.add_argument("--endpoint", metavar="VIEWER_URL", help=viewer_help)
    load.add_argument(
        "--check-traces",
        type=int,
        default=50,
        metavar="N",
        help="sampled orders whose traces are checked in the viewer (0: none)",
    )
    load.add_argument(
        "--trace-wait",
        type=float,
        default=15.0,
        metavar="S",
        help="how long to wait for those traces to arrive (default: 15)",
    )
    load.add_argument(
        "--slowest", type=int, default=10, metavar="N", help="slowest orders to list (default: 10)"
    )
    load.add_argument("--seed", type=int, default=0, help="seed of the order mix")
    load.add_argument("--out", metavar="FILE", help="write the results JSON here")
    _add_faults(commands)
    compensations = commands.add_parser(
        "compensations",
        help="list the deferred compensations the order service is still retrying",
        description="Print the backlog of a running order service (GET /admin/compensations): "
        "the undos (release stock, refund, cancel shipment) that could not run when their "
        "order failed, each with its attempts, age, next attempt and last error. They are "
        "retried with exponential backoff until each is done.",
        epilog="Exit status: 0 if the backlog was read (however long); 1 if the order service "
        "cannot be reached or answers unexpectedly; 2 for bad arguments.",
    )
    compensations.add_argument(
        "--url",
        metavar="ORDER_URL",
        help=_default_help("the order service", topology.ORDER),
    )
    compensations.add_argument(
        "--limit",
        type=_backlog_limit,
        default=100,
        metavar="N",
        help="list at most N items, the oldest first (1-1000, default: 100); the count is "
        "always the whole backlog's",
    )
    compensations.add_argument(
        "--json", action="store_true", help="print the service's JSON answer instead"
    )
    _add_doctor(commands, viewer_help)
    return parser


def _add_doctor(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], viewer_help: str
) -> None:
    doctor = commands.add_parser(
        "doctor",
        help="check a tracing setup end to end and say what is wrong and how to fix it",
        description="Run the troubleshooting list against a running setup, ours or another: "
        "the OTEL_* variables of this environment, the OTLP endpoint, the query API, each "
        "service's propagator, whether one request gives one complete trace, dropped spans, "
        "clock skew and double instrumentation. Checks the inputs do not allow are listed "
        "as skipped, with why. Without --service, probes the services of `ordersim up` and "
        "places a sample order.",
        epilog="Exit status: 0 if every check that ran passed; 1 if one found a problem; "
        "2 for bad arguments.",
    )
    doctor.add_argument(
        "--otlp",
        metavar="URL",
        help="the OTLP endpoint (default: OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT, else the "
        "viewer's intake that `ordersim up` starts)",
    )
    doctor.add_argument(
        "--protocol",
        choices=("http/protobuf", "grpc"),
        help="OTLP transport (default: OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL, else http/protobuf)",
    )
    doctor.add_argument("--endpoint", metavar="VIEWER_URL", help=viewer_help)
    doctor.add_argument(
        "--service",
        action="append",
        metavar="URL",
        help="a URL of a service to probe for its propagator with a GET (repeatable; "
        "default: the four services' /openapi.json)",
    )
    doctor.add_argument(
        "--request",
        metavar="'METHOD URL'",
        help="the request that should give one trace, e.g. 'POST http://host:8000/orders' "
        "(default without --service: a sample order)",
    )
    doctor.add_argument("--body", metavar="JSON", help="the request's JSON body")
    doctor.add_argument(
        "--wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for spans to reach the query API (default: 10)",
    )
    doctor.add_argument(
        "--skew-ms",
        type=float,
        default=25.0,
        metavar="MS",
        help="how far a server span may lie outside its client span (default: 25)",
    )
    doctor.add_argument("--json", action="store_true", help="print the checks as JSON")


def _default_help(what: str, service: topology.Service) -> str:
    return (
        f"{what} (default: {service.url({})}, or {service.host_variable} and "
        f"{service.port_variable} if set)"
    )


def _backlog_limit(text: str) -> int:
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 1000")
    return limit


FAULT_SERVICES = tuple(topology.BY_KEY)


def _fault_service(text: str) -> str:
    if text not in FAULT_SERVICES:
        raise argparse.ArgumentTypeError(
            f"invalid choice: {text!r} (choose from {', '.join(FAULT_SERVICES)})"
        )
    return text


def _add_faults(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    url_help = (
        "the service's URL (default: http://127.0.0.1:PORT, 8000-8003, or "
        "<SERVICE>_SERVICE_HOST and <SERVICE>_SERVICE_PORT if set); only with one SERVICE"
    )
    faults = commands.add_parser(
        "faults",
        help="show, set or clear the injected faults of running services",
        description="Inject faults into running services through their /admin/faults API: "
        "added latency with jitter, an error rate (HTTP 500), timeouts, a hang; for the whole "
        "service or one endpoint. Spans a fault touched carry ordersim.fault.injected=true and "
        "a fault.injected event. Start-up rules come from <SERVICE>_SERVICE_FAULTS (JSON).",
        epilog="Exit status: 0 on success; 1 if a service cannot be reached or answers "
        "unexpectedly; 2 for bad arguments or values.",
    )
    actions = faults.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("show", "print the rules in force (all services when none is named)"),
        ("clear", "remove every rule (all services when none is named); held requests go on"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text.capitalize())
        action.add_argument(
            "services",
            nargs="*",
            type=_fault_service,
            metavar="SERVICE",
            help="order, inventory, payment or shipping",
        )
        action.add_argument("--url", metavar="URL", help=url_help)
    set_ = actions.add_parser(
        "set",
        help="add a rule, or replace the rule for the same scope; print the resulting rules",
        description="Add a fault rule to SERVICE, or replace its rule for the same scope (the "
        "whole service, or --endpoint). Per request: --hang holds it until the client gives "
        "up; else it is delayed by --latency-ms ± --jitter-ms, held --timeout-ms with "
        "probability --timeout-rate (then handled), and answered HTTP 500 with probability "
        "--error-rate.",
        epilog="Example: ordersim faults set payment --endpoint 'POST /charges' --error-rate 0.3",
    )
    set_.add_argument("service", choices=FAULT_SERVICES, metavar="SERVICE", help="the service")
    set_.add_argument(
        "--endpoint",
        metavar="'[METHOD] /PATH'",
        help="only requests to this path prefix, e.g. 'POST /charges' or /charges "
        "(default: the whole service)",
    )
    set_.add_argument("--latency-ms", type=float, metavar="N", help="added delay")
    set_.add_argument("--jitter-ms", type=float, metavar="N", help="uniform ± around the delay")
    set_.add_argument("--error-rate", type=float, metavar="R", help="share answered 500 (0-1)")
    set_.add_argument("--timeout-rate", type=float, metavar="R", help="share held (0-1)")
    set_.add_argument(
        "--timeout-ms", type=float, metavar="N", help="how long those are held (default: 30000)"
    )
    set_.add_argument("--hang", action="store_true", help="never answer, until the client leaves")
    set_.add_argument(
        "--seed", type=int, metavar="N", help="seed the rule's random draws (reproducible runs)"
    )
    set_.add_argument("--url", metavar="URL", help=url_help)


def _replicas(value: str) -> int:
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_REPLICAS:
        raise argparse.ArgumentTypeError(f"give a whole number from 1 to {MAX_REPLICAS}")
    return count


#: More processes per service than this on one machine is a typo.
MAX_REPLICAS = 16


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from ordersim.up import up

        return up(viewer=not args.no_viewer, replicas=args.replicas)
    if args.command == "trace":
        return _trace(args)
    if args.command == "order":
        from ordersim.order_cmd import order

        return order(
            items=args.items,
            card=args.card,
            url=args.url,
            endpoint=args.endpoint,
            wait=args.wait,
            follow=args.follow,
        )
    if args.command == "load":
        return _load(args)
    if args.command == "faults":
        return _faults(args)
    if args.command == "compensations":
        from ordersim.compensations_cmd import show

        return show(url=args.url, limit=args.limit, as_json=args.json)
    if args.command == "doctor":
        from ordersim.doctor import doctor

        return doctor(
            otlp=args.otlp,
            protocol=args.protocol,
            endpoint=args.endpoint,
            services=args.service,
            request=args.request,
            body=args.body,
            wait=args.wait,
            skew_ms=args.skew_ms,
            as_json=args.json,
        )
    raise AssertionError(args.command)


def _trace(args: argparse.Namespace) -> int:
    if args.trace_id == "diff":
        if len(args.others) != 2 or args.output != "waterfall":
            print(
                "ordersim trace diff: error: give two trace ids, e.g. "
                "ordersim trace diff TRACE_A TRACE_B (--json and --jaeger do not apply)",
                file=sys.stderr,
            )
            return 2
        from ordersim.diff_cmd import diff

        return diff(args.others[0], args.others[1], endpoint=args.endpoint)
    if args.others:
        print(f"ordersim trace: error: unexpected {' '.join(args.others)!r}", file=sys.stderr)
        return 2
    from ordersim.trace_cmd import trace

    return trace(args.trace_id, output=args.output, endpoint=args.endpoint)


def _load(args: argparse.Namespace) -> int:
    import asyncio

    from rich.console import Console

    from ordersim.calls import base_url
    from ordersim.load import LoadOptions, run_load

    if (args.rate is not None and args.rate <= 0) or (
        args.concurrency is not None and args.concurrency < 1
    ):
        build_parser().error("--rate must be > 0 and --concurrency >= 1")
    inventory = args.inventory_url or topology.INVENTORY.url()
    options = LoadOptions(
        order_url=base_url(args.url or topology.ORDER.url()),
        inventory_url=base_url(inventory),
        viewer_url=base_url(args.endpoint or topology.VIEWER.ui_url())
        if args.check_traces
        else None,
        rate=args.rate,
        concurrency=args.concurrency,
        duration=args.duration,
        warmup=args.warmup,
        slowest=args.slowest,
        seed=args.seed,
        out=args.out,
        check_traces=args.check_traces,
        trace_wait=args.trace_wait,
    )
    report = asyncio.run(run_load(options, Console()))
    return 130 if report.partial else 0  # argparse rejects unknown commands


def _faults(args: argparse.Namespace) -> int:
    from ordersim import faults_cmd

    if args.action == "show":
        return faults_cmd.show(args.services, url=args.url)
    if args.action == "clear":
        return faults_cmd.clear(args.services, url=args.url)
    return faults_cmd.set_rule(
        args.service,
        url=args.url,
        endpoint=args.endpoint,
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        timeout_rate=args.timeout_rate,
        timeout_ms=args.timeout_ms,
        hang=args.hang,
        seed=args.seed,
    )
