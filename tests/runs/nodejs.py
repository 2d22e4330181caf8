"""The Node.js scripts of `tests/node`, run against a live server.

Their packages are locked in `tests/node/package-lock.json`; `npm ci` installs them into
`tests/node/node_modules` when any is missing or differs from the lockfile, once per checkout.
A test that needs Node is skipped only when `node` or `npm` is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
INSTALL_TIMEOUT = 300.0
RUN_TIMEOUT = 60.0
# Variables of the test's environment that would steer the scripts' clients elsewhere.
STEERING_VARIABLES = ("OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "COMPAT_API_KEY")


def locked_versions() -> dict[str, str]:
    """The version the lockfile pins for each direct dependency of `tests/node`."""
    lock = json.loads((NODE_DIR / "package-lock.json").read_text(encoding="utf-8"))
    packages = lock["packages"]
    return {
        name: packages[f"node_modules/{name}"]["version"]
        for name in packages[""].get("dependencies", {})
    }


def installed_version(name: str) -> str | None:
    manifest = NODE_DIR / "node_modules" / name / "package.json"
    if not manifest.is_file():
        return None
    version = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    return version if isinstance(version, str) else None


def node_with_locked_packages() -> str:
    """The path of `node`, once every locked package is installed; skips without node or npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("the Node checks need node and npm on PATH")
    locked = locked_versions()
    if any(installed_version(name) != version for name, version in locked.items()):
        result = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT,
            check=False,
        )
        assert result.returncode == 0, f"npm ci failed:\n{result.stdout}\n{result.stderr}"
    assert {name: installed_version(name) for name in locked} == locked
    return node


@dataclass(frozen=True)
class NodeResult:
    """How a script ended and the one JSON object it printed last."""

    returncode: int
    output: dict[str, Any]
    stderr: str

    def ok(self) -> dict[str, Any]:
        """The output of a script that succeeded; fails the test with its error otherwise."""
        assert self.returncode == 0, (
            f"the script failed (exit {self.returncode}): {self.output.get('error')}\n{self.stderr}"
        )
        return self.output


def run_script(
    node: str, script: str, *args: str, env: Mapping[str, str] | None = None
) -> NodeResult:
    """Run `tests/node/<script>` with `args` and the test's environment, less the variables that
    would steer it, plus `env`."""
    environment = {k: v for k, v in os.environ.items() if k not in STEERING_VARIABLES}
    environment.update({"NO_COLOR": "1", **(env or {})})
    try:
        result = subprocess.run(
            [node, str(NODE_DIR / script), *args],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            env=environment,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        # What the script said on stderr so far tells where it waited.
        said = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        pytest.fail(f"{script} did not finish within {RUN_TIMEOUT:.0f} s; its stderr:\n{said}")
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, f"{script} printed nothing (exit {result.returncode}):\n{result.stderr}"
    output = json.loads(lines[-1])
    assert isinstance(output, dict), f"{script} printed {lines[-1]!r}"
    return NodeResult(result.returncode, output, result.stderr)
