"""Normalisation: from raw work4all values (SQL, CSV text, Excel cells) to canonical values."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from decimal import Decimal

import pytest

from producers.work4all.normalise import (
    BadValueError,
    CustomField,
    Normaliser,
    PlaceholderDateError,
    UnknownCountryError,
    parse_bool,
    parse_code,
    parse_country,
    parse_datetime,
    parse_float,
    parse_int,
    parse_money,
    parse_text,
    parse_title,
    repair_mojibake,
)
from producers.work4all.readers import RawValue, SourceRow


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (12.3, "12.30"),
        ("12,30", "12.30"),
        ("12,3", "12.30"),
        (Decimal("12.3"), "12.30"),
        (12, "12.00"),
        ("1.234,56", "1234.56"),
        ("1234,56", "1234.56"),
        ("1234.56", "1234.56"),
        ("1,234.56", "1234.56"),
        ("1.234.567,89", "1234567.89"),
        ("1.234,56 €", "1234.56"),
        ("1\u00a0234,56 EUR", "1234.56"),
        ("123,45-", "-123.45"),
        ("-123,45", "-123.45"),
        (48.7400016784668, "48.74"),
        (132.345, "132.35"),
        (2.675, "2.68"),
        ("0,005", "0.01"),
    ],
)
def test_money_is_a_decimal_rounded_half_up_to_cents_whatever_its_form(
    raw: RawValue, expected: str
) -> None:
    assert str(parse_money(raw)) == expected


def test_negative_zero_money_reads_as_plain_zero() -> None:
    assert str(parse_money("-0,00")) == "0.00"
    assert str(parse_money(-0.0)) == "0.00"


@pytest.mark.parametrize("raw", [None, "", "  ", "NULL"])
def test_empty_money_is_none(raw: RawValue) -> None:
    assert parse_money(raw) is None


@pytest.mark.parametrize("raw", ["abc", "12,3x", "1.2.3,4,5", float("nan"), True])
def test_a_non_numeric_amount_is_a_bad_value_naming_the_text(raw: RawValue) -> None:
    with pytest.raises(BadValueError, match="not a number"):
        parse_money(raw)


@pytest.mark.parametrize("raw", [0, 0.0, "0", "", None, "  ", "NULL"])
def test_zero_null_and_empty_keys_mean_no_reference(raw: RawValue) -> None:
    assert parse_code(raw) is None


@pytest.mark.parametrize("raw", [1139123046, "1139123046", 1139123046.0, " 1139123046 "])
def test_a_key_is_an_int_whatever_its_form(raw: RawValue) -> None:
    assert parse_code(raw) == 1139123046


def test_german_thousands_dots_in_whole_numbers_are_grouping() -> None:
    assert parse_int("16.725") == 16725
    assert parse_int("16725") == 16725
    assert parse_int(16725.0) == 16725


def test_a_fraction_in_a_whole_number_column_is_a_bad_value() -> None:
    with pytest.raises(BadValueError, match="whole number"):
        parse_int("12,5")


def test_floats_read_alike_from_sql_and_german_text() -> None:
    assert parse_float(19.0) == parse_float("19,0") == parse_float("19") == 19.0
    assert parse_float("48,7400016784668") == 48.7400016784668


@pytest.mark.parametrize("raw", [-1, 1, "-1", "1", True, "WAHR", "Wahr", "Ja", "true", -1.0])
def test_minus_one_and_its_spellings_are_true(raw: RawValue) -> None:
    assert parse_bool(raw) is True


@pytest.mark.parametrize("raw", [0, "0", False, "FALSCH", "Nein", "false", 0.0])
def test_zero_and_its_spellings_are_false(raw: RawValue) -> None:
    assert parse_bool(raw) is False


def test_an_empty_flag_is_none_and_a_two_is_a_bad_value() -> None:
    assert parse_bool("") is None
    assert parse_bool(None) is None
    with pytest.raises(BadValueError):
        parse_bool(2)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30.04.2024", datetime(2024, 4, 30)),
        ("30.04.2024 09:01:35", datetime(2024, 4, 30, 9, 1, 35)),
        ("30.04.2024 09:01", datetime(2024, 4, 30, 9, 1)),
        ("3.5.24", datetime(2024, 5, 3)),
        ("2024-04-30", datetime(2024, 4, 30)),
        ("2024-04-30 00:00:00", datetime(2024, 4, 30)),
        ("2021-11-17 09:03:22.117", datetime(2021, 11, 17, 9, 3, 22)),
        ("2021-11-17T09:03:22", datetime(2021, 11, 17, 9, 3, 22)),
        (datetime(2021, 11, 17, 9, 3, 22, 117000), datetime(2021, 11, 17, 9, 3, 22)),
        (datetime(2021, 11, 17, 9, 3, 21, 999999), datetime(2021, 11, 17, 9, 3, 22)),
        (date(2024, 4, 30), datetime(2024, 4, 30)),
        (44561, datetime(2021, 12, 31)),
        (44561.5, datetime(2021, 12, 31, 12)),
        ("44561", datetime(2021, 12, 31)),
        ("2026-02-12T23:00:00.000Z", datetime(2026, 2, 13)),
    ],
)
def test_dates_read_alike_from_sql_excel_iso_and_german_text(
    raw: RawValue, expected: datetime
) -> None:
    assert parse_datetime(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01",
        "0001-01-01 00:00:00",
        "01.01.0001",
        "00.00.0000",
        "1900-01-01",
        "30.12.1899",
        "31.12.1899",
        datetime(1, 1, 1),
        datetime(1899, 12, 30),
        0,
    ],
)
def test_placeholder_dates_mean_no_date(raw: RawValue) -> None:
    with pytest.raises(PlaceholderDateError, match="placeholder"):
        parse_datetime(raw)


@pytest.mark.parametrize("raw", ["31.02.2024", "soon", "2024-13-01", "Rückruf am 3.5."])
def test_text_that_is_no_date_is_a_bad_value(raw: RawValue) -> None:
    with pytest.raises(BadValueError, match="not a date"):
        parse_datetime(raw)


def test_empty_dates_are_none() -> None:
    assert parse_datetime("") is None
    assert parse_datetime(None) is None


def test_text_is_trimmed_nfc_with_unix_line_ends_and_empty_is_none() -> None:
    assert parse_text("  Müller \r\n") == "Müller"
    assert parse_text("Zeile 1\r\nZeile 2") == "Zeile 1\nZeile 2"
    assert parse_text(unicodedata.normalize("NFD", "Müller")) == "Müller"
    assert parse_text("") is None
    assert parse_text("   ") is None
    assert parse_text("NULL") is None


def test_numbers_in_text_columns_become_their_digits() -> None:
    assert parse_text(1067) == "1067"
    assert parse_text(1067.0) == "1067"


@pytest.mark.parametrize(
    ("raw", "iso"),
    [
        ("D", "DE"),
        ("DE", "DE"),
        ("d", "DE"),
        ("A", "AT"),
        ("CH", "CH"),
        ("FL", "LI"),
        ("NL", "NL"),
        ("Deutschland", "DE"),
        ("Österreich", "AT"),
        (" D ", "DE"),
    ],
)
def test_staat_becomes_iso_3166_alpha_2(raw: str, iso: str) -> None:
    assert parse_country(raw) == iso


def test_an_empty_staat_is_none_and_an_unknown_one_is_flagged() -> None:
    assert parse_country("") is None
    with pytest.raises(UnknownCountryError):
        parse_country("Atlantis")


def test_utf8_read_as_windows_1252_is_repaired_and_clean_text_left_alone() -> None:
    assert repair_mojibake("MÃ¼ller") == "Müller"
    assert repair_mojibake("StraÃŸe 5") == "Straße 5"
    assert repair_mojibake("Müller") is None
    assert repair_mojibake("Straße") is None


def test_a_combo_title_gives_its_label_and_options_by_index() -> None:
    label, options = parse_title("Akt vorhanden;;;0```Ja;;;1```Nein;;;2```Noch anlegen;;;")
    assert label == "Akt vorhanden"
    assert options == {"0": "Ja", "1": "Nein", "2": "Noch anlegen"}


def test_a_plain_title_is_only_a_label() -> None:
    assert parse_title("Branche") == ("Branche", {})


def _kunde(**raw: RawValue) -> SourceRow:
    return SourceRow("Kunden", 7, dict(raw))


def test_a_row_normalises_alike_from_sql_and_csv_values() -> None:
    normaliser = Normaliser()
    from_sql = _kunde(
        Code=1139123046,
        Nummer=10482,
        Name="Müller GmbH, Amberg",
        Staat="D",
        Kreditlimit=5000.0,
        Gesperrt=-1,
        KAnsprechpCode=0,
        Erstkontakt=datetime(2021, 11, 17, 9, 3, 22),
        Telefon="",
    )
    from_csv = _kunde(
        Code="1139123046",
        Nummer="10482",
        Name=" Müller GmbH, Amberg",
        Staat="D",
        Kreditlimit="5.000,00",
        Gesperrt="-1",
        KAnsprechpCode="",
        Erstkontakt="17.11.2021 09:03:22",
        Telefon=None,
    )
    sql = normaliser.record(from_sql, "work4all.db[Kunden]")
    csv = normaliser.record(from_csv, "Kunden.csv")
    assert sql.values == csv.values
    assert sql.key == 1139123046
    assert sql.values["Kreditlimit"] == Decimal("5000.00")
    assert sql.values["Staat"] == "DE"
    assert sql.values["Gesperrt"] is True
    assert sql.values["KAnsprechpCode"] is None
    assert sql.findings == csv.findings == ()


def test_a_bad_amount_is_a_finding_naming_file_row_and_column_and_the_row_is_kept() -> None:
    record = Normaliser().record(_kunde(Code=5, Kreditlimit="viel"), "Kunden.csv")
    assert record.key == 5
    assert record.values["Kreditlimit"] is None
    [finding] = record.findings
    assert (finding.file, finding.row, finding.column) == ("Kunden.csv", 7, "Kreditlimit")
    assert finding.severity == "error"
    assert str(finding) == "Kunden.csv, row 7, column 'Kreditlimit': not a number: 'viel'"


def test_a_placeholder_date_is_none_with_a_warning() -> None:
    record = Normaliser().record(_kunde(Code=5, Erstkontakt="01.01.0001"), "Kunden.csv")
    assert record.values["Erstkontakt"] is None
    assert [(f.kind, f.severity) for f in record.findings] == [("placeholder_date", "warning")]


def test_mojibake_is_repaired_with_an_encoding_finding() -> None:
    record = Normaliser().record(_kunde(Code=5, Firma1="MÃ¼ller GmbH"), "Kunden.csv")
    assert record.values["Firma1"] == "Müller GmbH"
    assert [f.kind for f in record.findings] == ["encoding"]


def test_an_overlong_text_is_kept_with_a_finding() -> None:
    record = Normaliser().record(_kunde(Code=5, Staat="D", Ort="x" * 51), "Kunden.csv")
    assert record.values["Ort"] == "x" * 51
    assert [(f.kind, f.column) for f in record.findings] == [("too_long", "Ort")]


def test_a_tables_own_key_zero_is_a_real_key() -> None:
    record = Normaliser().record(SourceRow("Anrede", 2, {"AnredeCode": 0}), "Anrede.csv")
    assert record.key == 0
    assert record.findings == ()


def test_a_row_without_key_is_flagged() -> None:
    record = Normaliser().record(_kunde(Code="", Name="x"), "Kunden.csv")
    assert record.key is None
    assert [(f.kind, f.severity) for f in record.findings] == [("missing_key", "error")]


def test_columns_the_specification_does_not_list_are_kept_as_trimmed_text() -> None:
    record = Normaliser().record(_kunde(Code=5, Unbekannt="  x  ", Tel=221), "Kunden.csv")
    assert record.values["Unbekannt"] == "x"
    assert record.values["Tel"] == "221"


def test_column_names_match_despite_transliteration() -> None:
    record = Normaliser().record(_kunde(Code=5, Strasse="Hauptstr. 5a"), "Kunden.csv")
    assert record.values["Straße"] == "Hauptstr. 5a"


def test_custom_fields_are_labelled_by_their_definition_and_combos_resolved() -> None:
    combo = CustomField(1032893, "Kunden", 1, "Combo", "Akt vorhanden", {"1": "Ja", "2": "Nein"})
    check = CustomField(1032894, "Kunden", 2, "Check", "Newsletter")
    normaliser = Normaliser(custom_fields=[combo, check])
    record = normaliser.record(_kunde(Code=5, Feld1="2", Feld2="-1"), "Kunden.csv")
    assert record.custom["Feld1"].label == "Akt vorhanden"
    assert record.custom["Feld1"].value == "Nein"
    assert record.custom["Feld2"].value is True
    assert record.custom["Feld2"].definition == 1032894
    same_as_text = normaliser.record(_kunde(Code=5, Feld1="Nein"), "Kunden.csv")
    assert same_as_text.custom["Feld1"].value == "Nein"


def test_a_custom_field_beyond_the_specification_is_read_as_text() -> None:
    extra = CustomField(77, "Kunden", 9, "Text", "Branche")
    record = Normaliser(custom_fields=[extra]).record(_kunde(Code=5, Feld9=" Bau "), "K.csv")
    assert record.custom["Feld9"].value == "Bau"


def test_a_combo_value_that_is_no_option_is_kept_with_a_finding() -> None:
    combo = CustomField(1, "Kunden", 1, "Combo", "Akt vorhanden", {"1": "Ja"})
    record = Normaliser(custom_fields=[combo]).record(_kunde(Code=5, Feld1="7"), "Kunden.csv")
    assert record.custom["Feld1"].value == "7"
    assert [f.kind for f in record.findings] == ["bad_custom_value"]
