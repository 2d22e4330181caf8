"""A session: one Jupyter kernel inside one bubblewrap sandbox, driven from the host over
jupyter_client's asynchronous client.

The kernel speaks ZeroMQ over unix sockets (the `ipc` transport) in a runtime directory that
both sides see: the sandbox has a network namespace of its own, so TCP to the host cannot work
(which is the point). Everything the kernel says is untrusted: each message the host accepts is
capped in size, output past the session's limit stops the call, and a kernel that does not
answer an interrupt in time is killed with its whole sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import enum
import os
import queue
import re
import shutil
import socket
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import zmq
import zmq.asyncio
from jupyter_client.asynchronous.client import AsyncKernelClient
from jupyter_client.connect import KernelConnectionInfo

from compat_core.sandbox.base import Execution, Limits, Session

# How long a kernel has to stop after an interrupt (time or output limit) before the session
# is killed instead (the default of `BubblewrapSandbox(interrupt_grace=...)`).
INTERRUPT_GRACE: Final = 3.0
# The most image bytes one call returns (images are not text output, but not free either).
IMAGE_BYTES_PER_CALL: Final = 32 * 1024**2
# How often a call waiting for output also checks that the sandbox still runs.
POLL_SECONDS: Final = 0.2
STDERR_TAIL: Final = 4096
PNG_SIGNATURE: Final = b"\x89PNG\r\n\x1a\n"
_ANSI: Final = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text: str) -> str:
    """Tracebacks come coloured for a terminal; the model and the user read plain text."""
    return _ANSI.sub("", text)


def message_cap(limits: Limits) -> int:
    """The largest message the host accepts from a kernel: one full output budget, one call's
    images (base64: 4/3 of their size), and room for the protocol. A bigger one drops the
    connection (ZeroMQ's MAXMSGSIZE) before the host allocates it."""
    return limits.output_bytes * 2 + IMAGE_BYTES_PER_CALL * 4 // 3 + 1024**2


class _Collected:
    """One call's outputs as they arrive, within the output budget."""

    def __init__(self, limits: Limits) -> None:
        self.parts: list[str] = []
        self.images: list[bytes] = []
        self.error = False
        self._left = limits.output_bytes
        self._image_left = IMAGE_BYTES_PER_CALL
        self.over = False

    def text(self, text: str) -> None:
        if self.over or not text:
            return
        data = text.encode()
        if len(data) > self._left:
            self.parts.append(data[: self._left].decode(errors="ignore"))
            self._left = 0
            self.over = True
            return
        self._left -= len(data)
        self.parts.append(text)

    def image(self, encoded: str) -> None:
        try:
            png = base64.b64decode(encoded, validate=False)
        except (binascii.Error, ValueError):
            return
        if not png.startswith(PNG_SIGNATURE):
            self.text("[an image was left out: it is not a PNG]\n")
            return
        if png in self.images:
            # A figure that is the cell's value is also flushed by the inline backend at the
            # cell's end: one picture, shown once.
            return
        if len(png) > self._image_left:
            self.text("[an image was left out: the call's images passed their size limit]\n")
            return
        self._image_left -= len(png)
        self.images.append(png)

    def take(self, message: dict[str, Any]) -> None:
        kind = message["msg_type"]
        content = message["content"]
        if kind == "stream":
            self.text(str(content.get("text", "")))
        elif kind in ("execute_result", "display_data"):
            data = content.get("data") or {}
            png = data.get("image/png")
            if isinstance(png, str):
                self.image(png)
            elif "text/plain" in data:
                self.text(str(data["text/plain"]) + "\n")
        elif kind == "error":
            self.error = True
            lines = content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"]
            self.text(strip_ansi("\n".join(str(line) for line in lines)) + "\n")

    def execution(self, stopped: str | None = None, lost_state: bool = False) -> Execution:
        logs = "".join(self.parts)
        if stopped is not None:
            logs = (logs if not logs or logs.endswith("\n") else logs + "\n") + stopped + "\n"
        return Execution(
            logs=logs,
            images=self.images,
            error=self.error,
            stopped=stopped,
            lost_state=lost_state,
        )


class _End(enum.Enum):
    """How waiting for a call's end ended."""

    IDLE = "the call finished"
    LIMIT = "its time or output limit passed"
    DIED = "the sandbox exited"
    DROPPED = "a message over the size cap dropped the connection"


class KernelSession(Session):
    """A kernel started in its sandbox (by `BubblewrapSandbox.open`), connected by `start`.

    `connection` is the kernel's connection file as the host sees it: unix sockets named
    `ip` + `-` + port in `runtime_dir`, a directory the sandbox can write to.
    """

    def __init__(
        self,
        *,
        data_dir: Path,
        limits: Limits,
        process: asyncio.subprocess.Process,
        connection: KernelConnectionInfo,
        runtime_dir: Path,
        on_closed: Callable[[], None],
        interrupt_grace: float = INTERRUPT_GRACE,
    ) -> None:
        self.data_dir = data_dir
        self.limits = limits
        self.process = process
        self._connection = connection
        self._context = zmq.asyncio.Context()
        # No message bigger than this is read into the server's memory.
        self._context.setsockopt(zmq.MAXMSGSIZE, message_cap(limits))
        # Connected once, never again: a socket file in the runtime directory is the
        # sandbox's to replace, and a reconnection would follow whatever it put there (a
        # symbolic link to one of the host's sockets, say).
        self._context.setsockopt(zmq.RECONNECT_IVL, -1)
        self._client = AsyncKernelClient(context=self._context)
        self._client.load_connection_info(connection)
        self._monitor: zmq.asyncio.Socket | None = None
        self._runtime_dir = runtime_dir
        self._on_closed = on_closed
        self._interrupt_grace = interrupt_grace
        self._closed = False
        self._closing = False
        self._one_call = asyncio.Lock()
        # Set while no call runs.
        self._idle = asyncio.Event()
        self._idle.set()
        self._stderr_tail = bytearray()
        self._stderr_reader = asyncio.create_task(self._keep_stderr_tail())

    async def _keep_stderr_tail(self) -> None:
        """The last few KiB of what bubblewrap and the kernel wrote to stderr (unbounded
        otherwise), for the error when a session does not start."""
        stream = self.process.stderr
        if stream is None:
            return
        while chunk := await stream.read(65536):
            self._stderr_tail += chunk
            del self._stderr_tail[:-STDERR_TAIL]

    @property
    def stderr_tail(self) -> str:
        return self._stderr_tail.decode(errors="replace").strip()

    @property
    def alive(self) -> bool:
        return not self._closed and self.process.returncode is None

    def _sockets_listening(self) -> bool:
        """Whether the kernel listens on the sockets the host connects to, and they are
        sockets (not links: no code but the kernel's own has run in the sandbox yet). The
        host connects only once (no reconnection), so only to a socket that listens."""
        ip = self._connection["ip"]
        for port in ("shell_port", "iopub_port", "control_port"):
            path = f"{ip}-{self._connection[port]}"
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:
                return False
            if not stat.S_ISSOCK(mode):
                raise RuntimeError(f"the kernel's {port} is not a socket")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                try:
                    probe.connect(path)
                except (ConnectionRefusedError, FileNotFoundError, TimeoutError):
                    return False
        return True

    async def _check_running(self) -> None:
        if self.process.returncode is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._stderr_reader), 1.0)
            raise RuntimeError(
                f"the kernel exited with {self.process.returncode}: {self.stderr_tail}"
            )

    async def start(self, seconds: float) -> None:
        """Connect once the kernel's sockets exist, and return when it answers on its shell
        and iopub channels; `RuntimeError` when it dies or does not answer in `seconds`."""
        deadline = time.monotonic() + seconds
        while not self._sockets_listening():
            await self._check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel did not start within {seconds:.0f} s")
            await asyncio.sleep(0.01)
        self._client.start_channels(shell=True, iopub=True, stdin=False, hb=False, control=True)
        iopub = self._client.iopub_channel.socket
        self._monitor = iopub.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        while True:
            await self._check_running()
            if time.monotonic() > deadline:
                raise RuntimeError(f"the kernel did not answer within {seconds:.0f} s")
            # Asked again until one is answered: the first may come before the kernel
            # listens. Any answer will do (on a busy machine the reply to an earlier request
            # comes after the next is sent).
            self._client.kernel_info()
            try:
                reply = await self._client.get_shell_msg(timeout=1.0)
            except queue.Empty:
                continue
            if reply["msg_type"] != "kernel_info_reply":
                continue
            # The reply came on shell; iopub (a subscription) may still be connecting, and
            # output sent before it is would be lost.
            with contextlib.suppress(queue.Empty):
                await self._client.get_iopub_msg(timeout=POLL_SECONDS)
                while True:
                    await self._client.get_iopub_msg(timeout=0.01)
            return

    async def execute(self, code: str) -> Execution:
        async with self._one_call:
            if not self.alive:
                return _Collected(self.limits).execution(
                    stopped="[the session had ended; its state is gone]", lost_state=True
                )
            self._idle.clear()
            try:
                return await self._run(code)
            except BaseException:
                await self._shut_down()
                raise
            finally:
                self._idle.set()

    async def _run(self, code: str) -> Execution:
        collected = _Collected(self.limits)
        await self._iopub_dropped()  # what an earlier call's stray output did is past
        msg_id = self._client.execute(code, store_history=True, allow_stdin=False)
        deadline = time.monotonic() + self.limits.call_seconds
        end = await self._until_idle(msg_id, collected, deadline)
        if end is _End.IDLE:
            return collected.execution()
        if end is _End.DIED:
            return await self._died(collected)
        if end is _End.DROPPED:
            await self._shut_down()
            return collected.execution(
                stopped="[stopped: the call sent more output in one piece than the session may "
                f"({message_cap(self.limits)} bytes); the session was ended, its state is lost]",
                lost_state=True,
            )
        if collected.over:
            reason = f"[stopped: the output passed the limit of {self.limits.output_bytes} bytes]"
        else:
            reason = f"[stopped: the call ran past its {self.limits.call_seconds:g} s limit]"
        return await self._interrupt(msg_id, collected, reason)

    async def _until_idle(self, msg_id: str, collected: _Collected | None, deadline: float) -> _End:
        """Read the call's messages until it ends, one way or another. Output goes to
        `collected` (None: dropped)."""
        while collected is None or not collected.over:
            left = deadline - time.monotonic()
            if left <= 0:
                return _End.LIMIT
            try:
                message = await self._client.get_iopub_msg(timeout=min(left, POLL_SECONDS))
            except queue.Empty:
                if self.process.returncode is not None:
                    return _End.DIED
                if await self._iopub_dropped():
                    return _End.DROPPED
                continue
            try:
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                if message["msg_type"] == "status":
                    if message["content"].get("execution_state") == "idle":
                        return _End.IDLE
                    continue
                if collected is not None:
                    collected.take(message)
            except (KeyError, TypeError, AttributeError, ValueError):
                # The kernel holds the signing key: code in it can send anything, well
                # signed. What is not a message of the protocol's shape is dropped.
                continue
        return _End.LIMIT

    async def _iopub_dropped(self) -> bool:
        """Whether ZeroMQ dropped the iopub connection since the last look: what it does with
        a message over the size cap (the kernel's output is lost with it)."""
        dropped = False
        while self._monitor is not None and await self._monitor.poll(0):
            await self._monitor.recv_multipart()
            dropped = True
        return dropped

    async def _interrupt(self, msg_id: str, collected: _Collected, reason: str) -> Execution:
        """Interrupt the call (as Jupyter's stop button does); kill the session if it does not
        stop within the grace period."""
        request = self._client.session.msg("interrupt_request", {})
        self._client.control_channel.send(request)
        end = await self._until_idle(msg_id, None, time.monotonic() + self._interrupt_grace)
        if end is _End.IDLE:
            return collected.execution(stopped=reason)
        await self._shut_down()
        return collected.execution(
            stopped=reason[:-1] + "; the session did not stop and was ended, its state is lost]",
            lost_state=True,
        )

    async def _died(self, collected: _Collected) -> Execution:
        code = self.process.returncode
        await self._shut_down()
        if self._closing:
            stopped = "[stopped: the session was ended while the call ran; its state is lost]"
        else:
            stopped = (
                f"[stopped: the session ended unexpectedly (exit status {code}), "
                "most likely out of memory; its state is lost]"
            )
        return collected.execution(stopped=stopped, lost_state=True)

    async def close(self) -> None:
        self._closing = True
        if not self._idle.is_set():
            # A call is running: kill the sandbox and let the call see it die, report it and
            # clean up (tearing its sockets away under it would look like a cancellation).
            self._kill()
            await self._idle.wait()
        await self._shut_down()

    def _kill(self) -> None:
        # bubblewrap's own process: its death takes the sandbox's init with it
        # (--die-with-parent), and with init every process of the sandbox's pid namespace.
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    async def _shut_down(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Sockets first, while the kernel still answers: ZeroMQ's context takes a second
            # to end after a peer died under a connection that may not reconnect.
            if self._monitor is not None:
                self._client.iopub_channel.socket.disable_monitor()
                self._monitor.close(linger=0)
            self._client.stop_channels()
            self._kill()
            await self.process.wait()
        finally:
            self._stderr_reader.cancel()
            # Off the event loop: it blocks for that second when the kernel had died first.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.to_thread(self._context.term), 5.0)
            shutil.rmtree(self._runtime_dir, ignore_errors=True)
            self._on_closed()
