"""Object IDs in OpenAI's shapes (`asst_…`, `thread_…`, `file-…`).

IDs are random rather than sequential so that they reveal nothing about volume and can be
minted by any core replica without coordination; ordering comes from the store's sequence.
"""

import re
import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 24
# The longest ID the store's columns hold; ours are far shorter (prefix and 24 characters).
MAX_ID_LENGTH = 64
# Every ID this server mints, and every one OpenAI does, fits this shape.
_WELL_FORMED = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_ID_LENGTH}}}")


# Each random byte picks a character; 256 is not a multiple of 62, so the first eight
# characters are a little likelier than the rest: 24 characters still carry over 140 bits.
_BYTE_TO_CHAR = bytes((_ALPHABET * 5)[:256], "ascii")


def new_id(prefix: str) -> str:
    """Return `prefix` followed by 24 random alphanumerics, as OpenAI's IDs look.

    One call to the OS's random source per ID: IDs are minted on every create, and drawing
    each character separately cost more than the rest of a create's Python work.
    """
    return prefix + secrets.token_bytes(_ID_LENGTH).translate(_BYTE_TO_CHAR).decode("ascii")


def well_formed(value: str) -> bool:
    """Whether `value` could be an ID of ours: if not, it names nothing, so no store is asked.

    That keeps what a store cannot take away from it (PostgreSQL refuses a NUL in text) and
    bounds what an error message may echo.
    """
    return _WELL_FORMED.fullmatch(value) is not None


ASSISTANT = "asst_"
THREAD = "thread_"
MESSAGE = "msg_"
RUN = "run_"
STEP = "step_"
CALL = "call_"
FILE = "file-"
VECTOR_STORE = "vs_"
VECTOR_STORE_FILE_BATCH = "vsfb_"
# A fault of the server, as its log and the caller see it (see `compat_core.guard`).
ERROR = "err_"
