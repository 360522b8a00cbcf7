"""Zip archives of purchase files: the members chosen, streamed one at a time, and every
archive that could exhaust memory or time refused before (or while) it is inflated."""

from __future__ import annotations

import io
import struct
import zipfile
from pathlib import Path
from typing import Any

import pytest

from connectors import formats
from connectors.archive import (
    Archive,
    ArchiveError,
    Limits,
    is_archive,
    purchase_files,
)
from connectors.lines import PurchaseLine

FIXTURES = Path(__file__).parent / "fixtures"
AMAZON = (FIXTURES / "amazon" / "Retail.OrderHistory.1.csv").read_bytes()
SHOPIFY = (FIXTURES / "shopify" / "orders_export.csv").read_bytes()
GOOGLE = (FIXTURES / "google" / "order_usd.json").read_bytes()
UNRELATED_CSV = b'"Date","Title","Device"\r\n"2024-01-01","A Kindle book","Kindle"\r\n'
LIMITS = Limits(max_total_bytes=200 * 1024 * 1024)
MB = 1024 * 1024


def make_zip(members: dict[str, bytes], *, method: int = zipfile.ZIP_DEFLATED) -> io.BytesIO:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as archive:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = method
            archive.writestr(info, data)
    buffer.seek(0)
    return buffer


def flag_encrypted(stream: io.BytesIO, name: str) -> io.BytesIO:
    """The archive with ``name`` flagged encrypted (general purpose bit 0) in both headers."""
    data = bytearray(stream.getvalue())
    encoded = name.encode()
    local = data.find(b"PK\x03\x04")
    while data[local + 30 : local + 30 + len(encoded)] != encoded:
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while data[central + 46 : central + 46 + len(encoded)] != encoded:
        central = data.find(b"PK\x01\x02", central + 4)
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    return io.BytesIO(bytes(data))


def amazon_export() -> io.BytesIO:
    """The shape of Amazon's "Request my data" zip: order histories among other files."""
    return make_zip(
        {
            "Retail.OrderHistory.1/Retail.OrderHistory.1.csv": AMAZON,
            "Digital-Ordering.1/Digital Items.csv": UNRELATED_CSV,
            "Retail.OrderHistory.2/Retail.OrderHistory.2.csv": AMAZON.replace(b"111-", b"222-"),
            "Kindle.Devices/README.txt": b"About your devices\n",
            "Retail.CustomerReturns.1/": b"",
            "Other Retailer/orders_export.csv": SHOPIFY,
            "Settings/preferences.json": b'{"language": "en"}',
        }
    )


class CountingStream(io.BytesIO):
    """A seekable stream that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, n: int | None = -1) -> bytes:
        data = super().read(n)
        self.read_bytes += len(data)
        return data


def read_all(archive: Archive) -> int:
    """Read every purchase file of ``archive`` to its end, 64 KiB at a time."""
    total = 0
    for _, stream in archive.streams():
        while chunk := stream.read(64 * 1024):
            total += len(chunk)
    return total


# -- recognising and choosing ------------------------------------------------------------------


def test_a_zip_is_recognised_by_its_first_bytes() -> None:
    assert is_archive(amazon_export().read(64))
    assert is_archive(make_zip({}).read())
    assert not is_archive(AMAZON[:64])
    assert not is_archive(b"")


def test_the_purchase_files_are_chosen_by_name_and_by_their_first_bytes() -> None:
    with Archive(amazon_export(), LIMITS) as archive:
        chosen = [(m.name, m.parser.name) for m in archive.members]
        assert archive.format_name == "archive"
    assert chosen == [
        ("Retail.OrderHistory.1/Retail.OrderHistory.1.csv", "amazon-retail"),
        ("Retail.OrderHistory.2/Retail.OrderHistory.2.csv", "amazon-retail"),
        ("Other Retailer/orders_export.csv", "shopify"),
    ]


def test_members_are_streamed_one_at_a_time_and_parse() -> None:
    seen: list[tuple[str, bytes]] = []
    previous: Any = None
    for name, stream in purchase_files(amazon_export(), LIMITS):
        if previous is not None:
            assert previous.closed  # the one before is closed when the next is given
        seen.append((name, stream.read()))
        previous = stream
    assert [name for name, _ in seen] == [
        "Retail.OrderHistory.1/Retail.OrderHistory.1.csv",
        "Retail.OrderHistory.2/Retail.OrderHistory.2.csv",
        "Other Retailer/orders_export.csv",
    ]
    assert seen[0][1] == AMAZON
    assert seen[2][1] == SHOPIFY
    with Archive(amazon_export(), LIMITS) as archive:
        for member, stream in archive.streams():
            lines = list(member.parser.parse(stream, member.name))
            assert lines
            assert all(isinstance(r, PurchaseLine) for r in lines)
            assert {r.source for r in lines if isinstance(r, PurchaseLine)} == {member.name}


def test_one_format_named_chooses_only_its_files() -> None:
    with Archive(amazon_export(), LIMITS, formats.parser("shopify")) as archive:
        assert [m.name for m in archive.members] == [
            # Amazon's files by their name, read as the format named (their parser refuses)
            "Retail.OrderHistory.1/Retail.OrderHistory.1.csv",
            "Retail.OrderHistory.2/Retail.OrderHistory.2.csv",
            "Other Retailer/orders_export.csv",
        ]
        assert archive.format_name == "shopify"
    only_amazon = make_zip({"a/Retail.OrderHistory.1.csv": AMAZON, "b/orders.json": GOOGLE})
    with Archive(only_amazon, LIMITS) as archive:
        assert [m.parser.name for m in archive.members] == ["amazon-retail", "google-takeout"]


def test_an_amazon_named_file_in_no_format_is_read_as_amazon_and_says_why() -> None:
    stream = make_zip({"Retail.OrderHistory.1/Retail.OrderHistory.1.csv": b"x,y\r\n"})
    with Archive(stream, LIMITS) as archive:
        (member,) = archive.members
        assert member.parser.name == "amazon-retail"


@pytest.mark.parametrize(
    "members",
    [
        {},
        {"README.txt": b"hello", "Digital Items.csv": UNRELATED_CSV, "empty.csv": b""},
    ],
    ids=["empty", "unrelated-only"],
)
def test_an_archive_without_a_purchase_file_is_refused_naming_what_was_looked_for(
    members: dict[str, bytes],
) -> None:
    with pytest.raises(ArchiveError, match=r"no purchase file: looked for Amazon's Retail\."):
        Archive(make_zip(members), LIMITS)
    with pytest.raises(ArchiveError, match="amazon-retail, amazon-legacy"):
        Archive(make_zip(members), LIMITS)


# -- refusals before anything is inflated ------------------------------------------------------


@pytest.mark.parametrize("name", ["orders.zip", "Retail.OrderHistory.1/inner.ZIP"])
def test_a_nested_zip_is_never_opened(name: str) -> None:
    """An archive inside the archive is neither read nor refused: only purchase files are."""
    inner = make_zip({"Retail.OrderHistory.7.csv": AMAZON}).getvalue()
    with Archive(make_zip({"Retail.OrderHistory.1.csv": AMAZON, name: inner}), LIMITS) as archive:
        assert [m.name for m in archive.members] == ["Retail.OrderHistory.1.csv"]
        assert archive.head_bytes == 0


def test_a_nested_zip_is_refused_by_its_bytes() -> None:
    inner = make_zip({"Retail.OrderHistory.1.csv": AMAZON}).getvalue()
    with pytest.raises(ArchiveError, match=r"another archive \(orders.csv\)"):
        Archive(make_zip({"Retail.OrderHistory.1.csv": AMAZON, "orders.csv": inner}), LIMITS)
    # Amazon's files are chosen by name; their first bytes refuse them as they are read.
    archive = Archive(make_zip({"Retail.OrderHistory.9.csv": inner}), LIMITS)
    with pytest.raises(ArchiveError, match=r"another archive \(Retail.OrderHistory.9.csv\)"):
        read_all(archive)
    archive.close()


def test_an_encrypted_purchase_file_is_refused_and_another_encrypted_file_ignored() -> None:
    stream = flag_encrypted(
        make_zip({"Retail.OrderHistory.1.csv": AMAZON, "secret.txt": b"x"}), "secret.txt"
    )
    with Archive(stream, LIMITS) as archive:
        assert [m.name for m in archive.members] == ["Retail.OrderHistory.1.csv"]
    stream = flag_encrypted(
        make_zip({"Retail.OrderHistory.1.csv": AMAZON, "b.txt": b"x"}), "Retail.OrderHistory.1.csv"
    )
    with pytest.raises(ArchiveError, match=r"Retail.OrderHistory.1.csv is encrypted"):
        Archive(stream, LIMITS)


def test_too_many_members_are_refused_before_the_directory_is_read(monkeypatch) -> None:
    many = {f"f{n}.txt": b"" for n in range(10_001)}
    stream = make_zip({"Retail.OrderHistory.1.csv": AMAZON, **many}, method=zipfile.ZIP_STORED)

    def unread(*_: Any, **__: Any) -> None:
        raise AssertionError("zipfile read the directory")

    monkeypatch.setattr(zipfile, "ZipFile", unread)
    with pytest.raises(ArchiveError, match="10002 or more members, above the limit of 10000"):
        Archive(stream, LIMITS)


def test_an_end_record_that_lies_about_the_count_is_caught_by_counting() -> None:
    data = bytearray(make_zip({f"f{n}.txt": b"" for n in range(12)}).getvalue())
    end = data.rfind(b"PK\x05\x06")
    struct.pack_into("<HH", data, end + 8, 1, 1)  # entries on this disk, entries in all
    with pytest.raises(ArchiveError, match="11 or more members, above the limit of 10"):
        Archive(io.BytesIO(bytes(data)), Limits(max_total_bytes=MB, max_members=10))


def test_the_limit_on_members_counts_files_not_folders() -> None:
    members = {"a/": b"", "b/": b"", "Retail.OrderHistory.1.csv": AMAZON}
    with Archive(make_zip(members), Limits(max_total_bytes=MB, max_members=3)) as archive:
        assert len(archive.members) == 1


def test_a_zero_bomb_is_refused_by_its_ratio_without_inflating_it() -> None:
    bomb = make_zip({"Retail.OrderHistory.1/Retail.OrderHistory.1.csv": bytes(50 * MB)})
    assert len(bomb.getvalue()) < MB
    counted = CountingStream(bomb.getvalue())
    with pytest.raises(ArchiveError, match="more than 100 times its compressed size"):
        Archive(counted, LIMITS)
    assert counted.read_bytes < 200 * 1024  # the directory and its end, not the member


def test_a_bomb_whose_directory_lies_is_refused_while_reading_after_a_bounded_read() -> None:
    """The directory declares 4 MiB (within the ratio); the member holds 50 MB of zeros. The
    ratio measured on the bytes actually read refuses it after about a megabyte."""
    name = "Retail.OrderHistory.1/Retail.OrderHistory.1.csv"
    data = bytearray(make_zip({name: AMAZON[:200] + bytes(50 * MB)}).getvalue())
    lie = 4 * MB
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, lie)
    struct.pack_into("<I", data, central + 24, lie)
    counted = CountingStream(bytes(data))
    archive = Archive(counted, LIMITS)  # the head is read: within the floor
    with pytest.raises(ArchiveError, match="more than 100 times its compressed size"):
        read_all(archive)
    assert archive.inflated < 2 * MB
    assert counted.read_bytes < 256 * 1024
    again = archive.streams()
    _, stream = next(again)
    with pytest.raises(ArchiveError, match="more than 100 times"):
        stream.read(1)  # a limit broken stays broken
    again.close()
    archive.close()


def test_a_member_above_the_member_limit_is_refused_before_it_is_read() -> None:
    stream = make_zip({"Retail.OrderHistory.1.csv": AMAZON})
    with pytest.raises(
        ArchiveError, match=r"inflates to \d+ bytes or more, above the limit of 100"
    ):
        Archive(stream, Limits(max_total_bytes=MB, max_member_bytes=100))


def test_the_total_of_the_purchase_files_is_bounded_by_the_import_limit() -> None:
    stream = make_zip(
        {"1/Retail.OrderHistory.1.csv": AMAZON, "2/Retail.OrderHistory.2.csv": AMAZON}
    )
    total = len(AMAZON) * 2
    with pytest.raises(ArchiveError, match=f"inflate to {total} bytes, above the import limit"):
        Archive(stream, Limits(max_total_bytes=total - 1, max_member_bytes=len(AMAZON)))
    stream.seek(0)
    with Archive(stream, Limits(max_total_bytes=total)) as archive:
        assert sum(len(s.read()) for _, s in archive.streams()) == total
        assert archive.inflated == total


def test_the_first_bytes_read_of_other_files_are_bounded_too() -> None:
    """Other .csv and .json files are inflated as far as their first 64 KiB to recognise
    them: those bytes count against the import limit too."""
    other = b'"Date","Title"\r\n' + b'"2024-01-01","x"\r\n' * 4000
    members = {"Retail.OrderHistory.1.csv": AMAZON, **{f"other{n}.csv": other for n in range(3)}}
    with pytest.raises(ArchiveError, match="first bytes of its other files inflate to more"):
        Archive(make_zip(members), Limits(max_total_bytes=150_000))
    with Archive(make_zip(members), Limits(max_total_bytes=200_000)) as archive:
        assert archive.head_bytes == 3 * 64 * 1024


# -- streams that are not zips -------------------------------------------------------------------


def test_a_stream_that_cannot_seek_is_refused() -> None:
    class Unseekable(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(ArchiveError, match="cannot seek"):
        Archive(Unseekable(amazon_export().getvalue()), LIMITS)


@pytest.mark.parametrize(
    "data",
    [b"PK\x03\x04 not really a zip", amazon_export().getvalue()[:-30], AMAZON],
    ids=["magic-only", "truncated", "csv"],
)
def test_bytes_that_are_not_a_whole_zip_are_refused(data: bytes) -> None:
    with pytest.raises(ArchiveError, match="cannot be read"):
        Archive(io.BytesIO(data), LIMITS)


def test_a_corrupt_member_is_refused_while_reading() -> None:
    stored = make_zip({"Retail.OrderHistory.1.csv": AMAZON}, method=zipfile.ZIP_STORED)
    data = bytearray(stored.getvalue())
    data[data.find(b"Notebook A5")] ^= 0xFF  # the CRC no longer matches
    archive = Archive(io.BytesIO(bytes(data)), LIMITS)
    with pytest.raises(ArchiveError, match="cannot be read from the archive: Bad CRC"):
        read_all(archive)
    archive.close()


def test_two_members_of_one_name_are_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("Retail.OrderHistory.1/Retail.OrderHistory.1.csv", AMAZON)
        with pytest.warns(UserWarning, match="Duplicate"):
            archive.writestr("Retail.OrderHistory.1/Retail.OrderHistory.1.csv", AMAZON[:400])
    buffer.seek(0)
    with pytest.raises(ArchiveError, match="two members named"):
        Archive(buffer, LIMITS)


@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA]
)
def test_damaged_archives_are_refused_never_raised_past(method: int) -> None:
    """Random bytes changed in a real archive: it reads, or it is refused (ArchiveError, or the
    parser's error for a damaged line); nothing else escapes (which would be a 500)."""
    import random

    from connectors.lines import ParseError

    base = make_zip(
        {"Retail.OrderHistory.1/Retail.OrderHistory.1.csv": AMAZON, "x/orders.csv": SHOPIFY},
        method=method,
    ).getvalue()
    rng = random.Random(method)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(250):
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            with Archive(io.BytesIO(bytes(data)), Limits(max_total_bytes=5 * MB)) as archive:
                for member, stream in archive.streams():
                    for _line in member.parser.parse(stream, member.name):
                        pass
            outcomes["read"] += 1
        except (ArchiveError, ParseError):
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0
