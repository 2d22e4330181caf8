"""The seccomp filter every sandboxed process runs under, compiled to the BPF program that
bubblewrap's `--seccomp FD` loads.

Namespaces and a read-only mount tree already keep a session from the host; this filter
removes the kernel interfaces a process inside could use to escape them or to attack the
kernel itself (the usual route out of a container): debugging other processes, mounting,
new namespaces, kernel modules, BPF, keyrings, userfaultfd, io_uring and the like. Everything
else is allowed, so Python and its libraries run unchanged. A denied call fails with EPERM
(what code already handles) rather than killing the process, so a library that probes for a
feature falls back instead of taking the kernel down with it.

libseccomp (through the `pyseccomp` binding) writes the BPF: it handles the architecture
check (a call through another ABI, say i386's `int 0x80` on x86-64, kills the process) and
the syscall numbering, which hand-written BPF gets wrong.
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile
from typing import Any, Final

from compat_core.sandbox.base import SandboxUnavailable

DENIED: Final = (
    # other processes' memory and registers
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    # the mount tree (bubblewrap built it; nothing inside may change it)
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    # new or other namespaces
    "unshare",
    "setns",
    # the kernel itself
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "lookup_dcookie",
    "syslog",
    "uselib",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "quotactl",
    "quotactl_fd",
    # kernel keyrings
    "keyctl",
    "add_key",
    "request_key",
    # files by handle bypass the mount tree
    "open_by_handle_at",
    "name_to_handle_at",
    # the host's clock
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    # I/O ports
    "iopl",
    "ioperm",
)

# clone(2) with any of these creates a namespace; clone3(2) passes its flags in memory that a
# filter cannot read, so it is refused with ENOSYS, which makes glibc fall back to clone(2).
CLONE_NAMESPACE_FLAGS: Final = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
    0x00000080,  # CLONE_NEWTIME
)
# personality(2) may only ask (0xffffffff) or set the plain Linux one (0): other personalities
# turn off address-space randomisation, among others.
PERSONALITY_QUERY: Final = 0xFFFFFFFF
TIOCSTI: Final = 0x5412


def _deny_other_personalities(seccomp: Any, rules: Any, deny: int) -> None:
    """libseccomp takes one comparison per argument in a rule, so "neither 0 nor 0xffffffff"
    is spelt bit by bit: some low bit set while bit 31 is clear (not 0), or bit 31 set while
    some low bit is clear (not 0xffffffff), or anything above 32 bits."""
    top = 1 << 31
    for bit in range(31):
        low = 1 << bit
        rules.add_rule(deny, "personality", seccomp.Arg(0, seccomp.MASKED_EQ, top | low, low))
        rules.add_rule(deny, "personality", seccomp.Arg(0, seccomp.MASKED_EQ, top | low, top))
    rules.add_rule(deny, "personality", seccomp.Arg(0, seccomp.GT, PERSONALITY_QUERY))


@functools.cache
def program() -> bytes:
    """The compiled filter (BPF for this machine's architecture)."""
    try:
        import pyseccomp as seccomp
    except (ImportError, OSError) as exc:
        raise SandboxUnavailable(
            f"libseccomp cannot be loaded ({exc}): install Debian's libseccomp2"
        ) from exc
    deny = seccomp.ERRNO(errno.EPERM)
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in DENIED:
        try:
            rules.add_rule(deny, name)
        except (RuntimeError, ValueError, OSError):
            continue  # a call this architecture or libseccomp does not know: nothing to deny
    for flag in CLONE_NAMESPACE_FLAGS:
        rules.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    _deny_other_personalities(seccomp, rules, deny)
    # Pushing characters into the terminal's input: bubblewrap's --new-session already
    # detaches the session from any terminal; this keeps it so if that ever changes.
    rules.add_rule(deny, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def pipe_with_program() -> int:
    """A readable pipe end holding the program, for `--seccomp FD` (the write end is closed,
    so bubblewrap reads to its end)."""
    code = program()
    read_end, write_end = os.pipe()
    try:
        if len(code) > 65536:
            raise SandboxUnavailable("the seccomp program is larger than a pipe's buffer")
        os.write(write_end, code)
    finally:
        os.close(write_end)
    return read_end
