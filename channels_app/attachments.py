"""Attachment types and sizes of the WhatsApp guide ("Attachments"), checked
by content, not only by file name (pure, no database).

Supported: documents PDF, DOC(X), PPT(X), XLS(X); audio AAC, AMR, OPUS;
images JPG/JPEG, PNG; video MP4; each smaller than 100 MB.
"""

import io
import zipfile
from dataclasses import dataclass
from enum import StrEnum
from typing import BinaryIO

MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024  # "must be smaller than 100 MB"
SNIFF_BYTES = 64


class AttachmentKind(StrEnum):
    DOCUMENT = "document"
    AUDIO = "audio"
    IMAGE = "image"
    VIDEO = "video"


@dataclass(frozen=True, slots=True)
class AttachmentType:
    kind: AttachmentKind
    mime_type: str
    extensions: tuple[str, ...]


PDF = AttachmentType(AttachmentKind.DOCUMENT, "application/pdf", ("pdf",))
DOC = AttachmentType(AttachmentKind.DOCUMENT, "application/msword", ("doc",))
PPT = AttachmentType(AttachmentKind.DOCUMENT, "application/vnd.ms-powerpoint", ("ppt",))
XLS = AttachmentType(AttachmentKind.DOCUMENT, "application/vnd.ms-excel", ("xls",))
DOCX = AttachmentType(
    AttachmentKind.DOCUMENT, "application/vnd.openxmlformats-officedocument.wordprocessingml.document", ("docx",)
)
PPTX = AttachmentType(
    AttachmentKind.DOCUMENT, "application/vnd.openxmlformats-officedocument.presentationml.presentation", ("pptx",)
)
XLSX = AttachmentType(
    AttachmentKind.DOCUMENT, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", ("xlsx",)
)
AAC = AttachmentType(AttachmentKind.AUDIO, "audio/aac", ("aac",))
AMR = AttachmentType(AttachmentKind.AUDIO, "audio/amr", ("amr",))
OPUS = AttachmentType(AttachmentKind.AUDIO, "audio/ogg; codecs=opus", ("opus", "ogg"))
JPEG = AttachmentType(AttachmentKind.IMAGE, "image/jpeg", ("jpg", "jpeg"))
PNG = AttachmentType(AttachmentKind.IMAGE, "image/png", ("png",))
MP4 = AttachmentType(AttachmentKind.VIDEO, "video/mp4", ("mp4",))

SUPPORTED_EXTENSIONS = ("pdf", "doc", "docx", "ppt", "pptx", "xls", "xlsx", "aac", "amr", "opus", "ogg",
                        "jpg", "jpeg", "png", "mp4")
OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # DOC, PPT and XLS are OLE compound files
OOXML_PARTS = {"word/": DOCX, "ppt/": PPTX, "xl/": XLSX}
OLE_BY_EXTENSION = {"doc": DOC, "ppt": PPT, "xls": XLS}


class AttachmentRejected(ValueError):
    """The file is not one of the supported types, or too large."""


def _extension(file_name: str) -> str:
    return file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""


def _ooxml_type(stream: BinaryIO) -> AttachmentType | None:
    try:
        names = zipfile.ZipFile(stream).namelist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    if "[Content_Types].xml" not in names:
        return None
    for prefix, attachment_type in OOXML_PARTS.items():
        if any(name.startswith(prefix) for name in names):
            return attachment_type
    return None


def _sniff(head: bytes, stream: BinaryIO, extension: str) -> AttachmentType | None:
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"#!AMR"):
        return AMR
    if head.startswith(b"OggS") and b"OpusHead" in head:
        return OPUS
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return MP4
    if head.startswith(b"ADIF") or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xF6 == 0xF0):
        return AAC  # ADIF header, or an ADTS frame sync (12 bits set, layer 0)
    if head.startswith(OLE_SIGNATURE):
        # The three legacy Office formats share one container; the name tells which.
        return OLE_BY_EXTENSION.get(extension)
    if head.startswith(b"PK\x03\x04"):
        stream.seek(0)
        return _ooxml_type(stream)
    return None


def detect_attachment_type(stream: BinaryIO, file_name: str, size: int) -> AttachmentType:
    """The supported type of a file, from its content; raise AttachmentRejected
    naming the reason when it is not supported, does not match its name, or is
    100 MB or more."""
    if size >= MAX_ATTACHMENT_BYTES:
        raise AttachmentRejected(f"The file is {size} bytes; attachments must be smaller than 100 MB.")
    if size == 0:
        raise AttachmentRejected("The file is empty.")
    extension = _extension(file_name)
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    attachment_type = _sniff(head, stream, extension)
    stream.seek(0)
    if attachment_type is None:
        raise AttachmentRejected(
            f"{file_name!r} is not a supported attachment: use PDF, DOC(X), PPT(X), XLS(X), AAC, AMR, OPUS, "
            "JPG/JPEG, PNG or MP4."
        )
    if extension not in attachment_type.extensions:
        raise AttachmentRejected(
            f"{file_name!r} holds {attachment_type.mime_type} content; its name should end in "
            f".{attachment_type.extensions[0]}."
        )
    return attachment_type


def sniff_attachment_type(stream: BinaryIO, file_name: str = "") -> AttachmentType | None:
    """The supported type the content shows, whatever the name says (None when it is none of them)."""
    stream.seek(0)
    attachment_type = _sniff(stream.read(SNIFF_BYTES), stream, _extension(file_name))
    stream.seek(0)
    return attachment_type


def detect_attachment_bytes(content: bytes, file_name: str) -> AttachmentType:
    return detect_attachment_type(io.BytesIO(content), file_name, len(content))
