"""A non-editable install ships the schemas, profiles and example cassettes inside the wheel."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import mockserver
assert mockserver.__file__.startswith(sys.argv[1]), mockserver.__file__
import mockserver.cli, mockserver.server.app, mockserver.shared.opening, mockserver.pytest_plugin
from mockserver.contract import validation
from mockserver.profile import load_profile
from mockserver.config import default_cassettes_dir
from mockserver.cassettes.cassette import discover, load
assert validation.is_valid("message", {"id": "msg_1", "type": "message", "role": "assistant",
    "model": "m", "content": [], "stop_reason": "end_turn", "stop_sequence": None,
    "usage": {"input_tokens": 1, "output_tokens": 1}})
assert load_profile().name == "deepseek-v3-anthropic"
files = discover(default_cassettes_dir())
assert files and all(load(f).interactions for f in files), files
from mockserver.server.admin.inspector import ASSETS, asset_bytes
assert all(asset_bytes(name) for name in ASSETS)  # the inspector page, from the wheel
print("ok", len(files))
"""


def _tracked_copy(into: Path) -> Path:
    """The files git tracks, copied alone: a ``build/`` left in the working tree by an
    earlier build would otherwise slip stale modules into the wheel and hide a package
    missing from ``pyproject.toml`` (it did once)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_wheel_install_works_without_the_source_tree(tmp_path: Path) -> None:
    if not (ROOT / ".git").exists():
        pytest.skip("needs the git checkout to know which files are tracked")
    source = _tracked_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("mockserver-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "mockserver/schemas/message.json",
        "mockserver/schemas/stream_event.json",
        "mockserver/schemas/cassette.json",
        "mockserver/profiles/deepseek-v3-anthropic.yaml",
        "mockserver/example_cassettes/text.yaml",
        "mockserver/py.typed",
        "mockserver/static/index.html",  # the inspector page
        "mockserver/static/app.js",
        "mockserver/static/style.css",
    ):
        assert needed in names
    # every module of the package ships: a new room must be listed in pyproject.toml
    modules = {p.relative_to(source).as_posix() for p in (source / "mockserver").rglob("*.py")}
    assert sorted(modules - names) == []
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(target)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert out.stdout.startswith("ok ")


def test_starting_imports_nothing_known_to_take_seconds() -> None:
    """Every ``mockserver`` command and server process imports the package: a dependency that
    builds a grammar or a table at import time (jsonschema's rfc3987-syntax for ``iri``
    formats: seconds) would be paid by each start.  The declared dependencies leave it out."""
    slow = ("rfc3987_syntax", "lark")
    code = (
        "import sys, mockserver.cli, mockserver.server.app, mockserver.contract.conformance; "
        f"print([m for m in {slow!r} if m in sys.modules])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
    import tomllib

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    project = tomllib.loads(pyproject.read_text())["project"]
    declared = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        declared += extra
    assert not [d for d in declared if "format-nongpl" in d or "rfc3987-syntax" in d]
