"""The OpenAPI 3.1 document the daemon serves at ``/openapi.json``.

Written out by hand rather than generated: the API is small, the stack
(Starlette, not FastAPI) has no pydantic models to generate it from, and a
hand-kept document is the contract the schema tests (schemathesis) hold the
handlers to.
"""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_ERROR = _json(_ref("Error"), "error")
_UNAUTHORIZED = _json(_ref("Error"), "no token, or an unknown one")
_FORBIDDEN = _json(_ref("Error"), "the token's role does not allow this")
_NULLABLE_INT = {"type": ["integer", "null"]}
_NULLABLE_NUMBER = {"type": ["number", "null"]}
_NULLABLE_STRING = {"type": ["string", "null"]}
_NAMES = {"type": "array", "items": {"type": "string"}}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object", "required": ["error"],
        "properties": {"error": {"type": "string"}, "detail": {}},
    },
    "InstanceStatus": {
        "type": "object",
        "required": ["name", "service", "index", "state", "pid", "uptime", "restarts",
                     "exit_code", "exit_signal", "reason", "health", "cpu_percent", "memory_rss"],
        "properties": {
            "name": {"type": "string", "description": "instance name: web, or web:0 with copies"},
            "service": {"type": "string"},
            "index": {"type": "integer", "minimum": 0},
            "state": {"type": "string", "enum": ["stopped", "starting", "running", "stopping",
                                                  "backoff", "exited", "failed"]},
            "pid": _NULLABLE_INT,
            "started_at": _NULLABLE_NUMBER,
            "uptime": _NULLABLE_NUMBER,
            "restarts": {"type": "integer", "minimum": 0},
            "exit_code": _NULLABLE_INT,
            "exit_signal": _NULLABLE_INT,
            "reason": {"type": "string"},
            "health": _NULLABLE_STRING,
            "status_text": _NULLABLE_STRING,
            "cpu_percent": _NULLABLE_NUMBER,
            "memory_rss": _NULLABLE_INT,
        },
    },
    "StatusList": {
        "type": "object", "required": ["services"],
        "properties": {"services": {"type": "array", "items": _ref("InstanceStatus")}},
    },
    "ControlRequest": {
        "description": "the services (or instances) to act on: names, or all = true",
        "oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["names"],
             "properties": {"names": {**_NAMES, "minItems": 1}}},
            {"type": "object", "additionalProperties": False, "required": ["all"],
             "properties": {"all": {"const": True}}},
        ],
    },
    "ControlResult": {
        "type": "object", "required": ["action", "done"],
        "properties": {"action": {"type": "string"}, "done": _NAMES},
    },
    "ShutdownResult": {
        "type": "object", "required": ["action", "stopping", "stop_budget", "pid"],
        "properties": {
            "action": {"const": "shutdown"},
            "stopping": {**_NAMES, "description": "the services, in the order they stop "
                                                  "(dependents first)"},
            "stop_budget": {"type": "number", "minimum": 0,
                            "description": "the longest the services' stop can take, in "
                                           "seconds (their stop_timeout along each chain)"},
            "pid": {"type": "integer", "description": "the daemon's process id"},
        },
    },
    "ReloadResult": {
        "type": "object",
        "required": ["ok", "added", "removed", "changed", "unchanged", "needs_restart",
                     "problems"],
        "properties": {
            "ok": {"type": "boolean"},
            "added": _NAMES, "removed": _NAMES, "changed": _NAMES, "unchanged": _NAMES,
            "needs_restart": _NAMES,
            "problems": {"type": "array", "items": {"type": "string"},
                         "description": "file:line key: message, when the file is bad"},
        },
    },
}

_SECURED: list[dict[str, list[str]]] = [{"bearer": []}]
_NAME_PARAM = {"name": "name", "in": "path", "required": True,
               "schema": {"type": "string", "minLength": 1},
               "description": "a service name, or an instance name such as web:1"}
_FOLLOW = {"name": "follow", "in": "query", "required": False,
           "schema": {"type": "boolean", "default": False},
           "description": "keep the response open and stream what comes next"}
_LINES = {"name": "n", "in": "query", "required": False,
          "schema": {"type": "integer", "minimum": 0, "maximum": 100000, "default": 50},
          "description": "how many of the last lines to send first"}


def _control(action: str) -> dict[str, Any]:
    return {"post": {
        "summary": f"{action} services", "operationId": f"{action}_services",
        "security": _SECURED,
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref("ControlRequest")}}},
        "responses": {"200": _json(_ref("ControlResult"), f"what was {action}ed"),
                      "400": _ERROR, "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                      "404": _json(_ref("Error"), "no such service")},
    }}


def openapi_document(version: str) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "procward control API", "version": version,
                 "description": "Control a running procward daemon. Every path under /v1 "
                                "needs `Authorization: Bearer <token>`; GET needs a read or "
                                "admin token, everything else an admin token."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _SCHEMAS,
        },
        "paths": {
            "/healthz": {"get": {
                "summary": "is the daemon up (no token needed)", "operationId": "healthz",
                "security": [],
                "responses": {"200": _json({"type": "object", "required": ["status"],
                                            "properties": {"status": {"const": "ok"}}}, "up")},
            }},
            "/v1/services": {"get": {
                "summary": "every instance's status", "operationId": "list_services",
                "security": _SECURED,
                "responses": {"200": _json(_ref("StatusList"), "status of every instance"),
                              "401": _UNAUTHORIZED},
            }},
            "/v1/services/{name}": {"get": {
                "summary": "one service's (or instance's) status", "operationId": "get_service",
                "security": _SECURED, "parameters": [_NAME_PARAM],
                "responses": {"200": _json(_ref("StatusList"), "its instances"),
                              "401": _UNAUTHORIZED,
                              "404": _json(_ref("Error"), "no such service")},
            }},
            "/v1/services/{name}/logs": {"get": {
                "summary": "the last lines of a service's output, optionally followed",
                "operationId": "service_logs", "security": _SECURED,
                "parameters": [
                    _NAME_PARAM, _LINES, _FOLLOW,
                    {"name": "stream", "in": "query", "required": False,
                     "description": "both: each line starts with the name of its "
                                    "stream and a bar (one file, unmarked, when the "
                                    "service merges stderr into stdout)",
                     "schema": {"type": "string", "enum": ["stdout", "stderr", "both"],
                                "default": "stdout"}},
                ],
                "responses": {
                    "200": {"description": "the lines; with several instances each line "
                                           "starts with `[instance] `; with both streams, "
                                           "interleaved by time when the lines carry "
                                           "timestamps, else stdout's then stderr's",
                            "content": {"text/plain": {"schema": {"type": "string"}}}},
                    "400": _ERROR, "401": _UNAUTHORIZED,
                    "404": _json(_ref("Error"), "no such service"),
                },
            }},
            "/v1/start": _control("start"),
            "/v1/stop": _control("stop"),
            "/v1/restart": _control("restart"),
            "/v1/reload": {"post": {
                "summary": "re-read the configuration file and apply the difference",
                "operationId": "reload", "security": _SECURED,
                "responses": {
                    "200": _json(_ref("ReloadResult"), "applied: what was done"),
                    "422": _json(_ref("ReloadResult"),
                                 "the file is bad: nothing changed, problems say why"),
                    "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                },
            }},
            "/v1/shutdown": {"post": {
                "summary": "stop every service in order, then the daemon itself",
                "operationId": "shutdown", "security": _SECURED,
                "responses": {
                    "200": {"description": "the stop begins once this answer is sent; "
                                           "the API closes as the services stop",
                            "content": {"application/json": {
                                "schema": _ref("ShutdownResult"),
                                "example": {"action": "shutdown",
                                            "stopping": ["web", "worker", "db"],
                                            "stop_budget": 20.0, "pid": 41200}}}},
                    "401": _UNAUTHORIZED, "403": _FORBIDDEN,
                },
            }},
            "/v1/events": {"get": {
                "summary": "the daemon's events as JSON lines, optionally followed",
                "operationId": "events", "security": _SECURED,
                "parameters": [_LINES, _FOLLOW],
                "responses": {"200": {"description": "one JSON object a line",
                                      "content": {"application/x-ndjson": {
                                          "schema": {"type": "string"}}}},
                              "400": _ERROR, "401": _UNAUTHORIZED},
            }},
            "/metrics": {"get": {
                "summary": "Prometheus metrics", "operationId": "metrics",
                "security": _SECURED,
                "responses": {"200": {"description": "Prometheus text format",
                                      "content": {"text/plain": {
                                          "schema": {"type": "string"}}}},
                              "401": _UNAUTHORIZED},
            }},
        },
    }


def reference_markdown(document: dict[str, Any]) -> str:
    """docs/api-reference.md, generated from the document so the two cannot drift apart."""
    out = [
        "# Control API reference",
        "",
        "<!-- Generated from the OpenAPI document by scripts/api-reference; do not edit. -->",
        "",
        document["info"]["description"],
        "",
        "The live document is served at `/openapi.json` by every daemon.",
        "",
    ]
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            out += [f"## `{method.upper()} {path}`", "", op["summary"].capitalize() + ".", ""]
            auth = "none" if op.get("security") == [] else "bearer token"
            role = "read or admin" if method == "get" else "admin"
            out.append(f"Auth: {auth}" + ("" if auth == "none" else f" ({role})") + ".")
            out.append("")
            params = op.get("parameters", [])
            if params:
                out += ["| parameter | in | type | description |", "|---|---|---|---|"]
                for p in params:
                    schema = p.get("schema", {})
                    kind = schema.get("type", "")
                    if "enum" in schema:
                        kind += " (" + " \\| ".join(schema["enum"]) + ")"
                    if "default" in schema:
                        kind += f", default {json_text(schema['default'])}"
                    out.append(f"| `{p['name']}` | {p['in']} | {kind} | "
                               f"{p.get('description', '')} |")
                out.append("")
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
                out += [f"Body: `{ref}` (below).", ""]
            out += ["| status | meaning |", "|---|---|"]
            for status, resp in op["responses"].items():
                out.append(f"| {status} | {resp['description']} |")
            out.append("")
            for status, resp in op["responses"].items():
                for media in resp.get("content", {}).values():
                    if "example" in media:
                        out += [f"For example ({status}):", "", "```json",
                                json_text(media["example"], indent=2), "```", ""]
    out += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        out += [f"### `{name}`", "", "```json", json_text(schema, indent=2), "```", ""]
    return "\n".join(out)


def json_text(value: Any, indent: int | None = None) -> str:
    import json

    return json.dumps(value, indent=indent)
