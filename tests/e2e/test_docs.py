"""Browsable API docs: the OpenAPI document and a Swagger UI page a real browser renders."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile

import pytest

from orchestrator.tools.supervisor import Stack
from tests.harness import CHROMIUM_FLAGS, Gateway

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def test_gateway_serves_its_openapi_document_without_a_token(gateway: Gateway) -> None:
    response = gateway.request("GET", "/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    assert {"/orders", "/orders/{order_id}", "/wallet/deposits"} <= set(document["paths"])


def test_docs_assets_are_served_and_nothing_else_from_the_folder(gateway: Gateway) -> None:
    page = gateway.request("GET", "/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text
    bundle = gateway.request("GET", "/docs/static/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000
    assert gateway.request("GET", "/docs/static/swagger-initializer.js").status_code == 404
    assert gateway.request("GET", "/docs/static/..%2F__init__.py").status_code == 404


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by ./test)")
def test_swagger_ui_page_in_headless_chromium_shows_the_order_routes(stack: Stack) -> None:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                *CHROMIUM_FLAGS,
                f"--user-data-dir={profile}",
                "--virtual-time-budget=15000",
                "--dump-dom",
                f"{stack.urls['gateway']}/docs",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    dom = done.stdout
    assert 'class="swagger-ui' in dom, done.stderr[-2000:]
    # Swagger UI renders one block per operation, with its path and summary.
    assert 'data-path="/orders"' in dom and 'data-path="/orders/{order_id}"' in dom
    assert "Create an order: the eleven steps of the synchronous flow" in dom
    assert json.dumps("/wallet/deposits")[1:-1] in dom
