"""ordersim.testing on its own: SpanTree's finding and assertions, the shared rule for a
complete trace, traced_apps on apps that are not ordersim's, and the examples run from an
empty folder against the wheel, installed where the editable install cannot answer for it."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tomllib
import venv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanKind,
    Status,
    StatusCode,
    set_span_in_context,
)

from ordersim.testing import AppContext, SpanTree, TracedApps, traced_apps
from ordersim.testing.processes import clean_env, free_port
from tests import ROOT


@pytest.fixture
def make() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def checkout(provider: TracerProvider, exporter: InMemorySpanExporter) -> SpanTree:
    """checkout → (price ‖ stock), then charge; an HTTP call under charge, answered."""
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("checkout", kind=SpanKind.SERVER) as root:
        root.set_attribute("shop.cart", "c1")
        price = tracer.start_span("price")
        stock = tracer.start_span("stock")
        stock.end()
        price.end()
        with tracer.start_as_current_span("charge") as charge:
            charge.add_event("charged", {"amount": 12})
            charge.set_status(Status(StatusCode.ERROR, "card declined"))
            with (
                tracer.start_as_current_span(
                    "POST", kind=SpanKind.CLIENT, attributes={"http.request.method": "POST"}
                ),
                tracer.start_as_current_span("POST /charges", kind=SpanKind.SERVER),
            ):
                pass
    return SpanTree.of(exporter)


def test_find_by_name_service_and_kind(make) -> None:
    tree = checkout(*make)
    assert tree.find("checkout").kind == SpanKind.SERVER
    assert tree.find(kind=SpanKind.CLIENT).name == "POST"
    assert [s.name for s in tree.find_all(service="shop", kind=SpanKind.SERVER)] == [
        "checkout",
        "POST /charges",
    ]
    assert tree.find_all("nothing") == []
    with pytest.raises(AssertionError, match=r"expected one span with name='nothing', found 0"):
        tree.find("nothing")
    with pytest.raises(AssertionError, match=r"kind=<SpanKind.SERVER: 1>, found 2"):
        tree.find(kind=SpanKind.SERVER)


def test_a_failed_assertion_prints_the_tree(make) -> None:
    tree = checkout(*make)
    with pytest.raises(AssertionError) as failure:
        tree.assert_overlap(tree.find("charge"), tree.find("price"))
    message = str(failure.value)
    assert "expected 'charge' (shop, INTERNAL) and 'price' (shop, INTERNAL) to overlap" in message
    assert (
        "checkout [shop, SERVER]\n"
        "  price [shop, INTERNAL]\n"
        "  stock [shop, INTERNAL]\n"
        "  charge [shop, INTERNAL] ERROR 'card declined'\n"
        "    POST [shop, CLIENT]\n"
        "      POST /charges [shop, SERVER]"
    ) in message


def test_parent_child_and_descendant(make) -> None:
    tree = checkout(*make)
    root, charge, server = tree.find("checkout"), tree.find("charge"), tree.find("POST /charges")
    assert tree.root is root
    tree.assert_child(root, charge)
    tree.assert_descendant(root, server)
    assert tree.parent(charge) is root and tree.parent(root) is None
    assert [s.name for s in tree.children(root)] == ["price", "stock", "charge"]
    assert [s.name for s in tree.ancestors(server)] == ["POST", "charge", "checkout"]
    with pytest.raises(AssertionError, match=r"to be a child of 'charge'.* its parent is 'POST'"):
        tree.assert_child(charge, server)
    with pytest.raises(AssertionError, match=r"expected 'checkout' .* under 'charge'"):
        tree.assert_descendant(charge, root)


def test_overlap_and_order(make) -> None:
    tree = checkout(*make)
    price, stock, charge = tree.find("price"), tree.find("stock"), tree.find("charge")
    tree.assert_overlap(price, stock)  # started together, ended one after the other
    tree.assert_before(price, charge)
    with pytest.raises(AssertionError, match="to end before"):
        tree.assert_before(charge, price)
    with pytest.raises(AssertionError, match="to overlap"):
        tree.assert_overlap(price, stock, charge)


def test_status_events_and_attributes(make) -> None:
    tree = checkout(*make)
    charge, root = tree.find("charge"), tree.find("checkout")
    tree.assert_status(charge, StatusCode.ERROR, "declined")
    tree.assert_status(root, StatusCode.UNSET)
    with pytest.raises(AssertionError, match="status ERROR \\('expired'\\), it has ERROR"):
        tree.assert_status(charge, StatusCode.ERROR, "expired")
    assert tree.assert_event(charge, "charged", {"amount": 12}).name == "charged"
    with pytest.raises(AssertionError, match="its events: \\[\\('charged', \\{'amount': 12\\}"):
        tree.assert_event(charge, "charged", {"amount": 13})
    tree.assert_attributes(root, {"shop.cart": "c1"})
    with pytest.raises(AssertionError, match=re.escape("it has {'shop.cart': 'c1'}")):
        tree.assert_attributes(root, {"shop.cart": "c2"})  # (what it has, for the keys asked)
    with pytest.raises(AssertionError, match=re.escape("'shop.user': '<absent>'")):
        tree.assert_attributes(root, {"shop.user": "u1"})


def test_a_complete_trace_has_one_root_everything_under_it_and_every_call_answered(
    make,
) -> None:
    provider, exporter = make
    tree = checkout(provider, exporter)
    assert tree.is_complete()
    tree.assert_complete()
    # The callee's server span has not arrived: the call is unanswered.
    assert not SpanTree(s for s in tree if s.name != "POST /charges").is_complete()
    # The root has not arrived: everything else is an orphan.
    assert not SpanTree(s for s in tree if s.name != "checkout").is_complete()
    # A second root in the same trace: nothing that arrives later joins the two.
    tracer = provider.get_tracer("test")
    root = tree.root
    stray = tracer.start_span(
        "stray", context=set_span_in_context(NonRecordingSpan(root.get_span_context()))
    )
    stray.end()
    [stray_span] = [s for s in exporter.get_finished_spans() if s.name == "stray"]
    second_root = _without_parent(stray_span)
    two_roots = SpanTree([*tree, second_root])
    assert len(two_roots.roots) == 2 and not two_roots.is_complete()
    with pytest.raises(AssertionError, match="2 root\\(s\\) \\(expected 1\\)"):
        two_roots.assert_complete()


def test_the_older_http_conventions_count_as_calls_too(make) -> None:
    """Instrumentations emit ``http.method`` unless OTEL_SEMCONV_STABILITY_OPT_IN says http:
    such a CLIENT span without its server span is still an unanswered call."""
    provider, exporter = make
    tracer = provider.get_tracer("test")
    with (
        tracer.start_as_current_span("root", kind=SpanKind.SERVER),
        tracer.start_as_current_span(
            "GET", kind=SpanKind.CLIENT, attributes={"http.method": "GET"}
        ),
    ):
        pass
    assert not SpanTree.of(exporter).is_complete()


def test_traces_are_told_apart(make) -> None:
    provider, exporter = make
    checkout(provider, exporter)
    checkout(provider, exporter)
    tree = SpanTree.of(exporter)
    assert len(tree.trace_ids) == 2 and not tree.is_complete()
    with pytest.raises(AssertionError, match="expected one trace, found 2"):
        tree.assert_complete()
    first, second = tree.traces()
    assert first.is_complete() and second.is_complete()
    assert tree.trace(first.root).trace_ids == [first.trace_ids[0]]
    assert "trace " + first.trace_ids[0] in tree.render()


def _without_parent(span: ReadableSpan) -> ReadableSpan:
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=None,
        resource=span.resource,
        kind=span.kind,
        start_time=span.start_time,
        end_time=span.end_time,
    )


# --- traced_apps on apps of the test's own ------------------------------------------------


def create_echo(ctx: AppContext) -> FastAPI:
    app = FastAPI()

    @app.get("/echo")
    async def echo() -> dict[str, str]:
        return {"from": ctx.name}

    return app


def create_self_instrumented(ctx: AppContext) -> FastAPI:
    """An app that instruments itself, as its production factory would."""
    app = FastAPI()
    echo = ctx.client("echo")

    @app.get("/relay")
    async def relay() -> dict[str, str]:
        return dict((await echo.get("/echo")).json())

    FastAPIInstrumentor.instrument_app(app, tracer_provider=ctx.tracer_provider)
    return app


async def test_traced_apps_instruments_an_app_once(span_exporter) -> None:
    async with traced_apps(
        {"relay": create_self_instrumented, "echo": create_echo}, exporter=span_exporter
    ) as apps:
        assert isinstance(apps, TracedApps)
        response = await apps.client("relay").get("/relay")
    assert response.json() == {"from": "echo"}
    tree = apps.tree()
    tree.assert_complete()
    assert len(tree.find_all("GET /relay", kind=SpanKind.SERVER)) == 1
    server = tree.find("GET /echo", service="echo", kind=SpanKind.SERVER)
    tree.assert_child(tree.find(service="relay", kind=SpanKind.CLIENT), server)


async def test_a_call_to_an_app_that_is_not_there_is_refused(span_exporter) -> None:
    async with traced_apps({"echo": create_echo}, exporter=span_exporter) as apps:
        with pytest.raises(httpx.ConnectError, match="no app named 'nowhere'"):
            await apps.client("nowhere").get("/echo")


# --- the examples, as a user runs them, against the wheel ------------------------------------

#: The packages the wheel must carry: pyproject's [tool.setuptools.packages.find] include.
PACKAGES = [
    name.rstrip("*")
    for name in tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"
    ]["find"]["include"]
]
#: Run by the wheel's Python: where every module of the packages it imported came from, and
#: the pytest11 entry point of the distribution it finds first.
WHERE_FROM = """
import importlib, importlib.metadata as md, json, sys
import ordersim.cli, ordersim.pytest_plugin, ordersim.testing, trace_viewer.query
for name in %r:
    importlib.import_module(name)
found = {
    name: [getattr(module, "__file__", None), *getattr(module, "__path__", [])]
    for name, module in sys.modules.items()
    if name.split(".")[0] in %r
}
found["static"] = [str(trace_viewer.query.STATIC / "index.html")]
dist = md.distribution("ordersim")
found["dist-info"] = [str(dist.locate_file("ordersim"))]
[ep] = [e for e in dist.entry_points if e.group == "pytest11"]
print(json.dumps({"pytest11": ep.value, "found": found}))
"""


@dataclass(frozen=True)
class Wheel:
    site: Path  # where the wheel is installed
    python: Path  # a Python that sees the wheel, then this venv's dependencies, nothing else


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Wheel:
    """The package as a user gets it: a wheel built from a copy of the sources (so that the
    build leaves nothing in the repository), installed with ``pip install --target`` into a
    folder of its own, and a bare venv whose one ``.pth`` file lists that folder, then this
    venv's site-packages. Paths a ``.pth`` file adds are not scanned for ``.pth`` files of
    their own, so the editable install's finder (a ``.pth`` file here) never runs there: what
    the wheel lacks, nothing else provides."""
    tmp = tmp_path_factory.mktemp("wheel")
    sources = tmp / "sources"
    shutil.copytree(
        ROOT,
        sources,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv",
            ".data",
            "build",
            "test-artifacts",
            ".*_cache",
            "__pycache__",
            "*.egg-info",
        ),
    )
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    build = [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")]
    subprocess.run([*build, str(sources)], check=True, capture_output=True, timeout=240)
    [built] = (tmp / "dist").glob("ordersim-*.whl")
    site = tmp / "site"
    install = [*pip, "install", "--no-deps", "--target", str(site), str(built)]
    subprocess.run(install, check=True, capture_output=True, timeout=240)
    bare = tmp / "venv"
    venv.create(bare, with_pip=False)
    python = bare / "bin" / "python"
    bare_site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(bare_site) / "ordersim-wheel.pth").write_text(
        f"{site}\n{sysconfig.get_path('purelib')}\n"
    )
    return Wheel(site, python)


def wheel_env() -> dict[str, str]:
    env = clean_env()
    for name in ("PYTHONPATH", "PYTEST_ADDOPTS", "VIRTUAL_ENV"):
        env.pop(name, None)
    return env


def test_the_wheel_carries_every_package_file_and_the_plugin(wheel: Wheel) -> None:
    """Every file of every package (the viewer's pages, scripts and styles included) is in the
    wheel, and what runs from it is the wheel's: every module, the pages, the entry point."""

    def files(root: Path) -> set[str]:
        return {
            str(p.relative_to(root))
            for package in PACKAGES
            for p in (root / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
        }

    expected = files(ROOT)
    assert {"trace_viewer/static/index.html", "ordersim/pytest_plugin.py"} <= expected
    assert files(wheel.site) == expected
    result = subprocess.run(
        [wheel.python, "-c", WHERE_FROM % (PACKAGES, PACKAGES)],
        cwd=wheel.site.parent,
        env=wheel_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["pytest11"] == "ordersim.pytest_plugin"
    found = answer["found"]
    assert {"ordersim.testing", "ordersim.pytest_plugin", *PACKAGES} <= found.keys()
    outside = {
        name: paths
        for name, paths in found.items()
        if any(p is not None and wheel.site not in Path(p).parents for p in paths)
    }
    assert not outside, f"imported from elsewhere than the wheel: {outside}"


def test_the_examples_pass_from_an_empty_folder_against_the_wheel(
    wheel: Wheel, tmp_path: Path
) -> None:
    """examples/ copied alone into an empty folder, run by pytest against the installed wheel:
    nothing from this repository (its sources, tests, pytest configuration) helps."""
    examples = sorted((ROOT / "examples").glob("test_*.py"))
    assert examples
    for example in examples:
        shutil.copy(example, tmp_path)
    result = subprocess.run(
        [wheel.python, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        env=wheel_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "3 passed" in output, output


def test_free_ports_are_outside_the_ephemeral_range_and_never_repeat() -> None:
    """An outgoing connection draws its local port from the kernel's ephemeral range; a
    port handed out from there could be taken before the child binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(200)]
    assert len(set(ports)) == len(ports)
    assert all(port < low for port in ports)
    for port in ports[:20]:  # each one bindable, as handed out
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))
