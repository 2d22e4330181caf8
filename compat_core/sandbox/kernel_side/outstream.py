"""The kernel's stdout and stderr, capped per call at the session's output limit.

The host enforces the limit whatever the kernel does (it counts what arrives and interrupts
the call); this is the courtesy on the kernel's side that keeps honest code from making the
kernel buffer and send what would only be thrown away: `print('x' * 10**9)` otherwise builds
a gigabyte-long message (and fails in the kernel's own I/O machinery, not in the user's code).
Past the limit a call's text is dropped; one character more than the limit still goes out,
so the host sees the limit passed and stops the call.
"""

import os
import threading

from ipykernel.iostream import OutStream


class LimitedOutStream(OutStream):  # type: ignore[misc]
    """ipykernel's stream, writing at most `COMPAT_OUTPUT_BYTES` + 1 characters a call."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._limit = int(os.environ.get("COMPAT_OUTPUT_BYTES", "1048576")) + 1
        self._call: object = None
        self._written = 0
        self._count_lock = threading.Lock()

    def write(self, string: str) -> int | None:
        with self._count_lock:
            call = self.parent_header.get("msg_id")
            if call != self._call:
                self._call = call
                self._written = 0
            left = self._limit - self._written
            if left <= 0:
                return len(string)
            self._written += min(len(string), left)
        if len(string) > left:
            super().write(string[:left])
            return len(string)
        return super().write(string)  # type: ignore[no-any-return]
