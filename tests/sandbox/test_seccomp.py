"""The seccomp filter: the kernel interfaces used to break out of namespaces fail with EPERM
inside a session, and ordinary ones still work."""

from __future__ import annotations

import platform

import pytest

from compat_core.sandbox import seccomp

from .conftest import OpenSession

# x86-64 numbers of the calls tried (the filter itself is built by name for any architecture).
CALLS = {
    "ptrace": (101, "0, 1, 0, 0"),  # PTRACE_PEEKTEXT of pid 1
    "mount": (165, "b'none', b'/tmp', b'tmpfs', 0, 0"),
    "unshare": (272, "0x10000000"),  # CLONE_NEWUSER
    "setns": (308, "0, 0"),
    "keyctl": (250, "0, 0, 0, 0"),
    "add_key": (248, "b'user', b'k', b'v', 1, -2"),
    "bpf": (321, "0, 0, 0"),
    "perf_event_open": (298, "0, 0, -1, -1, 0"),
    "userfaultfd": (323, "0"),
    "io_uring_setup": (425, "1, 0"),
    "kexec_load": (246, "0, 0, 0, 0"),
    "init_module": (175, "0, 0, b''"),
    "reboot": (169, "0, 0, 0, 0"),
    "pivot_root": (155, "b'/tmp', b'/tmp'"),
    "open_by_handle_at": (304, "0, 0, 0"),
    "acct": (163, "0"),
    "swapon": (167, "b'/tmp/x', 0"),
    "personality-no-aslr": (135, "0x0040000"),
    "clone-newns": (56, "0x00020000 | 17, 0, 0, 0, 0"),
}

pytestmark = pytest.mark.skipif(
    platform.machine() != "x86_64", reason="the probes use x86-64 syscall numbers"
)


def test_the_filter_compiles_to_bpf() -> None:
    program = seccomp.program()
    # BPF instructions are 8 bytes each; the filter has one test per denied call at least.
    assert len(program) % 8 == 0
    assert len(program) // 8 > len(seccomp.DENIED)


async def test_escape_routes_fail_with_eperm(open_session: OpenSession) -> None:
    session = await open_session()
    probes = "".join(
        f"    ({name!r}, {number}, ({args},)),\n" for name, (number, args) in CALLS.items()
    )
    result = await session.execute(
        "import ctypes, errno\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "libc.syscall.restype = ctypes.c_long\n"
        "for name, number, args in [\n" + probes + "]:\n"
        "    ctypes.set_errno(0)\n"
        "    args = [ctypes.c_char_p(a) if isinstance(a, bytes) else ctypes.c_long(a) "
        "for a in args]\n"
        "    result = libc.syscall(number, *args)\n"
        "    print(name, result, errno.errorcode.get(ctypes.get_errno(), '-'))\n"
        "status = dict(line.split(':\\t') for line in open('/proc/self/status').read().splitlines()"
        " if ':\\t' in line)\n"
        "print(status['Seccomp'], status['NoNewPrivs'], status['CapEff'])\n"
    )
    # Several of these would fail without the filter too, for want of a capability; others
    # (io_uring_setup: EFAULT; personality, clone3's fallback) would not. Seccomp mode 2 is
    # the filter, loaded, under no_new_privs and without a capability.
    assert result.logs.splitlines() == [f"{name} -1 EPERM" for name in CALLS] + [
        "2 1 0000000000000000"
    ]


async def test_ordinary_calls_still_work(open_session: OpenSession) -> None:
    session = await open_session()
    result = await session.execute(
        "import ctypes, os, subprocess, threading\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.syscall(135, ctypes.c_long(0xFFFFFFFF)) >= 0)\n"  # personality: a query
        "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
        "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout, end='')\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    os._exit(7)\n"
        "print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))\n"
    )
    assert result.logs == "True\nchild\n7\n"
