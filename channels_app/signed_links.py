"""Signed, expiring links to stored files (API.md, "Media, locations and e-mail").

A link is `{PUBLIC_BASE_URL}/files/<token>/<file name>`: the token holds the
file's storage name, its content type, its file name and when the link ends,
signed with SECRET_KEY (`django.core.signing`, its own salt). The signature is
the credential: whoever has the link may fetch the file until it ends
(MEDIA_URL_TTL after it was made, default 7 days), without logging in; a
changed or expired link is refused (403). When the files are on S3 (and
MEDIA_S3_PRESIGNED is on) the link is the store's own presigned URL instead,
which the store refuses when changed or expired in the same way.

Pure but for the settings and the storage: no database."""

import time
from dataclasses import dataclass
from urllib.parse import quote

from django.conf import settings
from django.core import signing
from django.core.files.storage import default_storage

SALT = "channels_app.media-link"


class LinkRefused(Exception):
    """The link was changed or has expired."""


@dataclass(frozen=True)
class LinkedFile:
    storage_name: str
    content_type: str
    file_name: str
    expires_at: int


def _on_s3() -> bool:
    return settings.MEDIA_STORAGE == "s3" and settings.MEDIA_S3_PRESIGNED


def signed_path(*, storage_name: str, content_type: str, file_name: str, now: float | None = None) -> str:
    """The path of our own signed link (no host), valid for MEDIA_URL_TTL."""
    expires_at = int((now or time.time()) + settings.MEDIA_URL_TTL.total_seconds())
    token = signing.dumps(
        {"p": storage_name, "t": content_type, "n": file_name, "e": expires_at}, salt=SALT, compress=True
    )
    return f"/files/{token}/{quote(file_name or 'file', safe='')}"


def file_url(*, storage_name: str, content_type: str, file_name: str) -> str:
    """An absolute URL that serves the file without credentials until it expires: the store's presigned
    URL on S3, else our signed link on PUBLIC_BASE_URL."""
    if _on_s3():
        disposition = f"inline; filename*=UTF-8''{quote(file_name or 'file', safe='')}"
        return default_storage.url(
            storage_name,
            parameters={"ResponseContentType": content_type, "ResponseContentDisposition": disposition},
            expire=int(settings.MEDIA_URL_TTL.total_seconds()),
        )
    return settings.PUBLIC_BASE_URL + signed_path(
        storage_name=storage_name, content_type=content_type, file_name=file_name
    )


def linked_file(*, token: str, file_name: str, now: float | None = None) -> LinkedFile:
    """What a link names; LinkRefused when its token or name was changed or it has expired."""
    try:
        data = signing.loads(token, salt=SALT)
    except signing.BadSignature as error:
        raise LinkRefused("The link was changed.") from error
    if not isinstance(data, dict) or data.get("n") != file_name:
        raise LinkRefused("The link was changed.")
    if (now or time.time()) > data["e"]:
        raise LinkRefused("The link has expired.")
    return LinkedFile(data["p"], data["t"], data["n"], data["e"])
