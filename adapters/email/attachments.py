"""Attachments of a parsed mail written under the attachment folder: a thin I/O shell.

Layout: `<folder>/<sha256 of the provider id>/<index>-<safe filename>`. The directory is
named by a hash so no Message-ID can steer the path; the file name is the sender's,
reduced to one harmless path component (no directories, no `..`, no controls, no
characters Windows refuses, bounded length), with the index in front so two files of one
name do not collide. Writing the same mail again writes the same paths (idempotent).
Files are written to a temporary name and renamed, so a crash never leaves half a file
under a name the store points to. This blocks: the transport calls it in a worker thread.
"""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from pathlib import Path

from adapters.email.mime_walk import AttachmentPart
from adapters.messaging.model import Attachment

MAX_NAME_BYTES = 120  # well under the 255 bytes of common file systems, with the index
_MAX_SUFFIX_CHARS = 16
_UNSAFE_RE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\/\ud800-\udfff]+')
_FALLBACK_NAME = "attachment"


def attachment_dir(provider_id: str) -> str:
    """The folder name (relative) that holds one mail's attachments."""
    return hashlib.sha256(provider_id.encode("utf-8", "surrogatepass")).hexdigest()


def safe_filename(name: str) -> str:
    """One harmless path component from a sender's file name (`../../x.sh` -> `x.sh`)."""
    name = unicodedata.normalize("NFC", name).replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_RE.sub("_", name)
    # Leading dots make hidden files (or `..`); trailing dots and blanks Windows drops.
    name = name.strip(" .")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        stem, dot, suffix = name.rpartition(".")
        if not dot or not stem or len(suffix) > _MAX_SUFFIX_CHARS:
            stem, suffix = name, ""
        room = MAX_NAME_BYTES - len(suffix.encode("utf-8")) - (1 if suffix else 0)
        stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore").rstrip(" .")
        name = f"{stem}.{suffix}" if suffix else stem
    return name or _FALLBACK_NAME


def keep_attachments(
    folder: Path, provider_id: str, parts: Iterable[AttachmentPart]
) -> tuple[Attachment, ...]:
    """Write the kept attachments' bytes; their Attachments with refs relative to folder.

    Dropped ones (over the size limit, unreadable) are returned with their reason and no
    ref. OSError (disk full, no permission) propagates: the mail is not stored then,
    and is fetched again later, rather than stored without its files.
    """
    root = folder.resolve()
    directory = root / attachment_dir(provider_id)
    kept: list[Attachment] = []
    for index, part in enumerate(parts, start=1):
        if part.content is None:
            kept.append(part.metadata())
            continue
        name = f"{index}-{safe_filename(part.filename)}"
        path = directory / name
        if path.parent != directory:  # safe_filename makes this impossible; stay sure
            raise ValueError(f"attachment name escapes its folder: {part.filename!r}")
        directory.mkdir(parents=True, exist_ok=True)
        partial = directory / f".{index}.partial"
        partial.write_bytes(part.content)
        os.replace(partial, path)
        ref = f"{directory.name}/{name}"
        kept.append(Attachment(part.filename, part.content_type, part.size, ref=ref))
    return tuple(kept)
