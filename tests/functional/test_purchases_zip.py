"""A zip of purchase files (Amazon's "Request my data" download) imported through the
command: one import of every purchase file in it, all-or-nothing across the archive, and
an archive that would inflate too far refused with nothing kept."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from connectors import formats
from infomediary.audit.log import Actor
from infomediary.cli import main
from infomediary.errors import ValidationFailed
from infomediary.instance import Instance
from infomediary.models import Purchase, PurchaseImport
from infomediary.services import Context, purchases
from tests.factories import make_customer

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "connectors" / "fixtures"
AMAZON = (FIXTURES / "amazon" / "Retail.OrderHistory.1.csv").read_bytes()
#: The fixture's lines with other order ids: the second marketplace's file.
AMAZON_2 = AMAZON.replace(b'"111-', b'"222-').replace(b'"302-', b'"402-')
SHOPIFY = (FIXTURES / "shopify" / "orders_export.csv").read_bytes()
CTX = Context(Actor.system("test"))
EMAIL = "zip-buyer@example.org"
FIRST = "Retail.OrderHistory.1/Retail.OrderHistory.1.csv"
SECOND = "Retail.OrderHistory.2/Retail.OrderHistory.2.csv"


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def amazon_export(path: Path, second: bytes = AMAZON_2) -> Path:
    return write_zip(
        path,
        {
            "Digital-Ordering.1/Digital Items.csv": b'"Title","Device"\r\n"A book","Kindle"\r\n',
            FIRST: AMAZON,
            "Kindle.Devices/README.txt": b"About your devices\n",
            SECOND: second,
        },
    )


@pytest.fixture
def env(base_config, inst, monkeypatch) -> None:
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def counts(inst: Instance) -> tuple[int, int]:
    """(purchase rows, imports), staging ones included."""
    with inst.sessions() as session:
        rows = session.execute(select(func.count()).select_from(Purchase)).scalar_one()
        imports = session.execute(select(func.count()).select_from(PurchaseImport)).scalar_one()
    return rows, imports


def fixture_lines(inst: Instance, tmp_path: Path) -> int:
    """How many lines the Amazon fixture makes on its own (its duplicates folded)."""
    customer_id = make_customer(inst)
    path = tmp_path / "Retail.OrderHistory.1.csv"
    path.write_bytes(AMAZON)
    with inst.sessions() as session, path.open("rb") as stream:
        result = purchases.import_file(session, inst, customer_id, stream, path.name, ctx=CTX)
    return result.imported


def test_cli_imports_every_purchase_file_of_the_archive_once(env, inst, tmp_path: Path) -> None:
    per_file = fixture_lines(inst, tmp_path)
    customer_id = make_customer(inst, email=EMAIL)
    path = amazon_export(tmp_path / "amazon-data.zip")
    code, out, err = cli("import", str(path), "--customer", EMAIL, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["format"], result["rejected"]) == ("amazon-retail", 0)
    assert result["imported"] == 2 * per_file
    with inst.sessions() as session:
        found = purchases.list_purchases(session, inst, customer_id, CTX)
        (done,) = purchases.list_imports(session, inst, customer_id, CTX)
    assert {line["source"] for line in found} == {
        f"amazon-data.zip/{FIRST}",
        f"amazon-data.zip/{SECOND}",
    }
    assert {line["order_id"][:4] for line in found} == {"111-", "302-", "222-", "402-"}
    assert done["source"] == "amazon-data.zip"
    assert done["retailers"] == ["Amazon.com", "Amazon.de"]
    code, out, _ = cli("import", str(path), "--customer", EMAIL)
    assert code == 0
    assert out.startswith(f"imported 0 purchase line(s) (amazon-retail): {2 * per_file} duplicate")


def test_an_archive_of_several_formats_is_one_import(env, inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst, email=EMAIL)
    path = write_zip(tmp_path / "orders.zip", {FIRST: AMAZON, "shop/orders_export.csv": SHOPIFY})
    code, out, err = cli("import", str(path), "--customer", EMAIL, "--json")
    assert code == 0, err
    assert json.loads(out)["format"] == "archive"
    with inst.sessions() as session:
        found = purchases.list_purchases(session, inst, customer_id, CTX)
    assert {line["source"] for line in found} == {
        f"orders.zip/{FIRST}",
        "orders.zip/shop/orders_export.csv",
    }


def test_a_bad_line_in_any_member_refuses_the_whole_archive(env, inst, tmp_path: Path) -> None:
    make_customer(inst, email=EMAIL)
    bad = AMAZON_2.replace(b'"2024-04-01T08:15:30.123Z"', b'"not a date"', 1)
    assert bad != AMAZON_2
    path = amazon_export(tmp_path / "amazon-data.zip", second=bad)
    code, _, err = cli("import", str(path), "--customer", EMAIL)
    assert code == 1
    assert err.startswith("error: nothing imported: 1 line(s) cannot be read: amazon-data.zip/")
    assert SECOND in err
    assert counts(inst) == (0, 0)
    code, out, err = cli("import", str(path), "--customer", EMAIL, "--skip-invalid", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["rejected"] == 1
    assert result["imported"] > 0


def test_a_zip_bomb_is_refused_with_nothing_kept(env, inst, tmp_path: Path) -> None:
    make_customer(inst, email=EMAIL)
    path = write_zip(tmp_path / "bomb.zip", {FIRST: AMAZON + bytes(30 * 1024 * 1024)})
    assert path.stat().st_size < 1024 * 1024
    code, _, err = cli("import", str(path), "--customer", EMAIL)
    assert code == 1
    assert err.startswith("error: file: ")
    assert "more than 100 times its compressed size" in err
    assert err.count("\n") == 1
    assert counts(inst) == (0, 0)


def test_an_archive_without_purchase_files_names_what_was_looked_for(
    env, inst, tmp_path: Path
) -> None:
    make_customer(inst, email=EMAIL)
    path = write_zip(tmp_path / "photos.zip", {"photos/README.txt": b"no orders here"})
    code, _, err = cli("import", str(path), "--customer", EMAIL)
    assert code == 1
    assert "error: file: the archive holds no purchase file: looked for Amazon's" in err
    assert counts(inst) == (0, 0)


def test_the_import_limit_bounds_the_archive_and_what_it_inflates(
    env, inst, tmp_path: Path, monkeypatch
) -> None:
    make_customer(inst, email=EMAIL)
    path = amazon_export(tmp_path / "amazon-data.zip")
    size = path.stat().st_size
    monkeypatch.setenv("INFOMEDIARY_IMPORT_MAX_BYTES", str(size - 1))
    code, _, err = cli("import", str(path), "--customer", EMAIL)
    assert code == 1
    assert f"is {size} bytes, above the import limit of {size - 1} bytes" in err
    # The zip fits, and each of its purchase files, but not all they inflate to.
    limit = max(len(AMAZON), len(AMAZON_2))
    assert size < limit
    monkeypatch.setenv("INFOMEDIARY_IMPORT_MAX_BYTES", str(limit))
    code, _, err = cli("import", str(path), "--customer", EMAIL)
    assert code == 1
    inflated = len(AMAZON) + len(AMAZON_2)
    assert f"would inflate to {inflated} bytes, above the import limit of {limit} bytes" in err
    assert counts(inst) == (0, 0)
    monkeypatch.setenv("INFOMEDIARY_IMPORT_MAX_BYTES", str(inflated))
    assert cli("import", str(path), "--customer", EMAIL)[0] == 0


def test_a_zip_that_cannot_seek_is_refused(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    data = amazon_export(tmp_path / "amazon-data.zip").read_bytes()

    class Unseekable(io.BytesIO):
        def seekable(self) -> bool:
            return False

    with inst.sessions() as session, pytest.raises(ValidationFailed, match="cannot seek"):
        purchases.import_file(session, inst, customer_id, Unseekable(data), "x.zip", ctx=CTX)
    assert counts(inst) == (0, 0)


def test_a_format_named_for_an_archive_reads_its_files_so(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    path = amazon_export(tmp_path / "amazon-data.zip")
    options: dict[str, Any] = {"ctx": CTX}
    with inst.sessions() as session, path.open("rb") as stream:
        result = purchases.import_file(
            session, inst, customer_id, stream, path.name, format="amazon-retail", **options
        )
    assert (result.format, result.rejected) == ("amazon-retail", 0)
    with (
        inst.sessions() as session,
        path.open("rb") as stream,
        pytest.raises(ValidationFailed, match="unknown format 'ebay'"),
    ):
        purchases.import_file(
            session, inst, customer_id, stream, path.name, format="ebay", **options
        )


def test_duplicates_are_counted_by_the_insert_within_and_across_batches(
    inst, tmp_path: Path
) -> None:
    """A line repeated in the same batch, in a later batch, in another member, and lines the
    customer already holds: each counted once as a duplicate, none written twice."""
    customer_id = make_customer(inst)
    header, *rows = AMAZON.split(b"\r\n" if b"\r\n" in AMAZON else b"\n")
    rows = [row for row in rows if row]
    repeated = header + b"\r\n" + b"\r\n".join([*rows, rows[0], rows[1], *rows[:3]]) + b"\r\n"
    path = write_zip(tmp_path / "orders.zip", {FIRST: repeated, SECOND: AMAZON})
    alone = fixture_lines(inst, tmp_path)
    with inst.sessions() as session, path.open("rb") as stream:
        result = purchases.import_file(
            session, inst, customer_id, stream, path.name, ctx=CTX, batch=4
        )
    parser = formats.parser("amazon-retail")
    read = sum(len(list(parser.parse(io.BytesIO(data), "x"))) for data in (repeated, AMAZON))
    assert read > 2 * alone + 4
    assert (result.imported, result.rejected) == (alone, 0)
    assert result.imported + result.duplicates == read
    assert counts(inst)[0] == 2 * alone  # this customer's and fixture_lines' customer's
    with inst.sessions() as session, path.open("rb") as stream:
        again = purchases.import_file(
            session, inst, customer_id, stream, path.name, ctx=CTX, batch=3
        )
    assert (again.imported, again.duplicates) == (0, read)
