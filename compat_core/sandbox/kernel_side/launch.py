"""The first program inside the sandbox: it lowers its own resource limits, then becomes the
kernel (with its output capped per call, `outstream.py`).

The limits are set here, inside the new user namespace, rather than on bubblewrap before it
starts: the kernel checks RLIMIT_NPROC against every user namespace level up to the host's,
and a namespace remembers its creator's limit for the level above. Set before bubblewrap, a
session's process limit would also cap every process of the server's own uid on the host; set
here, it caps the session's uid inside its own namespace (and, when the server is root, that
uid is the session's own on the host as well). A process can only lower its limits, so
nothing the session's code does later can raise them.

argv: address_space_bytes processes file_bytes output_bytes connection_file
"""

import os
import resource
import signal
import sys


def main() -> None:
    address_space, processes, file_bytes, output_bytes = (int(v) for v in sys.argv[1:5])
    connection_file = sys.argv[5]
    for limit, value in (
        (resource.RLIMIT_AS, address_space),
        (resource.RLIMIT_NPROC, processes),
        (resource.RLIMIT_FSIZE, file_bytes),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))
    # Past RLIMIT_FSIZE a write fails with EFBIG instead of the signal killing the kernel.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    os.environ["COMPAT_OUTPUT_BYTES"] = str(output_bytes)
    os.execv(
        sys.executable,
        [
            sys.executable,
            "-m",
            "ipykernel_launcher",
            "-f",
            connection_file,
            "--HistoryManager.enabled=False",
            "--Application.log_level=WARN",
            "--IPKernelApp.outstream_class=kernel_side.outstream.LimitedOutStream",
        ],
    )


if __name__ == "__main__":
    main()
