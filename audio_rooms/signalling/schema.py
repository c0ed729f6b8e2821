"""The protocol as documents a program can read: the WebSocket's JSON Schema and the REST API's
OpenAPI, both generated from the code that checks the messages, so they cannot drift from it.

``GET /api/schema/ws.json``: both directions of the room WebSocket (signalling/outbound.py).
``GET /api/openapi.json``: the route table of signalling/api.py with its request models.
docs/protocol.md remains the prose: what each message means, who may send it.
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import audio_rooms
from audio_rooms.signalling import admin_api, api
from audio_rooms.signalling.auth import COOKIE
from audio_rooms.signalling.outbound import error_catalogue, websocket_schema

_COMPONENT = "#/components/schemas/{model}"
_QUERY_SCHEMAS: dict[str, dict[str, Any]] = {
    "status": {"type": "string", "enum": ["live", "scheduled"], "default": "live"},
    "limit": {"type": "integer", "minimum": 1},
    "cursor": {"type": "string", "description": "`next_cursor` of the previous page"},
    "invite": {"type": "string", "description": "an invite token"},
}


@functools.cache
def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 of the REST API. Answers are described in docs/protocol.md; every error is
    the ``Error`` schema, with one of the catalogue's codes."""
    request_bodies = {**api.REQUEST_BODIES, **admin_api.REQUEST_BODIES}
    bodies = sorted(set(request_bodies.values()), key=lambda model: model.__name__)
    refs, definitions = models_json_schema(
        [(model, "validation") for model in bodies], ref_template=_COMPONENT
    )
    components: dict[str, Any] = dict(definitions.get("$defs", {}))
    components["Error"] = {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "enum": sorted(error_catalogue())},
            "message": {"type": "string"},
            "details": {"type": "object"},
        },
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in [*api.routes, *admin_api.routes]:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            operation: dict[str, Any] = {
                "operationId": f"{route.name}_{method.lower()}",
                "responses": {
                    "2XX": {"description": "See docs/protocol.md."},
                    "default": {
                        "description": "An error with a stable code.",
                        "content": {"application/json": {"schema": {"$ref": _COMPONENT.format(
                            model="Error")}}},
                    },
                },
            }
            parameters = [
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                for name in route.param_convertors
            ]
            parameters += [
                {"name": name, "in": "query", "required": False, "schema": _QUERY_SCHEMAS[name]}
                for name in api.QUERY_PARAMETERS.get(route.endpoint, ())
            ]
            if parameters:
                operation["parameters"] = parameters
            model = request_bodies.get(route.endpoint)
            if model is not None:
                operation["requestBody"] = {
                    # A body whose every field is optional may be left out altogether.
                    "required": bool(components[model.__name__].get("required")),
                    "content": {"application/json": {"schema": refs[(model, "validation")]}},
                }
            paths.setdefault(route.path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "audio-rooms REST API",
            "version": audio_rooms.__version__,
            "description": "docs/protocol.md describes every endpoint; the room WebSocket is "
                           "described by /api/schema/ws.json.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "cookie": {"type": "apiKey", "in": "cookie", "name": COOKIE},
            },
        },
        # Either credential, or none where an endpoint serves anyone (it says 401 otherwise).
        "security": [{"bearer": []}, {"cookie": []}, {}],
        "paths": paths,
    }


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi())


async def websocket_document(request: Request) -> Response:
    return JSONResponse(websocket_schema())


routes = [
    Route("/api/openapi.json", openapi_document, methods=["GET"]),
    Route("/api/schema/ws.json", websocket_document, methods=["GET"]),
]
