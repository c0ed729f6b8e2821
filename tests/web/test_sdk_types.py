"""The SDK package without a browser: its TypeScript declarations follow the server's message
models (protocol.d.ts is generated; a drift fails here), a TypeScript program written against
them compiles and the declarations reject wrong ones (tsc), the declared exports are the module's
exports, and the example page uses nothing but the SDK."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from audio_rooms import typescript

REPO = Path(__file__).resolve().parents[2]
SDK = REPO / "audio_rooms" / "web" / "sdk"
TS_PROJECT = Path(__file__).with_name("sdk_types")


def test_protocol_declarations_are_generated_from_the_server_models() -> None:
    checked_in = (SDK / "protocol.d.ts").read_text(encoding="utf-8")
    assert checked_in == typescript.declarations(), (
        "audio_rooms/web/sdk/protocol.d.ts differs from the server's message models: run "
        "`python3 -m audio_rooms.typescript` and commit the result")


def test_every_message_type_of_the_schema_is_declared() -> None:
    from audio_rooms.signalling.outbound import message_types

    text = (SDK / "protocol.d.ts").read_text(encoding="utf-8")
    for direction, union in (("server_to_client", "ServerMessageMap"),
                             ("client_to_server", "ClientMessageMap")):
        block = text.split(f"export interface {union} {{", 1)[1].split("\n}", 1)[0]
        declared = set(re.findall(r"^  (\w+):", block, flags=re.MULTILINE))
        assert declared == message_types(direction), direction


def test_a_typescript_program_against_the_declarations_compiles() -> None:
    """tests/web/sdk_types/use.ts uses the API as a TypeScript developer would, with lines that
    must not compile (a wrong role, a missing user_id, an unknown event): tsc fails if the
    declarations break or grow loose."""
    tsc = shutil.which("tsc")
    if tsc is None:
        pytest.skip("TypeScript is not installed (scripts/test installs it: npm i -g typescript)")
    done = subprocess.run([tsc, "-p", str(TS_PROJECT)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr


def _js_exports(text: str) -> set[str]:
    names = set(re.findall(r"^export (?:async )?(?:function|class|const) (\w+)", text, re.M))
    names |= set(re.findall(r"^export \* as (\w+) from", text, re.M))
    for group in re.findall(r"^export \{([^}]*)\} from", text, re.M):
        names |= {name.split(" as ")[-1].strip() for name in group.split(",") if name.strip()}
    return names


def test_the_declared_exports_are_the_module_exports() -> None:
    js = _js_exports((SDK / "index.js").read_text(encoding="utf-8"))
    dts = set(re.findall(r"^export (?:declare )?(?:function|class|namespace|const) (\w+)",
                         (SDK / "index.d.ts").read_text(encoding="utf-8"), re.M))
    assert js == dts
    assert {"connect", "Client", "Room", "RoomError", "ApiError"} <= js


def test_the_package_json_names_files_that_exist() -> None:
    package = json.loads((SDK / "package.json").read_text(encoding="utf-8"))
    assert package["type"] == "module"
    targets = [package["main"], package["types"]]
    for entry in package["exports"].values():
        targets += entry.values() if isinstance(entry, dict) else [entry]
    missing = [t for t in targets if not (SDK / t).is_file()]
    assert missing == []
    # Every module of the package is exported, so nothing a program needs is private.
    modules = {f"./{p.name}" for p in SDK.glob("*.js") if p.name != "example.js"}
    assert modules <= set(targets)


def test_the_example_page_uses_only_the_sdk() -> None:
    script = (SDK / "example.js").read_text(encoding="utf-8")
    imports = re.findall(r"""^import .* from ["']([^"']+)["']""", script, re.M)
    assert imports == ["./index.js"]
    assert "import(" not in script
    page = (SDK / "example.html").read_text(encoding="utf-8")
    assert re.findall(r"<script[^>]*src=\"([^\"]+)\"", page) == ["example.js"]
