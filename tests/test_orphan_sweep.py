"""Temporary files of interrupted uploads: a crash leaves one, the next start removes it, and
no sweep ever touches an upload still being written (by this process or another).

Uploads go over real HTTP as the SDKs send them (multipart, chunked), with the file's bytes
held back mid-way by the test, so that the core has its temporary file open.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from harness import MakeServer
from harness.processes import Process
from harness.server import ServerThread, postgres_admin_url

from compat_core.store.blobs import BlobStore

WAIT = 20.0
BOUNDARY = "sweep-test-boundary"
# Sent before the upload holds: enough that the edge has forwarded at least `FORWARDED` to the
# core (it gathers 1 MiB per chunk, and a multipart reader keeps some back).
HEAD_BYTES = 3 * 1024 * 1024
FORWARDED = 1024 * 1024
TAIL_BYTES = 1000


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    """Wait (bounded) for a condition only the file system shows."""
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _temporary_files(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    return sorted(p for p in directory.iterdir() if p.name.startswith(".") and p.suffix == ".tmp")


class HeldUpload:
    """A `POST /v1/files` whose file bytes stop after `HEAD_BYTES` until `release()`."""

    def __init__(self, base_url: str) -> None:
        self._release = threading.Event()
        self.response: httpx2.Response | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._send, args=(base_url,), daemon=True)
        self._thread.start()

    def _body(self) -> Iterator[bytes]:
        yield (
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="purpose"\r\n\r\n'
            "assistants\r\n"
            f"--{BOUNDARY}\r\n"
            'Content-Disposition: form-data; name="file"; filename="held.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        yield b"h" * HEAD_BYTES
        self._release.wait(WAIT)
        yield b"t" * TAIL_BYTES
        yield f"\r\n--{BOUNDARY}--\r\n".encode()

    def _send(self, base_url: str) -> None:
        try:
            with httpx2.Client(timeout=WAIT) as http:
                self.response = http.post(
                    f"{base_url}/files",
                    content=self._body(),
                    headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"},
                )
        except BaseException as exc:  # the test reads it
            self.error = exc

    def release(self) -> None:
        self._release.set()

    def wait(self) -> None:
        self._thread.join(WAIT)
        assert not self._thread.is_alive(), "the upload never ended"


def _files_dir(server: ServerThread) -> Path:
    if server.files_dir:
        return Path(server.files_dir)
    return Path(server.database_url.removeprefix("sqlite:///")).parent / "files"


def _sweep_from_another_process(directory: Path) -> int:
    """What a core sharing the directory would do: one sweep, in a process of its own."""
    code = (
        "import asyncio, sys; from compat_core.store.blobs import BlobStore; "
        "print(asyncio.run(BlobStore(sys.argv[1]).sweep()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(directory)],
        capture_output=True,
        text=True,
        timeout=WAIT,
        check=True,
    )
    return int(done.stdout)


def test_a_sweep_leaves_an_upload_in_progress_alone(make_server: MakeServer) -> None:
    server = make_server()
    directory = _files_dir(server)
    upload = HeldUpload(server.base_url)
    _wait_until(
        lambda: any(p.stat().st_size >= FORWARDED for p in _temporary_files(directory)),
        "the core writes the upload's temporary file",
    )
    assert _sweep_from_another_process(directory) == 0
    assert asyncio.run(BlobStore(directory).sweep()) == 0
    assert len(_temporary_files(directory)) == 1
    upload.release()
    upload.wait()
    assert upload.error is None
    assert upload.response is not None
    assert upload.response.status_code == 200
    stored = upload.response.json()
    assert stored["bytes"] == HEAD_BYTES + TAIL_BYTES
    assert (directory / stored["id"]).read_bytes() == b"h" * HEAD_BYTES + b"t" * TAIL_BYTES
    assert _temporary_files(directory) == []


def test_only_abandoned_temporary_files_are_swept(tmp_path: Path) -> None:
    directory = tmp_path / "files"
    directory.mkdir()
    abandoned = directory / ".file-abc123.k2j4h5g6.tmp"
    abandoned.write_bytes(b"half an upload")
    kept = {
        "file-abc123": b"a blob",
        ".file-abc123.tmp": b"not a name uploads use",
        "notes.tmp": b"someone else's",
    }
    for name, data in kept.items():
        (directory / name).write_bytes(data)
    assert asyncio.run(BlobStore(directory).sweep()) == 1
    assert not abandoned.exists()
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == kept
    assert asyncio.run(BlobStore(tmp_path / "never-made").sweep()) == 0


def test_a_running_core_sweeps_periodically(make_server: MakeServer) -> None:
    server = make_server(sweep_interval_seconds=0.05)
    directory = _files_dir(server)
    directory.mkdir(parents=True, exist_ok=True)
    # What a crashed core sharing the directory left: no process holds its lock.
    orphan = directory / ".file-crashed.a1b2c3d4.tmp"
    orphan.write_bytes(b"x" * 1000)
    _wait_until(lambda: not orphan.exists(), "the core sweeps the orphan away")


@pytest.mark.skipif(
    postgres_admin_url() is not None, reason="real processes on a SQLite file (the SQLite pass)"
)
def test_an_upload_cut_by_sigkill_is_swept_by_the_next_start(tmp_path: Path) -> None:
    env = _process_env(tmp_path)
    directory = tmp_path / "files"
    crashing = Process("run", env, tmp_path)
    try:
        base_url = crashing.wait_for(r"OpenAI base URL (\S+)\)")[1]
        upload = HeldUpload(base_url)
        _wait_until(
            lambda: any(p.stat().st_size >= FORWARDED for p in _temporary_files(directory)),
            "the core writes the upload's temporary file",
        )
        crashing.kill()
    finally:
        crashing.stop()
    upload.release()
    upload.wait()
    assert upload.error is not None
    left = _temporary_files(directory)
    assert len(left) == 1, "the crash left no temporary file behind"

    restarted = Process("run", env, tmp_path)
    try:
        restarted.wait_for(r"removed 1 temporary file\(s\) of interrupted uploads")
        restarted.wait_for(r"assistants-compat run: ready")
        assert _temporary_files(directory) == []
    finally:
        restarted.stop()


def _process_env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("COMPAT_", "OPENAI_"))}
    extra: dict[str, Any] = {
        "COMPAT_DATABASE_URL": f"sqlite:///{tmp_path / 'compat.db'}",
        "COMPAT_HTTP_HOST": "127.0.0.1",
        "COMPAT_HTTP_PORT": "0",
        "COMPAT_GRPC_HOST": "127.0.0.1",
        "COMPAT_GRPC_PORT": "0",
    }
    return {**base, **extra}
