"""The package's layers depend one way: app -> signalling -> rooms -> state/domain -> sfu.

A join walks down this chain and nothing below calls back up, so each layer can be read,
tested and (in the next issues) spread over processes without the ones above it. These tests
read every module's imports (``TYPE_CHECKING`` blocks included: a type-level cycle is still a
cycle for the reader) and name the module and the import that breaks a rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent  # holds the audio_rooms package


def _module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, root: Path) -> set[str]:
    """Every module ``path`` imports, absolute; ``from x import y`` counts as ``x`` and ``x.y``
    (``y`` may be a submodule)."""
    module = _module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            found.add(source)
            found.update(f"{source}.{alias.name}" for alias in node.names)
    return found


def _modules(root: Path, where: tuple[str, ...]) -> list[Path]:
    paths: list[Path] = []
    for name in where:
        target = root / "audio_rooms" / name
        paths.extend(sorted(target.rglob("*.py")) if target.is_dir() else [target])
    assert paths, where
    return paths


def _breaches(
    where: tuple[str, ...], forbidden: tuple[str, ...], root: Path = ROOT
) -> list[str]:
    banned = tuple(f"audio_rooms.{name}" for name in forbidden)
    return sorted(
        f"{_module_name(path, root)} imports {imported}"
        for path in _modules(root, where)
        for imported in _imports(path, root)
        if any(imported == b or imported.startswith(f"{b}.") for b in banned)
    )


@pytest.mark.parametrize(
    ("where", "forbidden"),
    [
        # Only the composition root builds and wires; what it builds never reaches back to it.
        (
            ("signalling", "rooms.py", "audience.py", "metrics.py", "services.py", "sfu",
             "state", "domain", "db", "accounts"),
            ("app",),
        ),
        # Rooms decide; they do not know about sockets, nor the node's connections.
        (("rooms.py", "audience.py"), ("signalling", "services")),
        # Live state and the rules know nothing of requests, sockets or media.
        (("state",), ("signalling", "rooms", "services", "sfu", "metrics")),
        (("domain",), ("state", "signalling", "sfu", "db", "rooms", "services", "accounts")),
        # The SFU is told what to forward; it knows nothing of rooms or roles.
        (("sfu",), ("rooms", "signalling", "state", "domain", "db", "services", "accounts")),
    ],
    ids=["nothing-imports-app", "rooms", "state", "domain", "sfu"],
)
def test_imports_go_one_way(where: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    assert _breaches(where, forbidden) == []


def test_the_check_sees_imports_of_every_form(tmp_path: Path) -> None:
    """The parser behind the rules above catches the forms a breach could take."""
    found = _imports(ROOT / "audio_rooms" / "signalling" / "hub.py", ROOT)
    assert "audio_rooms.signalling.connection" in found
    assert "audio_rooms.state.keys" in found  # `from audio_rooms.state import keys`
    signalling = tmp_path / "audio_rooms" / "signalling"
    signalling.mkdir(parents=True)
    (signalling / "__init__.py").write_text("from .. import app\n")
    (signalling / "typed.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from ..app import Services\n"
    )
    (signalling / "plain.py").write_text("import audio_rooms.app.routes\n")
    (signalling / "fine.py").write_text("from audio_rooms.application import x\n")
    assert _breaches(("signalling",), ("app",), tmp_path) == [
        "audio_rooms.signalling imports audio_rooms.app",
        "audio_rooms.signalling.plain imports audio_rooms.app.routes",
        "audio_rooms.signalling.typed imports audio_rooms.app",
        "audio_rooms.signalling.typed imports audio_rooms.app.Services",
    ]
