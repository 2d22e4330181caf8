"""Object IDs in OpenAI's shapes (`asst_…`, `thread_…`, `file-…`).

IDs are random rather than sequential so that they reveal nothing about volume and can be
minted by any core replica without coordination; ordering comes from the store's sequence.
"""

import secrets
import string

_ALPHABET = string.ascii_letters + string.digits
_ID_LENGTH = 24


def new_id(prefix: str) -> str:
    """Return `prefix` followed by 24 random alphanumerics, as OpenAI's IDs look."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(_ID_LENGTH))


ASSISTANT = "asst_"
THREAD = "thread_"
MESSAGE = "msg_"
RUN = "run_"
STEP = "step_"
CALL = "call_"
FILE = "file-"
VECTOR_STORE = "vs_"
