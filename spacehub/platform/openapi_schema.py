"""The control plane's OpenAPI schema (`/openapi.json`, `/docs`), made valid where FastAPI is not.

FastAPI gives every method of a multi-method route (`api_route(methods=["GET", "HEAD"])`) the
same operationId, and leaves a path parameter that the function reads from the request instead
of declaring it (`/resolve/{rest:path}`) out of the operation. Both make the schema invalid for
validators and for schemathesis; each is repaired here, once, when the schema is first built.
"""

import re
import warnings
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

_PATH_PARAMETER = re.compile(r"{([^}:]+)(?::[^}]*)?}")
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def install_valid_openapi(app: FastAPI) -> None:
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            with warnings.catch_warnings():  # "Duplicate Operation ID": repaired below
                warnings.simplefilter("ignore", UserWarning)
                schema = build()
            repair_schema(schema)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]


def repair_schema(schema: dict[str, Any]) -> None:
    """Give each operation a unique operationId and declare every parameter its path names."""
    seen: set[str] = set()
    for path, item in schema.get("paths", {}).items():
        named = _PATH_PARAMETER.findall(path)
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            operation_id = operation.get("operationId")
            if operation_id in seen:
                operation["operationId"] = operation_id = f"{operation_id}_{method}"
            seen.add(operation_id)
            parameters = operation.get("parameters", [])
            declared = {p.get("name") for p in parameters if p.get("in") == "path"}
            missing = [name for name in named if name not in declared]
            if missing:
                operation["parameters"] = [
                    *parameters,
                    *(
                        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                        for name in missing
                    ),
                ]
