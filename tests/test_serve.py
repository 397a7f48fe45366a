"""How uvicorn serves each service process (``common.app.serve``)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from common.app import server_config
from inventory_service.settings import InventorySettings


def loaded(app: FastAPI) -> object:
    config = server_config(app, InventorySettings(port=0))
    config.load()
    assert config.loop == "uvloop"
    assert config.http_protocol_class is HttpToolsProtocol
    return config.loaded_app


def test_no_proxy_is_trusted_unless_forwarded_allow_ips_names_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Without FORWARDED_ALLOW_IPS, X-Forwarded-For/-Proto are nobody's to set, and no
    middleware looks for them on every request; with it, uvicorn's reads them from the
    proxies it names."""
    app = FastAPI()
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert not isinstance(loaded(app), ProxyHeadersMiddleware)

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.7")
    proxied = loaded(app)
    assert isinstance(proxied, ProxyHeadersMiddleware)
    assert "10.0.0.7" in proxied.trusted_hosts
    assert "127.0.0.1" not in proxied.trusted_hosts
