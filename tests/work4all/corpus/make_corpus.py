"""Write the bad-input corpus next to this file: ``python tests/work4all/corpus/make_corpus.py``.

Each case is a small export that is broken in one way a real customer's export can be broken.
The files are committed; this script documents how each was made and can remake them.
"""

from __future__ import annotations

import io
import random
import zipfile
from pathlib import Path

import openpyxl

HERE = Path(__file__).parent

_MITARBEITER = "Code;Nummer;Name;Vorname;eMail\r\n22209630;1;Beispiel;Max;max@example.de\r\n"


def _workbook() -> bytes:
    book = openpyxl.Workbook()
    kunden = book.active
    kunden.title = "Kunden"
    kunden.append(["Code", "Nummer", "Name", "Firma1"])
    for number in range(1, 41):
        kunden.append([1000 + number, 10000 + number, f"Firma {number}", f"Firma {number}"])
    mitarbeiter = book.create_sheet("Mitarbeiter")
    mitarbeiter.append(["Code", "Nummer", "Name", "Vorname", "eMail"])
    for number in range(1, 41):
        mitarbeiter.append([2000 + number, number, f"Name {number}", "Max", "m@example.de"])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _with_damaged_sheet(workbook: bytes, member: str) -> bytes:
    """Return the workbook with ``member``'s XML cut off in the middle of its rows."""
    source = zipfile.ZipFile(io.BytesIO(workbook))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == member:
                data = data[: len(data) // 2]
            target.writestr(info, data)
    return buffer.getvalue()


def main() -> None:
    """Write every corpus case."""
    workbook = _workbook()
    (HERE / "truncated.xlsx").write_bytes(workbook[: len(workbook) // 2])
    (HERE / "damaged_sheet.xlsx").write_bytes(
        _with_damaged_sheet(workbook, "xl/worksheets/sheet2.xml")
    )

    dos = HERE / "dos_encoding"
    dos.mkdir(exist_ok=True)
    # Code page 850 (DOS German): ü is 0x81, a byte Windows-1252 leaves undefined.
    (dos / "Kunden.csv").write_bytes(
        "Code;Nummer;Name;Ort\r\n1;10001;Schmidt GmbH;Bonn\r\n2;10002;Brüning KG;Lübeck\r\n"
        "3;10003;Weber AG;Köln\r\n".encode("cp850")
    )

    missing = HERE / "missing_table_and_column"
    missing.mkdir(exist_ok=True)
    (missing / "KAnsprechp.csv").write_bytes(
        "KAnsprechpCode;Vorname;Name\r\n550247937;Petra;Schmidt\r\n".encode("cp1252")
    )
    (missing / "Mitarbeiter.csv").write_bytes(_MITARBEITER.encode("cp1252"))

    amount = HERE / "non_numeric_amount"
    amount.mkdir(exist_ok=True)
    (amount / "RA.csv").write_bytes(
        "Code;RNummer;RBetrag;RMwst;BezSumme\r\n52775659;220245;581,48;110,48;691,96\r\n"
        "52775660;220246;zweihundert;38,00;0,00\r\n52775661;220247;1.200,00;228,00;1.428,00\r\n".encode(
            "cp1252"
        )
    )

    garbage = HERE / "garbage_file"
    garbage.mkdir(exist_ok=True)
    noise = random.Random(4).randbytes(600)
    (garbage / "Kunden.csv").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + noise)
    (garbage / "Mitarbeiter.csv").write_bytes(_MITARBEITER.encode("cp1252"))
    (HERE / "garbage.db").write_bytes(b"This is no database.\n" * 40)
    (HERE / "garbage.xlsx").write_bytes(noise)
    (HERE / "garbage.bin").write_bytes(noise)

    quoting = HERE / "unquoted_delimiter"
    quoting.mkdir(exist_ok=True)
    (quoting / "IndividualFields.csv").write_bytes(
        "Code;Control;FieldNumber;TableType;Title\r\n"
        "1032893;Combo;1;Projekte;Akt vorhanden;;;0```Ja;;;1```Nein;;;2\r\n"
        "1032894;Text;2;Kunden;Branche\r\n".encode("cp1252")
    )

    empty = HERE / "empty_file"
    empty.mkdir(exist_ok=True)
    (empty / "Kunden.csv").write_bytes(b"")
    (empty / "Mitarbeiter.csv").write_bytes(_MITARBEITER.encode("cp1252"))


if __name__ == "__main__":
    main()
