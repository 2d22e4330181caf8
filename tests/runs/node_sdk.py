"""Running the scripts of `tests/node` with the official openai Node SDK (openai 7.x, locked).

`npm ci` installs the locked dependencies into `tests/node/node_modules` when they are missing
or differ from the lockfile. Tests that need Node are skipped only when `node` or `npm` is not
installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0


def _locked_version() -> str:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    version = lock["packages"]["node_modules/openai"]["version"]
    assert isinstance(version, str)
    return version


def _installed_version() -> str | None:
    manifest = NODE_DIR / "node_modules" / "openai" / "package.json"
    if not manifest.is_file():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return version if isinstance(version, str) else None


def prepare_node() -> str:
    """The `node` executable, with the locked SDK installed; skips the test without Node."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node SDK checks need node and npm on PATH")
    locked = _locked_version()
    assert locked.startswith("7."), f"tests/node must pin openai 7.x, the lockfile has {locked}"
    if _installed_version() != locked:
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    assert _installed_version() == locked
    return node


def run_script(node: str, script: str, *args: str) -> dict[str, Any]:
    """Run `tests/node/<script>` and return the JSON object its last line prints."""
    env = {**os.environ, "OPENAI_API_KEY": "test", "NO_COLOR": "1"}
    for name in ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID"):
        env.pop(name, None)
    result = subprocess.run(
        [node, str(NODE_DIR / script), *args],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=env,
        check=False,
    )
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing (exit {result.returncode}):\n{result.stderr}"
    output = json.loads(lines[-1])
    assert isinstance(output, dict)
    assert result.returncode == 0, f"{script} failed: {output.get('error')}\n{result.stderr}"
    return output
