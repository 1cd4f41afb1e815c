"""The API's documents: the generated OpenAPI document (gen/openapi) at /openapi.json and
/openapi.yaml, the JSON Schemas of documents the API reads and writes (gen/schema: the portable
dashboard document) at /schemas/<name>, and a browsable reference at /docs from swagger-ui-dist
(npm), served locally."""

from __future__ import annotations

import mimetypes
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

ROOT = Path(__file__).resolve().parents[2]
OPENAPI_DIR = ROOT / "gen" / "openapi"
SCHEMA_DIR = ROOT / "gen" / "schema"
SWAGGER_UI_DIR = ROOT / "node_modules" / "swagger-ui-dist"
# The only swagger-ui files the page loads.
_UI_FILES = frozenset(
    {"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "favicon-32x32.png"}
)

DOCS_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Tessera API reference</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body>
</html>
"""

# Separate file so the page needs no inline script (a strict CSP stays possible).
DOCS_INIT = b"""window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: true,
  tryItOutEnabled: true,
  displayOperationId: true,
  docExpansion: "list",
  filter: true,
});
"""


class StaticRoutes:
    def __init__(
        self, openapi_dir: Path = OPENAPI_DIR, ui_dir: Path = SWAGGER_UI_DIR, schema_dir: Path = SCHEMA_DIR
    ) -> None:
        self._files: dict[str, tuple[bytes, str]] = {}
        if schema_dir.is_dir():
            for path in sorted(schema_dir.glob("*.json")):
                self._files[f"/schemas/{path.name}"] = (path.read_bytes(), "application/schema+json")
        for name, media in (("openapi.json", "application/json"), ("openapi.yaml", "application/yaml")):
            path = openapi_dir / f"tessera.{name}"
            if path.is_file():
                self._files[f"/{name}"] = (path.read_bytes(), media)
        if ui_dir.is_dir():
            self._files["/docs"] = (DOCS_PAGE, "text/html; charset=utf-8")
            self._files["/docs/init.js"] = (DOCS_INIT, "text/javascript")
            for name in _UI_FILES:
                if (ui_dir / name).is_file():
                    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
                    self._files[f"/docs/{name}"] = ((ui_dir / name).read_bytes(), media)

    def serves(self, path: str) -> bool:
        return path.rstrip("/") in self._files or path == "/docs/"

    async def respond(self, path: str, headers: dict[str, str], send: Send, extra: list[tuple[bytes, bytes]]) -> None:
        body, media = self._files[path.rstrip("/") or path]
        response_headers = [
            (b"content-type", media.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-cache"),
            *extra,
        ]
        await send({"type": "http.response.start", "status": 200, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
