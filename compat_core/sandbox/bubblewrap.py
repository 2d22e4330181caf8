"""The sandbox on bubblewrap (Debian's `bubblewrap`): each session a kernel in namespaces of
its own, a read-only system, its own `/mnt/data`, resource limits and a seccomp filter.

What a session sees: `/usr` and the loader's links (`/bin`, `/lib*`), a few files of `/etc` the
dynamic loader and fontconfig read, a fresh `/proc`, a read-only `/dev`, small private `/tmp`
and `/dev/shm`, the sandbox's interpreter and libraries at `/opt/python` and `/opt/site`
(read-only), the kernel's sockets at `/run/kernel`, and `/mnt/data`: with `/tmp` and
`/dev/shm`, the only places it can write. Nothing else of the host: not its home directories,
not the server's data, not other sessions. docs/code-interpreter.md has the whole picture.

Namespaces: user, pid, network (only a loopback of its own: no route out, no DNS), ipc, uts
and cgroup. When the server runs as root, each session's bubblewrap runs as an unprivileged
host uid of its own (taken from `uids`), so the host kernel counts and limits its processes
(RLIMIT_NPROC is not enforced for root) and nothing it does has root's rights on any file.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import json
import os
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

from jupyter_client.connect import KernelConnectionInfo

from compat_core.sandbox import seccomp
from compat_core.sandbox.base import MNT_DATA, Limits, Sandbox, SandboxUnavailable, Session
from compat_core.sandbox.environment import DEFAULT_DIR, Environment
from compat_core.sandbox.kernel import INTERRUPT_GRACE, KernelSession

INSIDE_UID: Final = 1000
RUNTIME: Final = "/run/kernel"
KERNEL_SIDE: Final = Path(__file__).with_name("kernel_side")
# Each server process keeps its sessions' runtime directories (their sockets) in
# `<runtime_root>/compat-sandbox-run-<pid>`.
RUNTIME_PREFIX: Final = "compat-sandbox-run-"
# Host uids for sessions when the server is root: far above any real account's.
DEFAULT_UIDS: Final = range(1_800_000_000, 1_800_000_000 + 4096)
# The loader's links and the system's libraries; on a merged-/usr system most are symlinks.
_SYSTEM_LINKS: Final = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
_ETC: Final = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/fonts",
    "/etc/localtime",
    "/etc/mime.types",
)
_PASSWD: Final = (
    "root:x:0:0::/nonexistent:/usr/sbin/nologin\n"
    f"sandbox:x:{INSIDE_UID}:{INSIDE_UID}::/tmp:/usr/sbin/nologin\n"
)
_GROUP: Final = f"root:x:0:\nsandbox:x:{INSIDE_UID}:\n"


class HostUids:
    """The unprivileged host uids sessions run as, one per live session, also across the
    server processes of one machine (core replicas): a uid is taken by holding an exclusive
    lock on its file in `lock_dir`, which the kernel releases if the process dies."""

    def __init__(self, uids: Sequence[int], lock_dir: Path) -> None:
        self._uids = list(uids)
        self._lock_dir = lock_dir
        self._held: dict[int, int] = {}
        self._lock = threading.Lock()

    def _directory(self) -> Path:
        self._lock_dir.mkdir(mode=0o700, exist_ok=True)
        info = self._lock_dir.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise SandboxUnavailable(f"{self._lock_dir} is not a directory of this server's uid")
        return self._lock_dir

    def take(self) -> int:
        with self._lock:
            directory = self._directory()
            for uid in self._uids:
                if uid in self._held:
                    continue
                fd = os.open(directory / str(uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    continue
                self._held[uid] = fd
                return uid
        raise SandboxUnavailable(
            f"all {len(self._uids)} sandbox uids are in use on this machine (raise the range)"
        )

    def give_back(self, uid: int) -> None:
        with self._lock:
            fd = self._held.pop(uid, None)
            if fd is not None:
                os.close(fd)


def _system_mounts() -> Iterator[str]:
    yield from ("--ro-bind", "/usr", "/usr")
    for path in _SYSTEM_LINKS:
        if os.path.islink(path):
            yield from ("--symlink", os.readlink(path), path)
        elif os.path.isdir(path):
            yield from ("--ro-bind", path, path)
    for path in _ETC:
        yield from ("--ro-bind-try", path, path)


def bwrap_args(
    environment: Environment,
    data_dir: Path,
    runtime_dir: Path,
    *,
    seccomp_fd: int,
    passwd_fd: int,
    group_fd: int,
    tmp_bytes: int,
) -> list[str]:
    """bubblewrap's options for one session (the command follows them)."""
    env = {
        "HOME": "/tmp",
        "PATH": "/opt/python/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LD_LIBRARY_PATH": "/opt/python/lib",
        "PYTHONPATH": "/opt/site:/opt/compat",
        "PYTHONDONTWRITEBYTECODE": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "IPYTHONDIR": "/tmp/ipython",
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter",
        "JUPYTER_PLATFORM_DIRS": "1",
        # One thread per numerical library: each thread reserves address space, which the
        # session's memory limit counts, and a session has its share of the cores anyway.
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    args = [
        "--unshare-user",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--disable-userns",
        "--uid",
        str(INSIDE_UID),
        "--gid",
        str(INSIDE_UID),
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *_system_mounts(),
        "--ro-bind-data",
        str(passwd_fd),
        "/etc/passwd",
        "--ro-bind-data",
        str(group_fd),
        "/etc/group",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        # bubblewrap's /dev is a tmpfs of no size limit, memory that no limit of the
        # session's processes counts: read-only, but for a bounded /dev/shm (POSIX shared
        # memory, multiprocessing's semaphores).
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/dev/shm",
        "--remount-ro",
        "/dev",
        "--size",
        str(tmp_bytes),
        "--tmpfs",
        "/tmp",
        "--ro-bind",
        str(environment.python_home),
        "/opt/python",
        "--ro-bind",
        str(environment.site),
        "/opt/site",
        "--ro-bind",
        str(KERNEL_SIDE),
        "/opt/compat/kernel_side",
        "--bind",
        str(data_dir),
        MNT_DATA,
        "--bind",
        str(runtime_dir),
        RUNTIME,
        "--remount-ro",
        "/",
        "--chdir",
        MNT_DATA,
        "--seccomp",
        str(seccomp_fd),
    ]
    for name, value in env.items():
        args += ["--setenv", name, value]
    return args


def _data_pipe(data: str) -> int:
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, data.encode())
    finally:
        os.close(write_end)
    return read_end


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _closed_to_others(data_dir: Path) -> Path | None:
    """The first directory from / down to `data_dir`'s parent that other uids cannot enter."""
    parent = data_dir.resolve().parent
    for path in [*reversed(parent.parents), parent]:
        if not path.stat().st_mode & stat.S_IXOTH:
            return path
    return None


def _chown_tree(root: Path, uid: int) -> None:
    os.chown(root, uid, uid)
    for directory, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            os.chown(os.path.join(directory, name), uid, uid, follow_symlinks=False)


class BubblewrapSandbox(Sandbox):
    """Sessions in bubblewrap sandboxes, from the environment at `environment` (built by
    `make sandbox-env`)."""

    def __init__(
        self,
        environment: Path = DEFAULT_DIR,
        *,
        bwrap: str = "bwrap",
        runtime_root: Path | None = None,
        uids: Sequence[int] = DEFAULT_UIDS,
        tmp_bytes: int = 64 * 1024**2,
        start_seconds: float = 60.0,
        interrupt_grace: float = INTERRUPT_GRACE,
    ) -> None:
        self.environment = Environment(environment)
        self.bwrap = bwrap
        # Unix socket paths are limited to 107 bytes: keep this short (/tmp by default).
        self.runtime_root = runtime_root or Path(tempfile.gettempdir())
        self.as_root = os.geteuid() == 0
        self._uids = HostUids(uids, self.runtime_root / "compat-sandbox-uids")
        self.tmp_bytes = tmp_bytes
        self.start_seconds = start_seconds
        self.interrupt_grace = interrupt_grace

    def _runtime_parent(self) -> Path:
        """This process's directory for its sessions' runtime directories. A server that
        died without closing its sessions (their sandboxes died with it) left its directory:
        the first session of a later one removes those of processes that no longer run."""
        parent = self.runtime_root / f"{RUNTIME_PREFIX}{os.getpid()}"
        if not parent.is_dir():
            for left in self.runtime_root.glob(f"{RUNTIME_PREFIX}*"):
                pid = left.name.removeprefix(RUNTIME_PREFIX)
                if pid.isdigit() and not _running(int(pid)):
                    shutil.rmtree(left, ignore_errors=True)
            parent.mkdir(mode=0o711, exist_ok=True)
        return parent

    def _bwrap_path(self) -> str:
        found = shutil.which(self.bwrap)
        if found is None:
            raise SandboxUnavailable(
                f"bubblewrap ({self.bwrap}) is not installed: install Debian's `bubblewrap` "
                "(apt-get install bubblewrap, or `make sandbox-env` as root)"
            )
        return found

    def _as_user(self, uid: int | None) -> list[str]:
        """The command prefix that runs what follows as `uid` (none: as the server's).

        util-linux's setpriv (essential on Debian) rather than `subprocess`'s `user=`: the
        server's event loop (uvloop) does not take that argument, and a Python function
        between fork and exec (`preexec_fn`) is unsafe in a threaded server."""
        if uid is None:
            return []
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            raise SandboxUnavailable(
                "setpriv is not installed (Debian's util-linux): as root, each session runs "
                "as an unprivileged uid of its own, which it switches to"
            )
        return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]

    def check(self) -> None:
        self._check_once()

    @functools.cache  # noqa: B019 (one sandbox per server; the check is a process start)
    def _check_once(self) -> None:
        """A trial sandbox, so a missing piece shows at start-up and not in a user's run."""
        bwrap = self._bwrap_path()
        interpreter = self.environment.interpreter
        seccomp.program()
        with tempfile.TemporaryDirectory(dir=self.runtime_root) as scratch:
            data_dir = Path(scratch) / "data"
            runtime_dir = Path(scratch) / "run"
            data_dir.mkdir()
            runtime_dir.mkdir()
            uid = self._uids.take() if self.as_root else None
            fds = self._fds()
            try:
                if uid is not None:
                    _chown_tree(Path(scratch), uid)
                args = bwrap_args(
                    self.environment, data_dir, runtime_dir, tmp_bytes=self.tmp_bytes, **fds
                )
                trial = subprocess.run(
                    [
                        *self._as_user(uid),
                        bwrap,
                        *args,
                        "--",
                        f"/opt/python/bin/{interpreter}",
                        "-c",
                        _TRIAL,
                    ],
                    capture_output=True,
                    text=True,
                    timeout=self.start_seconds,
                    pass_fds=tuple(fds.values()),
                    check=False,
                )
            finally:
                for fd in fds.values():
                    os.close(fd)
                if uid is not None:
                    self._uids.give_back(uid)
        if trial.returncode != 0 or trial.stdout.strip() != "ok":
            raise SandboxUnavailable(_diagnose(trial.stderr or trial.stdout))

    def _fds(self) -> dict[str, int]:
        return {
            "seccomp_fd": seccomp.pipe_with_program(),
            "passwd_fd": _data_pipe(_PASSWD),
            "group_fd": _data_pipe(_GROUP),
        }

    async def open(self, data_dir: Path, limits: Limits) -> Session:
        bwrap = self._bwrap_path()
        interpreter = self.environment.interpreter
        uid = self._uids.take() if self.as_root else None
        if uid is not None and (blocked := _closed_to_others(data_dir)):
            self._uids.give_back(uid)
            raise SandboxUnavailable(
                f"sessions run as unprivileged uids, which cannot pass through {blocked}: keep "
                "the sessions' data directories where any uid may (chmod o+x on each parent)"
            )
        released = False

        def release() -> None:
            nonlocal released
            if uid is not None and not released:
                released = True
                self._uids.give_back(uid)

        runtime_dir = Path(tempfile.mkdtemp(prefix="sbx-", dir=self._runtime_parent()))
        try:
            if uid is not None:
                _chown_tree(data_dir, uid)
                os.chown(runtime_dir, uid, uid)
            key = secrets.token_hex(32)
            connection = connection_info(key, RUNTIME + "/k")
            kernel_file = runtime_dir / "kernel.json"
            kernel_file.write_text(json.dumps(connection))
            if uid is not None:
                os.chown(kernel_file, uid, uid)
            kernel_file.chmod(0o400)
            fds = self._fds()
            try:
                args = bwrap_args(
                    self.environment, data_dir, runtime_dir, tmp_bytes=self.tmp_bytes, **fds
                )
                process = await asyncio.create_subprocess_exec(
                    *self._as_user(uid),
                    bwrap,
                    *args,
                    "--",
                    f"/opt/python/bin/{interpreter}",
                    "/opt/compat/kernel_side/launch.py",
                    str(limits.memory_bytes),
                    str(limits.processes),
                    str(limits.file_bytes),
                    str(limits.output_bytes),
                    f"{RUNTIME}/kernel.json",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                    pass_fds=tuple(fds.values()),
                    start_new_session=True,
                )
            finally:
                for fd in fds.values():
                    os.close(fd)
        except BaseException:
            shutil.rmtree(runtime_dir, ignore_errors=True)
            release()
            raise
        session = KernelSession(
            data_dir=data_dir,
            limits=limits,
            process=process,
            connection=connection_info(key, str(runtime_dir / "k")),
            runtime_dir=runtime_dir,
            on_closed=release,
            interrupt_grace=self.interrupt_grace,
        )
        try:
            await session.start(self.start_seconds)
            if uid is not None:
                # The kernel's sockets are made: from now on the session may neither replace
                # them nor fill the host's disk through this directory.
                os.chown(runtime_dir, 0, 0)
                os.chmod(runtime_dir, 0o755)
        except BaseException as exc:
            await session.close()
            if isinstance(exc, RuntimeError):
                raise SandboxUnavailable(f"the sandbox's kernel did not start: {exc}") from exc
            raise
        return session


_TRIAL: Final = "import ipykernel, zmq; print('ok')"


def connection_info(key: str, ip: str) -> KernelConnectionInfo:
    """The kernel's sockets: unix sockets named `ip` + `-` + port, in the runtime directory."""
    return {
        "transport": "ipc",
        "ip": ip,
        "shell_port": 1,
        "iopub_port": 2,
        "stdin_port": 3,
        "control_port": 4,
        "hb_port": 5,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "",
    }


def _diagnose(output: str) -> str:
    """bubblewrap's error, with the fix for the usual cause."""
    text = output.strip().splitlines()[-1] if output.strip() else "no output"
    if "namespace" in text.lower() or "Operation not permitted" in text:
        return (
            f"bubblewrap cannot create the sandbox ({text}): user namespaces are off or "
            "forbidden here. On the host: sysctl kernel.unprivileged_userns_clone=1 and "
            "user.max_user_namespaces > 0; in a container, allow unshare/clone of user "
            "namespaces (for Docker: a seccomp profile that permits them, or --privileged)"
        )
    return f"the sandbox does not start: {text}"
