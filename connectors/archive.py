"""Zip archives of purchase files, such as Amazon's "Request my data" download.

Amazon delivers a customer's data as a zip holding ``Retail.OrderHistory.1/
Retail.OrderHistory.1.csv`` (and ``.2``, ``.3`` ... by marketplace) among many unrelated
files. :class:`Archive` opens such a zip from a seekable stream, chooses its purchase files
and gives them one at a time as streams that inflate as they are read: nothing is extracted,
to memory or to disk, and member names are only ever labels.

A member is a purchase file when

- its name, in any folder, is Amazon's ``Retail.OrderHistory.<anything>.csv``; or
- its name ends in ``.csv`` or ``.json`` and its first bytes (:data:`HEAD_BYTES`, inflated to
  look) are in a format known: the one named, when the caller names one; otherwise whichever
  :func:`connectors.formats.detect` recognises. It is read with that format.

Amazon's files are read as ``amazon-retail`` (or the format named), whose parser says what
is wrong with one that is not; their bytes are not looked at before they are read.

An archive is refused whole (:class:`ArchiveError`, naming the limit) before anything is
inflated when its directory lists more than ``max_members`` entries, when a purchase file
is encrypted or is itself an archive (its bytes are one: archives inside archives are never
opened, and other members, a ``.zip`` or an encrypted file among them, are never read; a
candidate's first bytes that are an archive refuse it too), declares a purchase file larger
than a limit or
compressed more than ``max_ratio`` to one, or holds no purchase file. While a member is
read, the bytes actually inflated are counted against the same limits (per member, the total
of every member read, and the ratio of inflated bytes to the compressed bytes actually read
from the archive), so a directory that lies about sizes is caught after at most about
``max_ratio`` times the compressed bytes read, never after inflating the whole member. The
first bytes inflated to recognise the other files count against the import limit apart.
"""

from __future__ import annotations

import io
import lzma
import re
import struct
import zipfile
import zlib
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from connectors import formats
from connectors.lines import HEAD_BYTES, Parser, UnknownFormat

#: What reading a damaged or unusual archive raises, from zipfile and the codecs under it:
#: each is a refusal of the archive, never a crash.
_UNREADABLE: tuple[type[BaseException], ...] = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    zlib.error,
    lzma.LZMAError,
    struct.error,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    IndexError,
    KeyError,
)
#: Opening a member can also raise RuntimeError (a password is needed).
_UNREADABLE_MEMBER: tuple[type[BaseException], ...] = (*_UNREADABLE, RuntimeError)

#: The first bytes of a zip: a local file header, or the end record of an empty archive.
MAGIC = b"PK\x03\x04"
EMPTY_MAGIC = b"PK\x05\x06"
#: Amazon's order history, in any folder of the archive.
AMAZON_ORDER_HISTORY = re.compile(r"(?:^|/)Retail\.OrderHistory\.[^/]*\.csv$", re.IGNORECASE)
#: The other members whose first bytes are looked at.
CANDIDATE_SUFFIXES = (".csv", ".json")
#: What a refusal says was looked for.
LOOKED_FOR = (
    "Amazon's Retail.OrderHistory.*.csv (in any folder), or a .csv or .json file in one of "
    f"the formats known ({formats.known()})"
)
#: Inflated bytes are asked of :mod:`zipfile` at most this many at a time (it reads as many
#: compressed bytes ahead, so the ratio measured on the bytes read is off by at most this).
CHUNK = 8 * 1024
_END = struct.Struct("<4sHHHHIIH")
_END64_LOCATOR = struct.Struct("<4sIQI")
_END64 = struct.Struct("<4sQHHIIQQQQ")
_CENTRAL = struct.Struct("<4s42x")  # an entry's fixed part: signature, then 42 bytes
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_LENGTHS = struct.Struct("<HHH")  # name, extra and comment lengths, at offset 28
#: A directory larger than this is refused before it is read.
MAX_DIRECTORY_BYTES = 64 * 1024 * 1024


class ArchiveError(ValueError):
    """The archive is refused (the message says why); nothing of it is to be imported."""


@dataclass(frozen=True, slots=True)
class Limits:
    """How much an archive may make: ``max_total_bytes`` inflated in all (the import limit),
    ``max_member_bytes`` for one member (the total when not given), ``max_members`` entries,
    and at most ``max_ratio`` inflated bytes per compressed byte once a member has inflated
    ``ratio_floor`` bytes (small files may compress better; they are small)."""

    max_total_bytes: int
    max_member_bytes: int | None = None
    max_members: int = 10_000
    max_ratio: int = 100
    ratio_floor: int = 1024 * 1024

    @property
    def member_bytes(self) -> int:
        if self.max_member_bytes is None:
            return self.max_total_bytes
        return min(self.max_member_bytes, self.max_total_bytes)


@dataclass(frozen=True, slots=True)
class Member:
    """A purchase file of the archive: its name, the format it is read with, and the size its
    directory entry declares (checked against what is actually inflated)."""

    name: str
    parser: Parser
    size: int


def is_archive(head: bytes) -> bool:
    """Whether ``head`` (a source's first bytes) starts a zip archive."""
    return head.startswith(MAGIC) or head.startswith(EMPTY_MAGIC)


def purchase_files(
    stream: BinaryIO, limits: Limits, format: Parser | None = None
) -> Iterator[tuple[str, BinaryIO]]:
    """The archive's purchase files, (name, stream) one at a time (each stream is closed
    when the next is given); :class:`ArchiveError` as :class:`Archive` describes."""
    with Archive(stream, limits, format) as archive:
        for member, member_stream in archive.streams():
            yield member.name, member_stream


class _Counted:
    """The archive's stream, counting the bytes read from it (the compressed bytes)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.read_bytes = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.read_bytes += len(data)
        return data

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def seekable(self) -> bool:
        return True


class Archive:
    """A zip's purchase files (:attr:`members`), chosen when it is opened; :meth:`streams`
    gives them one at a time. ``format`` is the parser every purchase file is read with
    when the caller names one. The stream stays the caller's (it is not closed)."""

    def __init__(self, stream: BinaryIO, limits: Limits, format: Parser | None = None) -> None:
        if not stream.seekable():
            raise ArchiveError("a zip archive is read from a file (this stream cannot seek)")
        self.limits = limits
        #: Bytes inflated from the purchase files, and from the other files' first bytes.
        self.inflated = 0
        self.head_bytes = 0
        #: The first limit a read broke: every later read breaks it again.
        self.refused: ArchiveError | None = None
        self._file = _Counted(stream)
        self._start = stream.tell()
        _check_directory(stream, limits.max_members)
        stream.seek(self._start)
        try:
            self._zip = zipfile.ZipFile(self._file, "r")
        except _UNREADABLE as exc:
            raise ArchiveError(f"this zip archive cannot be read: {exc}") from None
        try:
            self.members = self._choose(format)
        except BaseException:
            self._zip.close()
            raise

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._zip.close()

    @property
    def format_name(self) -> str:
        """The format of its purchase files, or ``archive`` when they are in several."""
        names = list(dict.fromkeys(member.parser.name for member in self.members))
        return names[0] if len(names) == 1 else "archive"

    def _choose(self, format: Parser | None) -> tuple[Member, ...]:
        infos = [info for info in self._zip.infolist() if not info.is_dir()]
        if len(infos) > self.limits.max_members:
            raise _too_many(len(infos), self.limits.max_members)
        names = [info.filename for info in infos]
        if len(set(names)) != len(names):
            twice = next(name for name in names if names.count(name) > 1)
            raise ArchiveError(
                f"the archive holds two members named {twice}: it is damaged or was altered"
            )
        chosen = []
        for info in infos:
            named = AMAZON_ORDER_HISTORY.search(info.filename) is not None
            if not named and not info.filename.lower().endswith(CANDIDATE_SUFFIXES):
                continue  # other files, archives inside it among them, are never opened
            if info.flag_bits & 0x1:
                if not named:
                    continue  # cannot be recognised, and is not read
                raise ArchiveError(
                    f"the archive's purchase file {info.filename} is encrypted: export it "
                    "again without a password"
                )
            if info.file_size == 0:
                continue
            if named:  # chosen by its name: refused before a byte of it is inflated
                self._check_declared(info)
                chosen.append(
                    Member(info.filename, format or formats.parser("amazon-retail"), info.file_size)
                )
                continue
            head = self._head(info)
            if is_archive(head):
                raise _nested(info.filename)
            parser = _recognised(head, format)
            if parser is not None:
                self._check_declared(info)
                chosen.append(Member(info.filename, parser, info.file_size))
        if not chosen:
            raise ArchiveError(f"the archive holds no purchase file: looked for {LOOKED_FOR}")
        declared = sum(member.size for member in chosen)
        if declared > self.limits.max_total_bytes:
            raise ArchiveError(
                f"the archive's purchase files would inflate to {declared} bytes, above the "
                f"import limit of {self.limits.max_total_bytes} bytes"
            )
        return tuple(chosen)

    def _check_declared(self, info: zipfile.ZipInfo) -> None:
        limits = self.limits
        if info.file_size > limits.member_bytes:
            raise _member_too_large(info.filename, info.file_size, limits.member_bytes)
        if info.file_size > limits.ratio_floor and info.file_size > limits.max_ratio * max(
            info.compress_size, 1
        ):
            raise _ratio(info.filename, limits.max_ratio)

    def _head(self, info: zipfile.ZipInfo) -> bytes:
        with self._open(info, head=True) as member:
            return member.read(HEAD_BYTES)

    def _open(self, info: zipfile.ZipInfo, *, head: bool = False) -> io.BufferedReader:
        try:
            raw = self._zip.open(info)
        except _UNREADABLE_MEMBER as exc:
            raise ArchiveError(f"{info.filename} cannot be read from the archive: {exc}") from None
        return io.BufferedReader(_MemberStream(self, info, raw, head), buffer_size=8 * CHUNK)

    def streams(self) -> Generator[tuple[Member, BinaryIO], None, None]:
        """Each purchase file in turn, as a stream that inflates as it is read (closed when
        the next one is given); a limit broken while reading raises :class:`ArchiveError`."""
        infos = {info.filename: info for info in self._zip.infolist()}
        for member in self.members:
            with self._open(infos[member.name]) as stream:
                yield member, stream


class _MemberStream(io.RawIOBase):
    """One member, inflated as it is read, its bytes counted against the archive's limits."""

    def __init__(self, archive: Archive, info: zipfile.ZipInfo, raw: Any, head: bool) -> None:
        self._archive = archive
        self._info = info
        self._raw = raw
        self._head = head
        self._compressed_at = archive._file.read_bytes
        self.inflated = 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()

    def readinto(self, buffer: Any) -> int:
        archive = self._archive
        if archive.refused is not None:
            raise archive.refused
        view = memoryview(buffer).cast("B")
        try:
            data = self._raw.read(min(len(view), CHUNK))
        except _UNREADABLE as exc:
            archive.refused = ArchiveError(
                f"{self._info.filename} cannot be read from the archive: {exc}"
            )
            raise archive.refused from None
        if not self.inflated and not self._head and is_archive(data):
            archive.refused = _nested(self._info.filename)
            raise archive.refused
        self.inflated += len(data)
        if self._head:
            archive.head_bytes += len(data)
        else:
            archive.inflated += len(data)
        self._check()
        view[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        archive, limits, name = self._archive, self._archive.limits, self._info.filename
        compressed = archive._file.read_bytes - self._compressed_at
        if self.inflated > limits.member_bytes:
            archive.refused = _member_too_large(name, self.inflated, limits.member_bytes)
        elif archive.head_bytes > limits.max_total_bytes:
            archive.refused = ArchiveError(
                f"the first bytes of its other files inflate to more than the import limit "
                f"of {limits.max_total_bytes} bytes (they are read to recognise their format)"
            )
        elif archive.inflated > limits.max_total_bytes:
            archive.refused = ArchiveError(
                f"the archive's purchase files inflate to more than the import limit of "
                f"{limits.max_total_bytes} bytes"
            )
        elif self.inflated > limits.ratio_floor and self.inflated > limits.max_ratio * max(
            compressed, 1
        ):
            archive.refused = _ratio(name, limits.max_ratio)
        if archive.refused is not None:
            raise archive.refused


def _recognised(head: bytes, format: Parser | None) -> Parser | None:
    if format is not None:
        return format if format.detect(head) else None
    try:
        return formats.detect(head)
    except UnknownFormat:
        return None


def _check_directory(stream: BinaryIO, max_members: int) -> None:
    """Count the directory's entries before :mod:`zipfile` reads them all into memory."""
    start = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    tail_at = max(start, end - _END.size - 0xFFFF)
    stream.seek(tail_at)
    tail = stream.read(end - tail_at)
    at = tail.rfind(EMPTY_MAGIC)
    if at < 0 or len(tail) - at < _END.size:
        raise ArchiveError("this zip archive cannot be read: it has no directory")
    _, _, _, _, entries, size, _, _ = _END.unpack_from(tail, at)
    directory_end = tail_at + at
    if entries == 0xFFFF or size == 0xFFFFFFFF:
        locator_at = at - _END64_LOCATOR.size
        if locator_at < 0 or tail[locator_at : locator_at + 4] != b"PK\x06\x07":
            raise ArchiveError("this zip archive cannot be read: its zip64 directory is missing")
        _, _, record_at, _ = _END64_LOCATOR.unpack_from(tail, locator_at)
        stream.seek(start + record_at)
        record = stream.read(_END64.size)
        if len(record) < _END64.size or not record.startswith(b"PK\x06\x06"):
            raise ArchiveError("this zip archive cannot be read: its zip64 directory is missing")
        _, _, _, _, _, _, _, entries, size, _ = _END64.unpack(record)
        directory_end = start + record_at
    if entries > max_members:
        raise _too_many(entries, max_members)
    if size > MAX_DIRECTORY_BYTES:
        raise ArchiveError(
            f"the archive's directory is {size} bytes, above {MAX_DIRECTORY_BYTES} bytes"
        )
    # The count in the end record may lie: count the entries themselves.
    directory_at = directory_end - size
    if directory_at < start:
        raise ArchiveError("this zip archive cannot be read: its directory is truncated")
    stream.seek(directory_at)
    directory = stream.read(size)
    count = position = 0
    while position + _CENTRAL.size <= len(directory):
        if directory[position : position + 4] != _CENTRAL_SIGNATURE:
            break
        name, extra, comment = _LENGTHS.unpack_from(directory, position + 28)
        position += _CENTRAL.size + name + extra + comment
        count += 1
        if count > max_members:
            raise _too_many(count, max_members)


def _too_many(count: int, max_members: int) -> ArchiveError:
    return ArchiveError(
        f"the archive lists {count} or more members, above the limit of {max_members}"
    )


def _nested(name: str) -> ArchiveError:
    return ArchiveError(
        f"the archive holds another archive ({name}): archives inside archives are not "
        "opened; import the purchase files themselves"
    )


def _member_too_large(name: str, size: int, limit: int) -> ArchiveError:
    return ArchiveError(
        f"{name} inflates to {size} bytes or more, above the limit of {limit} bytes a member"
    )


def _ratio(name: str, ratio: int) -> ArchiveError:
    return ArchiveError(
        f"{name} inflates to more than {ratio} times its compressed size: refused as a "
        "possible zip bomb"
    )
