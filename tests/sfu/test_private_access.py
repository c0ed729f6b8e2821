"""Only ``audio_rooms/sfu/hooks/`` touches the private internals of aiortc, aioice and pylibsrtp.

Those internals can change in any release; keeping every use in one package is what lets
``hooks.check_compatibility`` and ``tests/sfu/test_hooks.py`` vouch for them. This scans the
source of every other module of the package, and the benchmarks, for:

* an attribute access ``obj._name`` (not ``self``/``cls``, not a dunder) where ``_name`` is a
  private attribute or method that aiortc, aioice or pylibsrtp define (assigned on ``self``, or
  defined in a class body), including name-mangled ``_Class__name`` spellings;
* ``getattr``/``setattr``/``hasattr``/``delattr`` with such a name as a string literal;
* an import of a private module or name of those packages (``pylibsrtp._binding``).

Our own private attributes that happen to share a name with one of theirs are told apart by
type only at run time, so a module's own classes are excluded: an access ``obj._name`` is
allowed when the same module defines ``_name`` on ``self`` (it is then its own attribute).
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

LIBRARIES = ("aiortc", "aioice", "pylibsrtp")
ROOT = Path(__file__).resolve().parents[2]
HOOKS = ROOT / "audio_rooms" / "sfu" / "hooks"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _own_private_names(tree: ast.AST) -> set[str]:
    """Private names a module defines itself: on ``self``/``cls``, in class bodies, in __slots__."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
            and isinstance(node.ctx, ast.Store)
            and _is_private(node.attr)
        ):
            names.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    names.add(item.name)
                elif isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    names.update(t.id for t in targets if isinstance(t, ast.Name))
                    if isinstance(item.value, ast.Tuple | ast.List):  # __slots__
                        names.update(
                            e.value
                            for e in item.value.elts
                            if isinstance(e, ast.Constant) and isinstance(e.value, str)
                        )
    return {name for name in names if _is_private(name)}


def _library_private_names() -> set[str]:
    names: set[str] = set()
    for library in LIBRARIES:
        spec = importlib.util.find_spec(library)
        assert spec is not None and spec.submodule_search_locations, library
        for folder in spec.submodule_search_locations:
            for path in Path(folder).rglob("*.py"):
                tree = ast.parse(path.read_text(encoding="utf-8"))
                for node in ast.walk(tree):
                    if isinstance(node, ast.ClassDef):
                        own = _own_private_names(node)
                        names |= own
                        # What name mangling makes of ``self.__x`` in class ``C``: ``_C__x``.
                        names |= {
                            f"_{node.name.lstrip('_')}{name}"
                            for name in own
                            if name.startswith("__")
                        }
    return names


def _violations(path: Path, library_names: set[str], root: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = _own_private_names(tree)
    found: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        found.append(f"{path.relative_to(root)}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            base = node.value
            if isinstance(base, ast.Name) and base.id in ("self", "cls"):
                continue
            if node.attr in library_names and node.attr not in own:
                report(node, f".{node.attr}")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) >= 2
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
            and node.args[1].value in library_names
        ):
            report(node, f"{node.func.id}(..., {node.args[1].value!r})")
        elif isinstance(node, ast.ImportFrom) and node.module:
            parts = node.module.split(".")
            if parts[0] in LIBRARIES and (
                any(_is_private(p) for p in parts) or any(_is_private(a.name) for a in node.names)
            ):
                report(node, f"from {node.module} import ...")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] in LIBRARIES and any(_is_private(p) for p in parts):
                    report(node, f"import {alias.name}")
    return found


def _sources() -> list[Path]:
    paths = [*(ROOT / "audio_rooms").rglob("*.py"), *(ROOT / "bench").glob("*.py")]
    return sorted(p for p in paths if HOOKS not in p.parents)


def test_only_hooks_touch_private_internals_of_aiortc_aioice_and_pylibsrtp() -> None:
    library_names = _library_private_names()
    assert {"_send", "_handle_rtp_data", "_RTCRtpSender__lsr", "_srtp"} <= library_names
    violations = [v for path in _sources() for v in _violations(path, library_names)]
    assert violations == [], "\n".join(violations)


def test_the_scan_sees_what_it_must(tmp_path: Path) -> None:
    """The scan itself: each kind of private access is caught, our own attributes are not."""
    path = tmp_path / "sample.py"
    path.write_text(
        "from pylibsrtp._binding import ffi\n"
        "class Mine:\n"
        "    def __init__(self):\n"
        "        self._send = 1\n"
        "def f(dtls, pc, mine):\n"
        "    dtls._handle_rtp_data = None\n"
        "    getattr(pc, '_RTCRtpSender__lsr')\n"
        "    return dtls.transport._connection, mine._send, mine._not_theirs\n"
    )
    found = _violations(path, _library_private_names(), root=tmp_path)
    assert sorted(found) == [
        "sample.py:1: from pylibsrtp._binding import ...",
        "sample.py:6: ._handle_rtp_data",
        "sample.py:7: getattr(..., '_RTCRtpSender__lsr')",
        "sample.py:8: ._connection",
    ]
