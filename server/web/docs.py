"""GET /docs: the interactive API page (Swagger UI) over our own /openapi.json.

Swagger UI shows every endpoint with its request and response bodies (the marshmallow schemas
of schemas/), its error envelope and its parameters, and can send a request. Its files come
from the flask-swagger-ui package (which ships Swagger UI's release files, kept in step with
it) and are served by this server under /docs/assets/: the page needs no CDN and works on an
offline laptop at a legal aid office. flask-smorest renders the page itself (its
OPENAPI_SWAGGER_UI_* settings); Swagger UI's online validator, its one outside call, is off.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from flask import Flask, Response, send_from_directory

from server.errors import ApiError

ASSETS_URL = "/docs/assets/"
ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js",
                    "favicon-32x32.png", "favicon-16x16.png"})

DOCS_CONFIG: dict[str, Any] = {
    "OPENAPI_SWAGGER_UI_PATH": "docs",
    "OPENAPI_SWAGGER_UI_URL": ASSETS_URL,
    "OPENAPI_SWAGGER_UI_CONFIG": {
        "validatorUrl": None,  # else Swagger UI asks validator.swagger.io about our spec
        "docExpansion": "list", "defaultModelsExpandDepth": 0, "defaultModelExpandDepth": 3,
        "displayRequestDuration": True, "deepLinking": True,
    },
}


def register_docs(app: Flask) -> None:
    """Serve Swagger UI's files from the installed package (the page itself is flask-smorest's)."""
    folder = str(files("flask_swagger_ui") / "dist")

    @app.get(ASSETS_URL + "<name>")
    def docs_asset(name: str) -> Response:
        if name not in ASSETS:
            raise ApiError(404, "not_found", "No such file of the API page.")
        return send_from_directory(folder, name, max_age=86400)
