"""The data-quality defects the generator injects, their rates, and the ground-truth manifest.

The manifest (``manifest.json``) is for tests only: the product never reads it. It lists, per
defect class, every affected cell as ``{"table", "Code", "column"}`` where ``Code`` is the value
of the table's key column.
"""

from __future__ import annotations

import json
import tempfile
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self


class Defect(StrEnum):
    """One class of data-quality problem from the reference's section 3."""

    DUPLICATE_CUSTOMER = "duplicate_customer"
    """a Kunden row that is a near-copy (GmbH/GmbH & Co. KG, Str./Straße, ü/ue) of another."""
    ORPHAN_CONTACT = "orphan_contact"
    """a KAnsprechp row whose KundenCode matches no customer."""
    OWNER_MISSING = "owner_missing"
    """a customer with VertreterCode 0 or NULL and no owner name anywhere."""
    OWNER_FREE_TEXT = "owner_free_text"
    """a customer with VertreterCode 0 whose owner is only a free-text PersonErstkontakt."""
    DEPARTED_OWNER = "departed_owner"
    """a record owned by (VertreterCode/BenutzerCode) a user with Ausgeschieden = -1."""
    MIXED_ENCODING = "mixed_encoding"
    """text that went through a wrong UTF-8/Windows-1252 round trip (MÃ¼ller)."""
    TEXT_DATE = "text_date"
    """a datetime value stored as text in another format (form-specific, see FORM_NOTES)."""
    PLACEHOLDER_DATE = "placeholder_date"
    """0001-01-01 standing for "no date"."""
    FLOAT_NOISE = "float_noise"
    """a money value with binary float artefacts (48.7400016784668)."""
    PAYMENT_MISMATCH = "payment_mismatch"
    """an RA row whose BezSumme differs from the sum of its RABezSumme payments."""
    OVERLONG_STRING = "overlong_string"
    """a text value longer than the column's nvarchar length."""
    INVALID_EMAIL = "invalid_email"
    """an e-mail address that is not syntactically valid."""


DEFAULT_RATES: Mapping[Defect, float] = {
    Defect.DUPLICATE_CUSTOMER: 0.04,
    Defect.ORPHAN_CONTACT: 0.03,
    Defect.OWNER_MISSING: 0.30,
    Defect.OWNER_FREE_TEXT: 0.10,
    Defect.DEPARTED_OWNER: 0.05,
    Defect.MIXED_ENCODING: 0.02,
    Defect.TEXT_DATE: 0.02,
    Defect.PLACEHOLDER_DATE: 0.05,
    Defect.FLOAT_NOISE: 0.05,
    Defect.PAYMENT_MISMATCH: 0.03,
    Defect.OVERLONG_STRING: 0.01,
    Defect.INVALID_EMAIL: 0.03,
}
"""Rates of the ``default`` profile: the share of eligible records that carry the defect."""

FORM_NOTES: Mapping[Defect, Mapping[str, str]] = {
    Defect.MIXED_ENCODING: {
        "sql": "the stored text is mojibake (MÃ¼ller for Müller)",
        "xlsx": "the cell text is mojibake (MÃ¼ller for Müller)",
        "csv": (
            "the listed cells are UTF-8 bytes inside a Windows-1252 file; decoded as "
            "Windows-1252 they read as mojibake, the same text as the other forms"
        ),
    },
    Defect.TEXT_DATE: {
        "sql": "not representable in a typed datetime column: the value is a normal datetime",
        "xlsx": "a text cell 'dd.mm.yyyy' (or 'dd.mm.yyyy hh:mm:ss') instead of a date cell",
        "csv": "written as 'yyyy-mm-dd hh:mm:ss' instead of the file's 'dd.mm.yyyy' format",
    },
    Defect.PLACEHOLDER_DATE: {
        "sql": "datetime 0001-01-01 00:00:00",
        "xlsx": "a text cell '0001-01-01' (Excel cannot hold dates before 1900)",
        "csv": "01.01.0001",
    },
}
"""How a form-specific defect shows in each export form; copied into the manifest."""


class DefectProfileError(ValueError):
    """A --defects value that is neither a profile name nor a readable rates file."""


@dataclass(frozen=True, slots=True)
class DefectProfile:
    """The rate of each defect class; a rate of 0 turns the class off."""

    name: str
    rates: Mapping[Defect, float] = field(default_factory=dict)

    def rate(self, defect: Defect) -> float:
        """The rate of ``defect`` (0.0 when off)."""
        return self.rates.get(defect, 0.0)

    @property
    def enabled(self) -> bool:
        """True if any defect class has a non-zero rate."""
        return any(rate > 0 for rate in self.rates.values())


def load_profile(spec: str) -> DefectProfile:
    """``none``, ``default``, or a TOML/JSON file of ``class = rate`` (missing classes are 0)."""
    if spec == "none":
        return DefectProfile("none", {})
    if spec == "default":
        return DefectProfile("default", dict(DEFAULT_RATES))
    path = Path(spec)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise DefectProfileError(
            f"--defects {spec!r}: not 'none' or 'default' and not a readable file ({error})"
        ) from error
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise DefectProfileError(f"{spec}: not valid {path.suffix or 'TOML'}: {error}") from error
    if not isinstance(data, dict):
        raise DefectProfileError(f"{spec}: expected a table of defect class = rate")
    known = {defect.value: defect for defect in Defect}
    rates: dict[Defect, float] = {}
    for key, value in data.items():
        if key not in known:
            raise DefectProfileError(
                f"{spec}: unknown defect class {key!r}; known: {', '.join(sorted(known))}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise DefectProfileError(f"{spec}: rate of {key} must be a number in 0..1")
        rates[known[key]] = float(value)
    return DefectProfile(path.name, rates)


class ManifestWriter:
    """Collects defect entries on disk (not in memory) and writes ``manifest.json`` at the end."""

    def __init__(self, path: Path, header: Mapping[str, object]) -> None:
        self._path = path
        self._header = dict(header)
        self._spool: dict[Defect, IO[str]] = {}
        self._counts: dict[Defect, int] = {defect: 0 for defect in Defect}

    def add(self, defect: Defect, table: str, code: int, column: str) -> None:
        """Record that ``table`` row ``code`` carries ``defect`` in ``column``."""
        spool = self._spool.get(defect)
        if spool is None:
            # stays open across add() calls; closed by close() or discard()
            spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
            self._spool[defect] = spool
        entry = {"table": table, "Code": code, "column": column}
        spool.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._counts[defect] += 1

    @property
    def counts(self) -> Mapping[Defect, int]:
        """Entries recorded so far per defect class."""
        return dict(self._counts)

    def close(self, form: str) -> None:
        """Write ``manifest.json`` for export ``form`` and drop the spool files."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        with self._path.open("w", encoding="utf-8") as out:
            header = {
                **self._header,
                "counts": {defect.value: self._counts[defect] for defect in Defect},
                "form_notes": {
                    defect.value: notes[form]
                    for defect, notes in FORM_NOTES.items()
                    if self._counts[defect]
                },
            }
            out.write(json.dumps(header, ensure_ascii=False, indent=1)[:-2])
            out.write(',\n "defects": {')
            for index, defect in enumerate(Defect):
                out.write(("," if index else "") + f'\n  "{defect.value}": [')
                spool = self._spool.get(defect)
                if spool is not None:
                    spool.seek(0)
                    for number, line in enumerate(spool):
                        out.write(("," if number else "") + "\n   " + line.rstrip("\n"))
                out.write("]")
            out.write("\n }\n}\n")
        self.discard()

    def discard(self) -> None:
        """Drop the spool files without writing the manifest."""
        for spool in self._spool.values():
            spool.close()
        self._spool.clear()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()
