"""The room WebSocket's messages as TypeScript declarations, for the client SDK (web/sdk/).

Rendered from the JSON Schema the server serves at ``/api/schema/ws.json`` (outbound.py), which
is itself generated from the models that check and build the messages; so the declarations
follow the code. ``python3 -m audio_rooms.typescript`` writes
``audio_rooms/web/sdk/protocol.d.ts``; a test fails when the checked-in file differs from what
this renders (docs/sdk.md).

Only what the schema uses is translated: objects (closed, or maps with ``additionalProperties``),
arrays, ``const``/``enum`` literals, ``anyOf`` unions, ``$ref`` and the primitive types. A
property is required when the schema requires it or fixes it with ``const`` (the ``type`` of a
server message has a default in validation mode, but is always on the wire).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

# The whole server, as it runs: every module that defines an error class is loaded, so the
# catalogue of codes is the one the server sends, whatever imported this module.
import audio_rooms.app  # noqa: F401
from audio_rooms.signalling.outbound import error_catalogue, websocket_schema

TARGET = Path(__file__).resolve().parent / "web" / "sdk" / "protocol.d.ts"
_DIRECTIONS = {"client_to_server": "ClientMessage", "server_to_client": "ServerMessage"}
_PRIMITIVES = {"string": "string", "integer": "number", "number": "number",
               "boolean": "boolean", "null": "null"}
# Schema names that would shadow a global of TypeScript's standard library.
_RENAMED = {"Error": "ErrorMessage"}
_HEADER = """\
// The audio-rooms room WebSocket protocol (docs/protocol.md), as TypeScript declarations.
// Generated from the server's JSON Schema (GET /api/schema/ws.json) by
// `python3 -m audio_rooms.typescript`: do not edit by hand; a test fails when this
// file and the server's message models drift apart.
"""


class UnsupportedSchema(ValueError):
    """The schema uses a construct this translation does not know: extend it, do not guess."""


def _name(ref_or_name: str) -> str:
    name = ref_or_name.rsplit("/", 1)[-1]
    return _RENAMED.get(name, name)


def _literal(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return _name(str(schema["$ref"]))
    if "const" in schema:
        return _literal(schema["const"])
    if "enum" in schema:
        return " | ".join(_literal(v) for v in schema["enum"])
    union = schema.get("anyOf") or schema.get("oneOf")
    if union:
        return " | ".join(_type(s) for s in union)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        item = _type(schema.get("items", {}))
        return f"Array<{item}>"
    if kind == "object":
        if "properties" in schema:
            return _object(schema, indent="  ")
        extra = schema.get("additionalProperties", True)
        value = "unknown" if extra is True else _type(extra)
        return f"{{ [key: string]: {value} }}"
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind]
    if not schema:
        return "unknown"
    raise UnsupportedSchema(f"no TypeScript for {schema!r}")


def _doc(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    lines = [line.strip() for line in text.strip().splitlines()]
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def _object(schema: dict[str, Any], indent: str = "") -> str:
    required = set(schema.get("required", ()))
    lines = ["{"]
    for name, prop in schema.get("properties", {}).items():
        optional = name not in required and "const" not in prop
        lines += _doc(prop.get("description"), indent + "  ")
        lines.append(f"{indent}  {name}{'?' if optional else ''}: {_type(prop)};")
    lines.append(f"{indent}}}")
    return "\n".join(lines)


def declarations() -> str:
    """The text of protocol.d.ts."""
    schema = websocket_schema()
    defs: dict[str, Any] = schema["$defs"]
    out = [_HEADER]
    for name in sorted(d for d in defs if d not in _DIRECTIONS):
        definition = defs[name]
        out += _doc(definition.get("description"), "")
        if definition.get("type") == "object" and "properties" in definition:
            out.append(f"export interface {_name(name)} {_object(definition)}\n")
        else:
            out.append(f"export type {_name(name)} = {_type(definition)};\n")
    for direction, union in _DIRECTIONS.items():
        mapping: dict[str, str] = defs[direction]["discriminator"]["mapping"]
        members = sorted({_name(ref) for ref in mapping.values()})
        out.append(f"/** Every message of {direction.replace('_', ' ')}, by its `type`. */")
        out.append(f"export type {union} =\n" + "\n".join(f"  | {m}" for m in members) + ";\n")
        out.append(f"/** `type` -> the {union} of that type. */")
        out.append(f"export interface {union}Map {{")
        for kind in sorted(mapping):
            model = mapping[kind].rsplit("/", 1)[1]
            shared = "const" not in defs[model]["properties"]["type"]
            entry = f"{_name(model)} & {{ type: {_literal(kind)} }}" if shared else _name(model)
            out.append(f"  {kind}: {entry};")
        out.append("}\n")
        out.append(f"export type {union}Type = keyof {union}Map;\n")
    codes = "\n".join(f"  | {_literal(code)}" for code in sorted(error_catalogue()))
    out.append("/** Every error `code` the server may send (docs/protocol.md, Errors). */")
    out.append(f"export type ErrorCode =\n{codes};")
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    target = Path(argv[1]) if len(argv) > 1 else TARGET
    target.write_text(declarations(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
