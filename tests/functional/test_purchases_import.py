"""Purchases imported from retailers' files: sealed, all-or-nothing or skipping bad lines,
idempotent, staged invisibly, deletable, erased, logged once per import; the commands."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text

from infomediary.audit.log import Actor
from infomediary.cli import main
from infomediary.cli import purchases as purchase_cli
from infomediary.errors import NotFound, ValidationFailed
from infomediary.instance import Instance
from infomediary.models import AccessLogEntry, Purchase, PurchaseImport
from infomediary.services import Context, erasure, exports, purchases
from tests.factories import make_customer
from tests.log_reasons import code_of, params_of, shown

FIXTURES = Path(__file__).resolve().parents[1] / "unit" / "connectors" / "fixtures"
AMAZON = FIXTURES / "amazon" / "Retail.OrderHistory.1.csv"
CTX = Context(Actor.system("test"))
PASSWORD = "correct horse battery"


def run_import(inst: Instance, customer_id: str, path: Path, **options: Any) -> Any:
    with inst.sessions() as session, path.open("rb") as stream:
        return purchases.import_file(
            session, inst, customer_id, stream, path.name, ctx=CTX, **options
        )


def visible(inst: Instance, customer_id: str, **options: Any) -> list[dict[str, Any]]:
    with inst.sessions() as session:
        return purchases.list_purchases(session, inst, customer_id, CTX, **options)


def stored_rows(inst: Instance) -> int:
    with inst.sessions() as session:
        return session.execute(select(func.count()).select_from(Purchase)).scalar_one()


def amazon_file(path: Path, rows: int, *, bad: tuple[int, ...] = ()) -> Path:
    """An Amazon order history of ``rows`` distinct lines (the fixture's first row, varied);
    the rows numbered in ``bad`` carry a date that cannot be read."""
    with AMAZON.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header, template = next(reader), next(reader)
    order, name, date = header.index("Order ID"), header.index("Product Name"), 2
    assert header[date] == "Order Date"
    out = io.StringIO()
    writer = csv.writer(out, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for n in range(rows):
        row = list(template)
        row[order] = f"900-{n:07d}-0000001"
        row[name] = f"Generated item {n}"
        if n in bad:
            row[date] = "not a date"
        writer.writerow(row)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


# -- importing the fixtures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "fmt", "lines"),
    [
        ("amazon/Retail.OrderHistory.1.csv", "amazon-retail", 8),
        ("amazon/legacy-items.csv", "amazon-legacy", 3),
        ("google/order_usd.json", "google-takeout", 3),
        ("schema_org/order_list.json", "schema-org", 3),
        ("shopify/orders_export.csv", "shopify", 8),
    ],
)
def test_fixture_files_import_and_read_back(inst, relative: str, fmt: str, lines: int) -> None:
    customer_id = make_customer(inst)
    result = run_import(inst, customer_id, FIXTURES / relative)
    assert (result.format, result.rejected, result.errors) == (fmt, 0, ())
    assert result.imported + result.duplicates == lines
    assert result.imported > 0
    found = visible(inst, customer_id)
    assert len(found) == result.imported
    first = found[0]
    assert set(first) >= {
        "retailer",
        "order_id",
        "line_key",
        "ordered_at",
        "product_name",
        "quantity",
        "unit_price_minor",
        "currency",
        "status",
        "source",
        "line_number",
    }
    assert first["source"] == Path(relative).name
    assert [r["ordered_at"] for r in found] == sorted(
        (r["ordered_at"] for r in found), reverse=True
    )


def test_google_lines_keep_every_normalised_field(inst) -> None:
    customer_id = make_customer(inst)
    run_import(inst, customer_id, FIXTURES / "google" / "order_usd.json")
    case = next(r for r in visible(inst, customer_id) if r["product_name"] == "Pixel Phone Case")
    assert case["retailer"] == "Google Store"
    assert case["order_id"] == "GPA.3301-7788-9911-22334"
    assert (case["quantity"], case["unit_price_minor"], case["currency"]) == (2, 2175, "USD")
    assert case["product_id"] == "GA04321"


def test_nothing_personal_is_stored_in_plaintext(inst) -> None:
    customer_id = make_customer(inst)
    run_import(inst, customer_id, AMAZON)
    run_import(inst, customer_id, FIXTURES / "google" / "order_usd.json")
    markers = [
        "Notebook A5 Dotted",
        "111-0000002-0000002",
        "B0TESTBBB2",
        "Amazon.com",
        "Pixel Phone Case",
        "GPA.3301-7788-9911-22334",
        "Google Store",
        "Retail.OrderHistory.1.csv",
    ]
    scanned = 0
    with inst.engine.connect() as conn:
        for table in ("purchases", "purchase_imports", "access_log"):
            for row in conn.execute(text(f"SELECT * FROM {table}")):  # noqa: S608 - fixed names
                for column, value in row._mapping.items():
                    raw = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                    blob = raw if isinstance(raw, bytes) else raw.encode()
                    scanned += 1
                    for marker in markers:
                        assert marker.encode() not in blob, f"{marker} in {table}.{column}"
    assert scanned > 20
    if inst.engine.dialect.name == "sqlite":
        database = Path(str(inst.engine.url.database))
        raw = b"".join(
            p.read_bytes()
            for p in (database, database.with_name(database.name + "-wal"))
            if p.exists()
        )
        assert raw
        for marker in markers:
            assert marker.encode() not in raw, marker
    assert any(r["product_name"] == "Notebook A5 Dotted" for r in visible(inst, customer_id))


def test_a_record_moved_to_another_customer_does_not_open(inst) -> None:
    ada, bob = make_customer(inst), make_customer(inst)
    run_import(inst, ada, FIXTURES / "schema_org" / "single_order.json")
    run_import(inst, bob, FIXTURES / "schema_org" / "order_list.json")
    with inst.sessions() as session, session.begin():
        theirs = session.execute(select(Purchase).where(Purchase.customer_id == bob)).scalars()
        target = next(iter(theirs))
        target.sealed = session.execute(
            select(Purchase.sealed).where(Purchase.customer_id == ada)
        ).scalar_one()
    with pytest.raises(Exception, match="does not authenticate"):
        visible(inst, bob)


def test_an_unknown_format_is_refused_naming_the_formats(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    with pytest.raises(ValidationFailed) as refused:
        run_import(inst, customer_id, FIXTURES / "google" / "binary.bin")
    assert "amazon-retail" in refused.value.message
    assert "google-takeout" in refused.value.message
    with pytest.raises(ValidationFailed, match="unknown format 'ebay'"):
        run_import(inst, customer_id, AMAZON, format="ebay")
    assert stored_rows(inst) == 0


def test_a_stream_that_cannot_seek_is_detected_too(inst) -> None:
    customer_id = make_customer(inst)

    class Pipe(io.RawIOBase):
        def __init__(self, data: bytes):
            self.data = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self.data.read(len(buffer))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    with inst.sessions() as session:
        result = purchases.import_file(
            session,
            inst,
            customer_id,
            cast(BinaryIO, Pipe(AMAZON.read_bytes())),
            "pipe",
            ctx=CTX,
        )
    assert result.format == "amazon-retail"
    assert result.imported + result.duplicates == 8


# -- all or nothing, or skipping --------------------------------------------------------------


def test_a_file_with_bad_lines_is_refused_whole(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    path = amazon_file(tmp_path / "orders.csv", 30, bad=(3, 17))
    with pytest.raises(purchases.ImportRefused) as refused:
        run_import(inst, customer_id, path, batch=5)  # batches were staged before line 18
    result = refused.value.result
    assert (result.imported, result.rejected) == (0, 2)
    assert [e.split(":")[0] for e in result.errors] == ["orders.csv, line 5", "orders.csv, line 19"]
    assert "line 5" in refused.value.message
    assert visible(inst, customer_id) == []
    assert stored_rows(inst) == 0
    with inst.sessions() as session:
        assert session.execute(select(func.count()).select_from(PurchaseImport)).scalar() == 0
        entry = session.execute(
            select(AccessLogEntry).where(AccessLogEntry.action == "import")
        ).scalar_one()
    assert entry.outcome == "denied"
    assert code_of(entry) == "purchases.import_refused"
    assert "2 line(s)" in shown(entry)


def test_a_refusal_names_at_most_twenty_lines(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    path = amazon_file(tmp_path / "orders.csv", 60, bad=tuple(range(0, 60, 2)))
    with pytest.raises(purchases.ImportRefused) as refused:
        run_import(inst, customer_id, path)
    assert len(refused.value.result.errors) == purchases.MAX_ERRORS


def test_skip_invalid_imports_the_good_lines_and_reports_the_rest(inst) -> None:
    customer_id = make_customer(inst)
    result = run_import(
        inst, customer_id, FIXTURES / "schema_org" / "bad_lines.json", skip_invalid=True
    )
    assert (result.imported, result.rejected) == (3, 8)
    assert len(result.errors) == 8
    assert all(e.startswith("bad_lines.json, line ") for e in result.errors)
    assert sorted(r["product_name"] for r in visible(inst, customer_id)) == [
        "Kiwis",
        "Lemons",
        "Pears",
    ]


# -- idempotent, staged, resumed --------------------------------------------------------------


def test_importing_the_same_file_again_adds_nothing(inst) -> None:
    customer_id = make_customer(inst)
    first = run_import(inst, customer_id, AMAZON)
    again = run_import(inst, customer_id, AMAZON)
    assert (again.imported, again.duplicates) == (0, first.imported + first.duplicates)
    assert len(visible(inst, customer_id)) == first.imported
    other = make_customer(inst)  # another customer's same lines are theirs
    assert run_import(inst, other, AMAZON).imported == first.imported


def test_batches_are_invisible_until_the_import_is_done(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    path = amazon_file(tmp_path / "orders.csv", 25)
    seen: list[tuple[int, int, int]] = []

    def progress(lines: int) -> None:
        seen.append((lines, stored_rows(inst), len(visible(inst, customer_id))))

    result = run_import(inst, customer_id, path, batch=10, progress=progress)
    assert result.imported == 25
    assert seen[:2] == [(10, 10, 0), (20, 20, 0)]
    assert seen[-1] == (25, 25, 25)


def test_an_interrupted_import_leaves_nothing_and_a_rerun_completes_it(
    inst, tmp_path: Path, monkeypatch
) -> None:
    customer_id = make_customer(inst)
    path = amazon_file(tmp_path / "orders.csv", 35)

    class Killed(BaseException):
        pass

    def stop(lines: int) -> None:
        if lines >= 20:
            raise Killed

    # the process dies before it can clean up: nothing it staged is removed
    monkeypatch.setattr(purchases, "_forget_staging", lambda *_: None)
    with pytest.raises(Killed):
        run_import(inst, customer_id, path, batch=10, progress=stop)
    assert stored_rows(inst) == 20
    assert visible(inst, customer_id) == []
    monkeypatch.undo()

    result = run_import(inst, customer_id, path, batch=10)
    assert (result.imported, result.duplicates) == (35, 0)
    assert stored_rows(inst) == 35
    assert len(visible(inst, customer_id)) == 35


def test_a_killed_process_leaves_nothing_visible_and_a_rerun_completes(
    inst, tmp_path: Path
) -> None:
    customer_id = make_customer(inst)
    path = amazon_file(tmp_path / "orders.csv", 50)
    script = textwrap.dedent(
        """
        import os, signal, sys
        from infomediary.audit.log import Actor
        from infomediary.config import load_config
        from infomediary.instance import open_instance
        from infomediary.services import Context, purchases

        folder, url, customer_id, path = sys.argv[1:]
        inst = open_instance(load_config(
            {"INSTANCE_PATH": folder, "DATABASE_URL": url}, environ={}))

        def progress(lines):
            if lines >= 30:
                os.kill(os.getpid(), signal.SIGKILL)

        with inst.sessions() as session, open(path, "rb") as stream:
            purchases.import_file(session, inst, customer_id, stream, "orders.csv",
                ctx=Context(Actor.system("test")), batch=10, progress=progress)
        """
    )
    settings = inst.settings
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(settings.instance_path),
            settings.database_url,
            customer_id,
            str(path),
        ],
        capture_output=True,
        timeout=120,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert done.returncode == -9, done.stderr.decode()
    assert stored_rows(inst) == 30
    assert visible(inst, customer_id) == []
    with inst.sessions() as session:
        assert len(purchases.abandoned_imports(session, inst, customer_id)) == 1

    result = run_import(inst, customer_id, path, batch=10)
    assert (result.imported, result.duplicates) == (50, 0)
    assert len(visible(inst, customer_id)) == 50
    assert stored_rows(inst) == 50


def test_another_live_process_staging_import_is_left_alone(inst, tmp_path: Path) -> None:
    """A staging import whose process still holds its lease is not abandoned."""
    customer_id = make_customer(inst)
    with inst.sessions() as session:
        import_id, _ = purchases._start(session, inst, customer_id, "amazon-retail", "x.csv")
        assert purchases.abandoned_imports(session, inst, customer_id) == []
    purchases._RUNNING.discard(import_id)  # its writer stopped without finishing
    with inst.sessions() as session:
        assert purchases.abandoned_imports(session, inst, customer_id) == [import_id]


# -- the log ------------------------------------------------------------------------------------


def test_one_log_entry_per_import_with_its_retailers_sealed(inst, tmp_path: Path) -> None:
    customer_id = make_customer(inst)
    run_import(inst, customer_id, amazon_file(tmp_path / "orders.csv", 23), batch=5)
    with inst.sessions() as session:
        entries = (
            session.execute(select(AccessLogEntry).where(AccessLogEntry.action == "import"))
            .scalars()
            .all()
        )
        document = exports.export(session, inst, customer_id, CTX)
    assert len(entries) == 1
    assert entries[0].categories == "purchases"
    assert entries[0].outcome == "allowed"
    assert params_of(entries[0])["imported"] == 23
    assert "23 new" in shown(entries[0])
    logged = next(e for e in document["access_log"] if e["action"] == "import")
    assert logged["detail"]["retailers"] == ["Amazon.com"]
    assert logged["detail"]["format"] == "amazon-retail"
    assert "product_name" not in json.dumps(logged)
    assert "Generated item" not in json.dumps(logged)


# -- deleting and erasing -----------------------------------------------------------------------


def test_delete_one_line_one_import_or_one_retailer(inst) -> None:
    customer_id = make_customer(inst)
    amazon = run_import(inst, customer_id, AMAZON)
    google = run_import(inst, customer_id, FIXTURES / "google" / "order_usd.json")
    schema = run_import(inst, customer_id, FIXTURES / "schema_org" / "order_list.json")
    total = amazon.imported + google.imported + schema.imported
    assert len(visible(inst, customer_id)) == total
    one = visible(inst, customer_id, retailer="google store")[0]

    with inst.sessions() as session:
        assert purchases.delete_purchase(session, inst, customer_id, one["id"], CTX) == 1
    assert len(visible(inst, customer_id)) == total - 1
    other = make_customer(inst)
    with inst.sessions() as session, pytest.raises(NotFound):
        purchases.delete_purchase(session, inst, other, visible(inst, customer_id)[0]["id"], CTX)

    with inst.sessions() as session:
        deleted = purchases.delete_retailer(session, inst, customer_id, "AMAZON.COM", CTX)
    assert deleted == amazon.imported - 1
    assert {r["retailer"] for r in visible(inst, customer_id)} == {
        "Amazon.de",
        "Google Store",
        "Fabrikam Outdoor",
    }

    with inst.sessions() as session:
        assert purchases.delete_import(session, inst, customer_id, schema.import_id, CTX) == 3
        assert session.get(PurchaseImport, schema.import_id) is None
    assert {r["retailer"] for r in visible(inst, customer_id)} == {"Amazon.de", "Google Store"}
    with inst.sessions() as session:
        reasons = [
            shown(row)
            for row in session.execute(
                select(AccessLogEntry).where(AccessLogEntry.action == "delete")
            ).scalars()
        ]
    assert len(reasons) == 3
    assert all(reason.endswith("line(s) deleted") for reason in reasons)
    # a deleted line comes back when its file is imported again
    assert run_import(inst, customer_id, AMAZON).imported == amazon.imported - 1


def test_erasure_removes_purchases_and_imports(inst) -> None:
    customer_id = make_customer(inst)
    keep = make_customer(inst)
    run_import(inst, customer_id, AMAZON)
    run_import(inst, keep, AMAZON)
    with inst.sessions() as session:
        erasure.erase(session, inst, customer_id, PASSWORD, CTX)
    with inst.sessions() as session:
        left = session.execute(select(Purchase.customer_id).distinct()).scalars().all()
        imports = session.execute(select(PurchaseImport.customer_id)).scalars().all()
    assert left == [keep]
    assert imports == [keep]


def test_the_export_carries_the_purchases(inst) -> None:
    customer_id = make_customer(inst)
    run_import(inst, customer_id, FIXTURES / "schema_org" / "single_order.json")
    with inst.sessions() as session:
        document = exports.export(session, inst, customer_id, CTX)
    [line] = document["purchases"]
    assert line["product_name"] == "The Art of Tea"
    assert line["retailer"] == "Northwind Books"
    assert line["order_id"] == "NW-1001"
    assert line["unit_price_minor"] == 2499
    assert document["access_log"][-1]["categories"]


# -- the commands -------------------------------------------------------------------------------


@pytest.fixture
def env(base_config, inst, monkeypatch) -> dict[str, str]:
    values = {
        "INFOMEDIARY_INSTANCE_PATH": str(base_config.instance_path),
        "INFOMEDIARY_DATABASE_URL": base_config.database_url,
        "INFOMEDIARY_ARGON2_TIME_COST": "1",
        "INFOMEDIARY_ARGON2_MEMORY_KIB": "1024",
        "INFOMEDIARY_ARGON2_PARALLELISM": "1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return values


def cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


EMAIL = "buyer@example.org"


def test_cli_import_prints_json_and_is_idempotent(env, inst) -> None:
    make_customer(inst, email=EMAIL)
    code, out, err = cli("import", str(AMAZON), "--customer", EMAIL, "--json")
    assert code == 0, err
    first = json.loads(out)
    assert set(first) == {"format", "imported", "duplicates", "updated", "rejected", "errors"}
    assert first["format"] == "amazon-retail"
    assert first["imported"] > 0
    assert err == ""  # no progress when stderr is not a terminal
    code, out, _ = cli("import", str(AMAZON), "--customer", EMAIL, "--json")
    assert code == 0
    assert json.loads(out)["imported"] == 0
    code, out, _ = cli("import", str(AMAZON), "--customer", EMAIL)
    assert code == 0
    assert out.startswith("imported 0 purchase line(s) (amazon-retail):")


def test_cli_import_refusal_and_skip_invalid(env, inst) -> None:
    make_customer(inst, email=EMAIL)
    bad = FIXTURES / "schema_org" / "bad_lines.json"
    code, out, err = cli("import", str(bad), "--customer", EMAIL)
    assert code == 1
    assert err.startswith("error: nothing imported: 8 line(s)")
    assert err.count("\n") == 1
    code, out, _ = cli("import", str(bad), "--customer", EMAIL, "--json")
    assert code == 1
    refused = json.loads(out)
    assert (refused["imported"], refused["rejected"], len(refused["errors"])) == (0, 8, 8)
    code, out, _ = cli("import", str(bad), "--customer", EMAIL, "--skip-invalid", "--json")
    assert code == 0
    assert (json.loads(out)["imported"], json.loads(out)["rejected"]) == (3, 8)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customer", "nobody@example.org"], "error: no customer has that address"),
        (["--customer", EMAIL, "--format", "ebay"], "error: format: unknown format 'ebay'"),
    ],
)
def test_cli_import_errors_are_one_line(env, inst, args: list[str], message: str) -> None:
    make_customer(inst, email=EMAIL)
    code, _, err = cli("import", str(AMAZON), *args)
    assert code == 1
    assert err.startswith(message)
    assert err.count("\n") == 1


def test_cli_import_refuses_a_missing_or_unknown_file(env, inst, tmp_path: Path) -> None:
    make_customer(inst, email=EMAIL)
    code, _, err = cli("import", str(tmp_path / "missing.csv"), "--customer", EMAIL)
    assert (code, err.count("\n")) == (1, 1)
    assert "cannot read" in err
    code, _, err = cli("import", str(FIXTURES / "google" / "binary.bin"), "--customer", EMAIL)
    assert (code, err.count("\n")) == (1, 1)
    assert "none of the formats known (amazon-retail" in err


def test_cli_import_refuses_a_file_above_the_limit_before_reading(
    env, inst, tmp_path: Path, monkeypatch
) -> None:
    make_customer(inst, email=EMAIL)
    monkeypatch.setenv("INFOMEDIARY_IMPORT_MAX_BYTES", "100")
    code, _, err = cli("import", str(AMAZON), "--customer", EMAIL)
    assert code == 1
    assert "above the import limit of 100 bytes" in err
    assert stored_rows(inst) == 0
    monkeypatch.setenv("INFOMEDIARY_IMPORT_MAX_BYTES", str(AMAZON.stat().st_size))
    assert cli("import", str(AMAZON), "--customer", EMAIL)[0] == 0


def test_cli_customers_export_includes_purchases(env, inst) -> None:
    make_customer(inst, email=EMAIL)
    assert cli("import", str(AMAZON), "--customer", EMAIL)[0] == 0
    code, out, err = cli("customers", "export", "--email", EMAIL)
    assert code == 0, err
    document = json.loads(out)
    assert document["account"]["email"] == EMAIL
    assert any(p["product_name"] == "Notebook A5 Dotted" for p in document["purchases"])
    code, _, err = cli("customers", "export", "--email", "nobody@example.org")
    assert (code, err) == (1, "error: no customer has that address\n")


def test_cli_progress_is_shown_on_a_terminal(env, inst, tmp_path: Path, monkeypatch) -> None:
    make_customer(inst, email=EMAIL)
    path = amazon_file(tmp_path / "orders.csv", 12)
    monkeypatch.setattr(purchase_cli, "_terminal", lambda: True)
    code, out, err = cli("import", str(path), "--customer", EMAIL, "--batch", "5")
    assert code == 0, err
    assert "\r5 lines read" in err
    assert "\r12 lines read (100%)" in err
    assert out.startswith("imported 12 purchase line(s)")


def test_cli_import_of_any_csv_with_its_column_mapping(env, inst) -> None:
    make_customer(inst, email=EMAIL)
    generic = FIXTURES / "generic"
    code, out, err = cli(
        "import",
        str(generic / "corner_books.csv"),
        "--customer",
        EMAIL,
        "--mapping",
        str(generic / "corner_books.toml"),
        "--skip-invalid",  # the file holds three lines it cannot read, on purpose
        "--json",
    )
    assert code == 0, (out, err)
    result = json.loads(out)
    assert result["format"] == "generic-csv"
    assert result["imported"] > 0
    assert result["rejected"] == 3
    code, _, err = cli(
        "import", str(generic / "corner_books.csv"), "--customer", EMAIL, "--format", "generic-csv"
    )
    assert code == 1
    assert err.strip() == "error: a generic CSV needs --mapping FILE describing its columns"
    code, _, err = cli(
        "import",
        str(generic / "corner_books.csv"),
        "--customer",
        EMAIL,
        "--mapping",
        str(generic / "bad_status.toml"),
    )
    assert code == 1
    assert err.startswith("error: the mapping ")
    assert len(err.strip().splitlines()) == 1
