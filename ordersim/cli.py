"""``ordersim`` — run the four services and drive them. ``ordersim --help`` lists the commands."""

from __future__ import annotations

import argparse
from collections.abc import Sequence


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "up":
        from ordersim.up import up

        return up(viewer=not args.no_viewer)
    raise AssertionError(args.command)  # argparse rejects unknown commands
