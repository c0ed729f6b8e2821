"""The package as an operator installs it: a wheel carries the web client and serves it, and
its runtime dependencies are exactly what it imports (test tooling's go in the extras)."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
import venv
from pathlib import Path

import httpx

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "audio_rooms"
# Part of the package but test tooling (real peers that play tones): its imports are test extras.
TEST_TOOLING = {PACKAGE / "sfu" / "testing.py"}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=~!;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imports(paths: set[Path]) -> set[str]:
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names} - {"audio_rooms"}


def _distributions(modules: set[str]) -> set[str]:
    by_module = importlib.metadata.packages_distributions()
    return {
        dist.lower().replace("_", "-") for module in modules for dist in by_module.get(module, [])
    }


def _project() -> dict[str, object]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]  # type: ignore[no-any-return]


def test_runtime_dependencies_are_exactly_what_the_package_imports() -> None:
    project = _project()
    declared = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    test_extra = {_name(r) for r in project["optional-dependencies"]["test"]}  # type: ignore[index]
    runtime_sources = set(PACKAGE.rglob("*.py")) - TEST_TOOLING
    imported = _distributions(_imports(runtime_sources))

    assert imported - declared == set(), "imported by audio_rooms but not declared"

    # Declared but not imported by name: each is loaded some other way, checked here.
    importlib.import_module("audio_rooms.edge")
    loaded_through_uvicorn = {"httptools", "websockets"}  # edge.py's protocol base classes
    assert loaded_through_uvicorn <= set(sys.modules)
    assert "postgresql+psycopg://" in (PACKAGE / "db" / "engine.py").read_text()  # by URL
    unused = declared - imported - loaded_through_uvicorn - {"psycopg"}
    assert unused == set(), "declared runtime dependencies that nothing imports"

    tooling = _distributions(_imports(TEST_TOOLING))
    assert tooling - declared - test_extra == set(), "test tooling imports missing from [test]"


def test_hooked_packages_are_pinned_and_constrained() -> None:
    pins = {
        _name(r): r for r in _project()["dependencies"]  # type: ignore[attr-defined]
    }
    constraints = {
        _name(line): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    }
    for hooked in ("aiortc", "aioice", "pylibsrtp", "uvicorn"):
        assert "==" in pins[hooked], f"{hooked} is hooked (private internals) but not pinned"
        assert pins[hooked].endswith(f"=={constraints[hooked]}")
    for requirement in pins:
        assert requirement in constraints, f"{requirement} missing from constraints.txt"


def test_a_wheel_install_serves_the_web_client(tmp_path: Path, redis_url: str) -> None:
    # Built from a copy: setuptools leaves build/ and *.egg-info/ in the tree it builds.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", "build", "data", "*.egg-info", "__pycache__", ".*_cache", "*.so"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
         str(source)],
        check=True, timeout=300, capture_output=True,
    )
    wheel = next((tmp_path / "dist").glob("audio_rooms-*.whl"))
    # The dependencies come from this interpreter's site-packages; audio_rooms from the wheel.
    venv.create(tmp_path / "venv", system_site_packages=True, with_pip=False)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "-q",
         "--ignore-installed",
         str(wheel)],
        check=True, timeout=120, capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDIO_ROOMS_", "PYTHON"))}
    env.update({"AUDIO_ROOMS_REDIS_URL": redis_url, "AUDIO_ROOMS_DATA_DIR": str(tmp_path / "d"),
                "AUDIO_ROOMS_MEDIA_HOST_ADDRESSES": "127.0.0.1"})
    where = subprocess.run(
        [str(python), "-c", "import audio_rooms; print(audio_rooms.__file__)"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30, check=True,
    )
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout

    port = free_port()
    server = subprocess.Popen(
        # Two workers: the supervisor starts them from the installed package, not the checkout.
        [str(tmp_path / "venv" / "bin" / "audio-rooms"), "serve", "--port", str(port),
         "--workers", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                page = httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and server.poll() is None, "did not start"
                time.sleep(0.1)
        assert page.status_code == 200 and "<html" in page.text.lower()
        script = httpx.get(f"http://127.0.0.1:{port}/app.js", timeout=5)
        assert script.status_code == 200 and "import" in script.text
    finally:
        server.kill()
        server.wait()
