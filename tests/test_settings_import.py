"""Settings are cheap to import: pydantic-settings and light modules only, so any tool can
read a service's settings without loading the web stack (the FastAPI template's
``core/config.py``). Checked by what a fresh interpreter has loaded, not by time."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests import ROOT

#: What only a running service needs.
HEAVY = ("fastapi", "starlette", "sqlalchemy", "opentelemetry", "httpx", "aiohttp", "uvicorn")


@pytest.mark.parametrize(
    "module",
    [
        "order_service.settings",
        "inventory_service.settings",
        "payment_service.settings",
        "shipping_service.settings",
        "trace_viewer.settings",
        "common.topology",
    ],
)
def test_settings_load_no_runtime_library(module: str) -> None:
    probe = (
        f"import json, sys\nimport {module}\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    top_level = set(json.loads(loaded.stdout))
    assert "pydantic" in top_level or module == "common.topology"  # the probe is real
    assert sorted(top_level & set(HEAVY)) == []
