"""A file source's identity is its content, not its path.

A file is fingerprinted with BLAKE2b-128 over all of its bytes (about
1 GB/s: reading the file costs more). Its source id, under which its
checkpoints, dead letters and imported arrival numbers live, is
``file:`` + the digest of its content when first read. Redis remembers, per
source, the content last read (size and digest) and where it was read, so a
file is recognized as:

- ``same``: content read before, under this or any other path: everything
  stored from it is skipped;
- ``older``: content that is the beginning of a source read before (a copy
  taken while that file was shorter): all of it is stored already;
- ``grown``: the file at a path read before, whose earlier content is still
  its beginning (lines were appended): reading resumes after what is stored;
- ``new``: anything else, a file changed in place included.

A followed file's state is remembered as it grows, so a restart resumes it
and a file recreated at its path is not mistaken for it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fractal_assets.market.ticks import FeedChunk

if TYPE_CHECKING:
    from fractal_assets.hot.store import HotStore

READ_BYTES = 1 << 20
DIGEST_BYTES = 16
REMEMBER_EVERY_S = 1.0
"""How often a followed file's growing content is remembered."""


def new_hasher() -> "hashlib._Hash":
    return hashlib.blake2b(digest_size=DIGEST_BYTES)


@dataclass(frozen=True)
class Content:
    """A file's bytes as read: size, digest, and the digest of its first ``mark`` bytes."""

    size: int
    digest: str
    mark: int = -1
    mark_digest: str = ""


def fingerprint(path: Path, mark: int = -1) -> Content:
    """Digest of the whole file and, when ``0 <= mark <= size``, of its first ``mark`` bytes."""
    hasher = new_hasher()
    size, mark_digest = 0, ""
    with open(path, "rb") as handle:
        while block := handle.read(READ_BYTES):
            if size <= mark < size + len(block):
                hasher.update(block[: mark - size])
                mark_digest = hasher.hexdigest()
                hasher.update(block[mark - size:])
            else:
                hasher.update(block)
            size += len(block)
    if mark == size:
        mark_digest = hasher.hexdigest()
    return Content(size, hasher.hexdigest(), mark, mark_digest)


def content_id(content: Content) -> str:
    """The source id a content gets when it is first read."""
    return f"file:{content.digest}"


@dataclass(frozen=True)
class Known:
    """A source's content as last read, and where."""

    source_id: str
    path: str
    size: int
    digest: str


@dataclass(frozen=True)
class Identity:
    """Which source a file is, and how its content relates to what was read before."""

    source_id: str
    content: Content
    relation: str
    """``new``, ``same``, ``older`` or ``grown`` (see the module docstring)."""
    known: Known | None = None
    """The source the content was recognized as."""

    def message(self, path: Path) -> str:
        """One line telling the user what was recognized ('' for new content)."""
        if self.known is None:
            return ""
        if self.relation == "same":
            return (f"same content as {self.known.path} (source {self.source_id}): "
                    "records stored from it before are not stored again")
        if self.relation == "older":
            return (f"the content of {path} is the beginning of {self.known.path} (source {self.known.source_id}), "
                    "read before: what it holds is not stored again")
        return (f"{path} grew since it was read ({self.known.size:,} -> {self.content.size:,} bytes): "
                "reading on after what is stored")


def identify(store: HotStore, path: Path, follow: bool = False) -> Identity:
    """The source a file is, by its content (see the module docstring)."""
    at_path = _known(store, store.client.hget(store.keys.contents_by_path(), _where(path)))
    content = fingerprint(path, at_path.size if at_path else -1)
    same = _known(store, store.client.hget(store.keys.contents_by_digest(), content.digest))
    if same is not None:
        relation = "same" if same.digest == content.digest else "older"
        if not (follow and relation == "older"):
            return Identity(same.source_id, content, relation, same)
        return _follow_anew(store, path, content, same)
    if at_path is not None and content.mark_digest == at_path.digest:
        return Identity(at_path.source_id, content, "same" if content.size == at_path.size else "grown", at_path)
    return Identity(_unused_id(store, content), content, "new")


def _follow_anew(store: HotStore, path: Path, content: Content, known: Known) -> Identity:
    """A followed file whose content so far is the beginning of a known source: a new source,
    whose records already stored under the known one are marked handled, since what is
    appended to it later may differ from what was appended to the other."""
    source_id = _unused_id(store, content)
    stored = store.source_checkpoint(known.source_id).handled
    through = min(stored, _complete_lines(path, content.size) - 2)
    if through >= 0:
        store.client.hset(store.keys.source_checkpoint(source_id), mapping={"handled": through, "rejected": through})
    return Identity(source_id, content, "older", known)


def _complete_lines(path: Path, size: int) -> int:
    """Newline-terminated lines in the first ``size`` bytes of a file (header included)."""
    count, read = 0, 0
    with open(path, "rb") as handle:
        while read < size and (block := handle.read(min(READ_BYTES, size - read))):
            count += block.count(b"\n")
            read += len(block)
    return count


def _unused_id(store: HotStore, content: Content) -> str:
    """``file:`` + the digest, or a unique id when a source (since grown) already began so."""
    source_id = content_id(content)
    if not store.client.exists(store.keys.content(source_id)):
        return source_id
    return f"{source_id}-{uuid.uuid4().hex[:8]}"


def _where(path: Path) -> str:
    return str(path.resolve())


def _known(store: HotStore, source_id: bytes | None) -> Known | None:
    if source_id is None:
        return None
    fields = {k.decode(): v.decode() for k, v in store.client.hgetall(store.keys.content(source_id.decode())).items()}
    if not fields:
        return None
    return Known(source_id.decode(), fields["path"], int(fields["bytes"]), fields["digest"])


def remember(store: HotStore, identity: Identity, path: Path) -> None:
    """Record the content read from ``path`` as its source's (never a shorter one than recorded),
    and index its digest, so copies are recognized, and its path."""
    recorded = store.client.hget(store.keys.content(identity.source_id), "bytes")
    if recorded is None or int(recorded) <= identity.content.size:
        _record(store, identity.source_id, path, identity.content.size, identity.content.digest)
    store.client.hset(store.keys.contents_by_digest(), identity.content.digest, identity.source_id)
    store.client.hset(store.keys.contents_by_path(), _where(path), identity.source_id)


def _record(store: HotStore, source_id: str, path: Path, size: int, digest: str) -> None:
    store.client.hset(store.keys.content(source_id), mapping={"path": _where(path), "bytes": size, "digest": digest})


def remembering(chunks: Iterable[FeedChunk], store: HotStore, identity: Identity, path: Path) -> Iterator[FeedChunk]:
    """Pass a followed file's chunks through, remembering its content read so far whenever the
    feed waits for more (ingest has then stored everything before), at most once a second."""
    last = 0.0
    for chunk in chunks:
        yield chunk
        if chunk.read is not None and time.monotonic() - last >= REMEMBER_EVERY_S:
            _record(store, identity.source_id, path, *chunk.read)
            last = time.monotonic()
