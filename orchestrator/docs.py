"""Browsable API docs: the gateway's OpenAPI document and a Swagger UI page.

Swagger UI's files come from the ``swagger-ui-py`` package (nothing is downloaded at
run time); only its static folder is used, its Python code is never imported.
"""

from __future__ import annotations

import importlib.resources
import importlib.util
from pathlib import Path
from typing import Any

import falcon

OPENAPI = importlib.resources.files("contracts") / "openapi" / "gateway.json"
# The files the page needs, and nothing else from the folder.
ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "application/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>syncorders API</title>
  <link rel="stylesheet" href="/docs/static/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/static/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
  </script>
</body>
</html>
"""


def swagger_ui_folder() -> Path | None:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "static"
    return folder if (folder / "swagger-ui-bundle.js").exists() else None


class OpenApiDocument:
    def __init__(self, path: Any = OPENAPI) -> None:
        self.body = path.read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = self.body


class DocsPage:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.text = PAGE


class DocsAsset:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def on_get(self, req: falcon.Request, resp: falcon.Response, name: str) -> None:
        if name not in ASSETS:
            raise falcon.HTTPNotFound()
        resp.content_type = ASSETS[name]
        resp.cache_control = ["public", "max-age=86400"]
        path = self.folder / name
        resp.set_stream(path.open("rb"), path.stat().st_size)


def add_docs(app: falcon.App) -> None:
    app.add_route("/openapi.json", OpenApiDocument())
    folder = swagger_ui_folder()
    if folder is not None:
        app.add_route("/docs", DocsPage())
        app.add_route("/docs/static/{name}", DocsAsset(folder))
