"""An exclusive OS lock on an open file, taken without waiting.

Both users (a server's claim on its SQLite file, an upload's claim on its temporary file)
need a lock that the kernel drops when its process ends, however it ends: nothing stale is
ever left to clean up. POSIX: `flock` on the whole file (Linux NFS clients carry it to the
server). Windows: `msvcrt.locking` on the file's first byte.
"""

from __future__ import annotations

import os
import sys

if sys.platform == "win32":
    import msvcrt

    def try_lock(fd: int) -> bool:
        """Lock the open file `fd`; False if another open file holds the lock."""
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

else:
    import fcntl

    def try_lock(fd: int) -> bool:
        """Lock the open file `fd`; False if another open file holds the lock."""
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True
