"""Files: `compat_core.v1.File` → OpenAI's `file` JSON, and the multipart form's fields →
the first message of an `UploadFile` stream."""

from __future__ import annotations

from typing import Final

from compat_core.v1 import common_pb2, files_pb2
from http_edge.convert.common import Json, deleted_out, enum_name, list_out
from http_edge.errors import HttpError, invalid_value, missing
from http_edge.json_io import PageParams

FILE_STATUS: Final = (None, "uploaded", "processed", "error")

ANCHOR_FIELD: Final = "expires_after[anchor]"
SECONDS_FIELD: Final = "expires_after[seconds]"
_ANCHORS: Final = ("created_at",)


def expires_after_in(anchor: str | None, seconds: str | None) -> int | None:
    """`expires_after[anchor]`/`[seconds]` form fields as the proto's seconds.

    The proto carries only the seconds, so the edge checks that the anchor is the one
    OpenAI defines; the range of the seconds is the core's to judge.
    """
    if anchor is None and seconds is None:
        return None
    if anchor is None:
        raise missing(ANCHOR_FIELD)
    if seconds is None:
        raise missing(SECONDS_FIELD)
    if anchor not in _ANCHORS:
        raise invalid_value(ANCHOR_FIELD, anchor, _ANCHORS)
    digits = seconds.strip()
    if not (digits.isascii() and digits.isdigit()) or len(digits) > 18:
        raise HttpError(
            400,
            f"Invalid '{SECONDS_FIELD}': expected an integer, but got '{seconds}' instead.",
            param=SECONDS_FIELD,
            code="invalid_type",
        )
    return int(digits)


def upload_metadata(
    filename: str, purpose: str, expires_after_seconds: int | None
) -> files_pb2.UploadFileRequest:
    metadata = files_pb2.UploadFileMetadata(filename=filename, purpose=purpose)
    if expires_after_seconds is not None:
        metadata.expires_after_seconds = expires_after_seconds
    return files_pb2.UploadFileRequest(metadata=metadata)


def list_request(page: PageParams, purpose: str) -> files_pb2.ListFilesRequest:
    request = files_pb2.ListFilesRequest(
        purpose=purpose, order=page.order, after=page.after, before=page.before
    )
    if page.limit is not None:
        request.limit = page.limit
    return request


def file_out(f: files_pb2.File) -> Json:
    out: Json = {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at,
        "filename": f.filename,
        "purpose": f.purpose,
        "status": enum_name(FILE_STATUS, f.status),
    }
    # Optional and not nullable in OpenAI's schema: present only when set.
    if f.HasField("expires_at"):
        out["expires_at"] = f.expires_at
    if f.HasField("status_details"):
        out["status_details"] = f.status_details
    return out


def list_response_out(response: files_pb2.ListFilesResponse) -> Json:
    return list_out(
        [file_out(f) for f in response.data],
        response.first_id,
        response.last_id,
        response.has_more,
    )


def deleted_response_out(status: common_pb2.DeletionStatus) -> Json:
    return deleted_out(status, "file")
