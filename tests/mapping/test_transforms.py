"""The built-in transforms: typical, edge and invalid source values."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pytest

from producers.mapping import rules
from producers.mapping.transforms import (
    REASONS,
    TRANSFORMS,
    Bind,
    FileRef,
    Outcome,
    reason_code,
    rtf_to_text,
)


class StubContext:
    """Records resolve to ``/<object>(<key>)``; users 1 and 2 exist, 2 has left."""

    def __init__(self, *, fallback: bool = True) -> None:
        self.records = {
            ("customers", 7): Bind("accounts", "c7"),
            ("suppliers", 8): Bind("accounts", "s8"),
        }
        self.fallback = fallback
        self.asked: list[tuple[str, Any]] = []

    def resolve(self, object_name: str, source_key: Any) -> Bind | None:
        self.asked.append((object_name, source_key))
        return self.records.get((object_name, source_key))

    def owner(self, user_code: Any) -> tuple[Bind | None, list[str]]:
        if user_code == 1:
            return Bind("systemusers", "u1"), []
        if user_code == 2:
            return Bind("systemusers", "fallback"), ["owner_departed: Mitarbeiter 2 has left"]
        if self.fallback:
            return Bind("systemusers", "fallback"), [f"owner_unmatched: {user_code!r}"]
        return None, []

    def setting(self, name: str) -> Any:
        return None


def run(name: str, values: Sequence[Any], params: Mapping[str, Any] | None = None,
        context: StubContext | None = None) -> Outcome:  # fmt: skip
    return TRANSFORMS[name](values, params or {}, context or StubContext())


def codes(outcome: Outcome) -> list[str]:
    """The reason codes of an outcome's notes and error, in order."""
    found = [reason_code(text) for text in outcome.notes]
    return [*found, reason_code(outcome.error)] if outcome.error else found


# --- registry and reasons -------------------------------------------------------------------


def test_every_required_transform_is_registered() -> None:
    wanted = {
        "copy", "constant", "text", "truncate", "decimal", "date", "datetime", "dateonly",
        "country", "salutation", "optionset", "opportunity_stage", "lookup", "owner", "concat",
        "email", "phone", "url", "boolean", "integer", "html_from_rtf", "money",
    }  # fmt: skip
    assert wanted <= set(TRANSFORMS)


def test_the_reason_codes_of_the_stage_are_listed_too() -> None:
    stage_codes = {
        value
        for name, value in vars(rules).items()
        if name.isupper()
        and isinstance(value, str)
        and not name.endswith("_KEY")
        and re.fullmatch(r"[a-z]+(_[a-z]+)*", value)
    }
    assert stage_codes
    assert stage_codes <= set(REASONS)


def test_reason_codes_are_snake_case_and_described() -> None:
    for code, description in REASONS.items():
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", code)
        assert description


@pytest.mark.parametrize(
    ("name", "values", "params"),
    [
        ("text", ["x" * 30], {"max_length": 10}),
        ("truncate", ["x" * 30], {"max_length": 10}),
        ("decimal", ["abc"], {}),
        ("datetime", ["01.01.0001"], {}),
        ("datetime", ["kein Datum"], {}),
        ("country", ["Atlantis"], {}),
        ("salutation", [99, None], {"part": "gendercode"}),
        ("optionset", ["x"], {"mapping": {"a": 1}}),
        ("optionset", ["x"], {"mapping": {"a": 1}, "default": 1}),
        ("lookup", [99], {"object": "customers"}),
        ("lookup", [5, 7], {"objects": {"1": "customers"}}),
        ("owner", [99], {}),
        ("email", ["nicht-mail"], {}),
        ("email", ["a@b.de; c@d.de"], {}),
        ("phone", ["ruft zurück"], {}),
        ("url", ["www.example.de"], {}),
        ("url", ["kein url"], {}),
        ("boolean", ["vielleicht"], {}),
        ("integer", [1.5], {}),
        ("integer", [500], {"max": 100}),
        ("source_key", [None], {"table": "Kunden"}),
        ("discount_amount", [1, 10, 12], {}),
        ("duration_minutes", [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 9)], {}),
        ("file", ["big.pdf", 10_000_000], {"folder": "f"}),
        ("money", [48.7400016784668], {}),
        ("text", [None], {"default": "x"}),
        ("text", ["x"], {"max_length": "zehn"}),
    ],
)
def test_every_reason_code_a_transform_writes_is_listed(
    name: str, values: list[Any], params: dict[str, Any]
) -> None:
    outcome = run(name, values, params, StubContext(fallback=False))
    assert codes(outcome)
    assert set(codes(outcome)) <= set(REASONS)


# --- text, truncate, concat, template ---------------------------------------------------------


def test_text_trims_and_collapses_whitespace() -> None:
    assert run("text", ["  Müller \t GmbH\n & Co.  "]).value == "Müller GmbH & Co."


def test_text_takes_the_first_set_source() -> None:
    assert run("text", [None, "  ", "zweite"]).value == "zweite"


def test_text_of_nothing_is_none_and_not_an_error() -> None:
    outcome = run("text", [None, ""])
    assert outcome.value is None
    assert outcome.error is None
    assert outcome.notes == []


def test_text_turns_numbers_into_text() -> None:
    assert run("text", [16725]).value == "16725"


def test_multiline_text_keeps_line_breaks_but_not_runs_of_blank_lines() -> None:
    value = run("text", ["Zeile 1  \r\n  Zeile   2\n\n\n\nAbsatz"], {"multiline": True}).value
    assert value == "Zeile 1\nZeile 2\n\nAbsatz"


def test_text_longer_than_max_length_is_an_error_naming_both_lengths() -> None:
    outcome = run("text", ["x" * 25], {"max_length": 20})
    assert outcome.value is None
    assert outcome.error == "too_long: 25 characters, the column takes 20"


def test_text_exactly_max_length_passes() -> None:
    assert run("text", ["x" * 20], {"max_length": 20}).value == "x" * 20


def test_text_with_truncate_cuts_and_notes() -> None:
    outcome = run("text", ["abcdefghij"], {"max_length": 4, "truncate": True})
    assert outcome.value == "abcd"
    assert codes(outcome) == ["truncated"]


def test_text_default_fills_an_empty_value_with_a_note() -> None:
    outcome = run("text", [None], {"default": "Telefonat"})
    assert outcome.value == "Telefonat"
    assert codes(outcome) == ["defaulted"]


def test_truncate_names_the_original_length() -> None:
    outcome = run("truncate", ["x" * 150], {"max_length": 100})
    assert outcome.value == "x" * 100
    assert outcome.notes == ["truncated: 150 characters cut to 100"]


def test_truncate_leaves_short_text_alone_without_note() -> None:
    outcome = run("truncate", ["kurz"], {"max_length": 100})
    assert (outcome.value, outcome.notes) == ("kurz", [])


def test_truncate_without_max_length_is_a_parameter_error() -> None:
    assert codes(run("truncate", ["x"])) == ["invalid_params"]


def test_concat_skips_empty_values() -> None:
    outcome = run("concat", ["Müller GmbH", None, "  ", "Werk 2"], {"separator": " - "})
    assert outcome.value == "Müller GmbH - Werk 2"


def test_concat_of_only_empty_values_is_none() -> None:
    assert run("concat", [None, ""]).value is None


def test_concat_respects_max_length() -> None:
    assert codes(run("concat", ["a" * 10, "b" * 10], {"max_length": 15})) == ["too_long"]


def test_template_fills_the_values_in() -> None:
    assert run("template", [220449], {"template": "Angebot {0}"}).value == "Angebot 220449"


def test_template_with_all_values_empty_is_none() -> None:
    assert run("template", [None], {"template": "Angebot {0}"}).value is None


def test_template_that_names_a_missing_source_is_a_parameter_error() -> None:
    assert codes(run("template", [1], {"template": "{0} {1}"})) == ["invalid_params"]


# --- numbers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1.234,56", Decimal("1234.56")), (12, Decimal(12)), (Decimal("0.5"), Decimal("0.5")),
     ("19,0", Decimal("19.0")), (2.5, Decimal("2.5"))],
)  # fmt: skip
def test_decimal_reads_numbers_and_german_text(value: Any, expected: Decimal) -> None:
    assert run("decimal", [value]).value == expected


def test_decimal_with_places_rounds_half_up_and_notes() -> None:
    outcome = run("decimal", ["2,125"], {"places": 2})
    assert outcome.value == Decimal("2.13")
    assert codes(outcome) == ["rounded"]


def test_decimal_rejects_text_that_is_no_number() -> None:
    outcome = run("decimal", ["zwölf"])
    assert outcome.value is None
    assert outcome.error == "invalid_number: 'zwölf' is not a number"


def test_decimal_rejects_a_flag() -> None:
    assert codes(run("decimal", [True])) == ["invalid_number"]


def test_decimal_outside_its_bounds_is_out_of_range() -> None:
    assert codes(run("decimal", [101], {"max": 100})) == ["out_of_range"]
    assert codes(run("decimal", [-1], {"min": 0})) == ["out_of_range"]


def test_money_removes_float_noise_with_a_note() -> None:
    outcome = run("money", [48.7400016784668])
    assert outcome.value == Decimal("48.74")
    assert outcome.notes == ["rounded: 48.7400016784668 rounded to 48.74"]


def test_money_already_in_cents_has_no_note() -> None:
    outcome = run("money", [Decimal("691.96")])
    assert (outcome.value, outcome.notes) == (Decimal("691.96"), [])


def test_money_reads_german_negative_amounts() -> None:
    assert run("money", ["123,45-"]).value == Decimal("-123.45")


def test_money_of_minus_zero_is_zero() -> None:
    assert str(run("money", [-0.001]).value) == "0.00"


def test_integer_reads_whole_numbers() -> None:
    assert run("integer", ["1.234"]).value == 1234
    assert run("integer", [Decimal("30.0")]).value == 30


def test_integer_rejects_fractions() -> None:
    assert run("integer", [2.5]).error == "invalid_number: 2.5 is not a whole number"


def test_sum_subtracts_by_sign() -> None:
    outcome = run("sum", [Decimal("581.48"), Decimal("110.48"), Decimal("500.00")],
                  {"signs": [1, 1, -1]})  # fmt: skip
    assert outcome.value == Decimal("191.96")


def test_sum_counts_empty_values_as_zero_but_all_empty_is_none() -> None:
    assert run("sum", [Decimal("10.00"), None]).value == Decimal("10.00")
    assert run("sum", [None, None]).value is None


def test_sum_with_a_sign_per_source_missing_is_a_parameter_error() -> None:
    assert codes(run("sum", [1, 2], {"signs": [1]})) == ["invalid_params"]


def test_discount_amount_reproduces_the_line_total() -> None:
    outcome = run("discount_amount", [3.0, Decimal("100.00"), Decimal("270.00")])
    assert outcome.value == Decimal("30.00")


def test_discount_amount_ignores_the_half_cent_of_a_rounded_line_total() -> None:
    assert run("discount_amount", [0.5, Decimal("94.11"), Decimal("47.06")]).value == Decimal(
        "0.00"
    )


def test_discount_amount_of_a_surcharge_is_an_error() -> None:
    assert codes(run("discount_amount", [1.0, Decimal(10), Decimal(12)])) == ["invalid_discount"]
    assert codes(run("discount_amount", [1.0, Decimal(10), Decimal("10.01")])) == [
        "invalid_discount"
    ]


def test_discount_amount_with_an_empty_value_is_none() -> None:
    assert run("discount_amount", [None, Decimal(10), Decimal(10)]).value is None


# --- dates ------------------------------------------------------------------------------------


def test_datetime_is_utc_text_from_german_local_time_in_summer() -> None:
    assert run("datetime", [datetime(2024, 7, 1, 9, 1, 35)]).value == "2024-07-01T07:01:35Z"


def test_datetime_is_utc_text_from_german_local_time_in_winter() -> None:
    assert run("datetime", [datetime(2024, 1, 15, 0, 0)]).value == "2024-01-14T23:00:00Z"


def test_datetime_reads_german_text() -> None:
    assert run("datetime", ["30.04.2024 09:01"]).value == "2024-04-30T07:01:00Z"


def test_datetime_takes_a_timezone_parameter() -> None:
    assert run("datetime", [datetime(2024, 1, 1, 12)], {"timezone": "UTC"}).value == (
        "2024-01-01T12:00:00Z"
    )


def test_datetime_with_an_unknown_timezone_is_a_parameter_error() -> None:
    assert codes(run("datetime", [datetime(2024, 1, 1)], {"timezone": "Mars/Olympus"})) == [
        "invalid_params"
    ]


@pytest.mark.parametrize("placeholder", ["0001-01-01", "01.01.0001", "30.12.1899", date(1, 1, 1)])
def test_placeholder_dates_become_none_with_a_note(placeholder: Any) -> None:
    outcome = run("datetime", [placeholder])
    assert outcome.value is None
    assert outcome.error is None
    assert codes(outcome) == ["placeholder_date"]


def test_a_placeholder_falls_back_to_no_date_not_to_the_next_source() -> None:
    # the first set value decides; a placeholder there means "no date", honestly noted
    assert run("datetime", ["01.01.0001", datetime(2024, 1, 1)]).value is None


def test_datetime_of_text_that_is_no_date_is_an_error() -> None:
    assert run("datetime", ["nächste Woche"]).error == "invalid_date: 'nächste Woche' is not a date"


def test_dates_before_1753_are_out_of_range_for_dataverse() -> None:
    assert codes(run("datetime", [datetime(1700, 5, 1)])) == ["out_of_range"]


def test_dateonly_drops_the_time_of_day_without_shifting_the_day() -> None:
    assert run("dateonly", [datetime(2024, 4, 30, 0, 0)]).value == "2024-04-30"
    assert run("date", ["30.04.2024"]).value == "2024-04-30"


def test_dateonly_accepts_a_date() -> None:
    assert run("dateonly", [date(1970, 2, 28)]).value == "1970-02-28"


def test_duration_minutes_between_start_and_end() -> None:
    start, end = datetime(2024, 1, 1, 9, 0), datetime(2024, 1, 1, 10, 30)
    assert run("duration_minutes", [start, end]).value == 90


def test_duration_minutes_without_an_end_is_none() -> None:
    assert run("duration_minutes", [datetime(2024, 1, 1), None]).value is None


def test_duration_minutes_of_an_end_before_the_start_is_an_error() -> None:
    outcome = run("duration_minutes", [datetime(2024, 1, 1, 10), datetime(2024, 1, 1, 9)])
    assert codes(outcome) == ["invalid_duration"]


# --- country, salutation, options -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "iso"), [("D", "DE"), ("A", "AT"), ("Schweiz", "CH"), ("DE", "DE")]
)
def test_country_becomes_iso_alpha_2(value: str, iso: str) -> None:
    assert run("country", [value]).value == iso


def test_unknown_country_is_left_empty_with_a_note() -> None:
    outcome = run("country", ["Atlantis"])
    assert outcome.value is None
    assert outcome.error is None
    assert codes(outcome) == ["unknown_country"]


@pytest.mark.parametrize(
    ("anrede", "letter", "gender", "salutation"),
    [
        (1, None, 1, "Herr"),
        (2, None, 2, "Frau"),
        (3, None, None, None),
        ("Herr Dr.", None, 1, "Herr Dr."),
        ("Frau Prof.", None, 2, "Frau Prof."),
        ("Firma", None, None, None),
        (None, "Sehr geehrte Frau Meier,", 2, None),
        (4, "Sehr geehrter Herr Meier,", 1, "Familie"),
        (None, "Sehr geehrte Damen und Herren,", None, None),
    ],
)
def test_salutation_gives_gender_and_salutation(
    anrede: Any, letter: str | None, gender: int | None, salutation: str | None
) -> None:
    assert run("salutation", [anrede, letter], {"part": "gendercode"}).value == gender
    assert run("salutation", [anrede, letter], {"part": "salutation"}).value == salutation


def test_salutation_uses_the_installations_anrede_codes() -> None:
    params = {"part": "gendercode", "codes": {"17": "Frau Dr.", "1": "Herr"}}
    assert run("salutation", [17, None], params).value == 2


def test_salutation_of_an_unknown_code_notes_it() -> None:
    outcome = run("salutation", [99, None], {"part": "salutation"})
    assert outcome.value is None
    assert codes(outcome) == ["unknown_salutation"]


def test_salutation_without_part_is_a_parameter_error() -> None:
    assert codes(run("salutation", [1])) == ["invalid_params"]


def test_optionset_maps_source_values() -> None:
    params = {"mapping": {"true": 1, "false": 0}}
    assert run("optionset", [True], params).value == 1
    assert run("optionset", [False], params).value == 0


def test_optionset_keys_match_as_text_whatever_their_yaml_type() -> None:
    assert run("optionset", [2], {"mapping": {"2": 20}}).value == 20
    assert run("optionset", ["herr"], {"mapping": {"Herr": 1}}).value == 1
    assert run("optionset", [2.0], {"mapping": {2: 20}}).value == 20


def test_optionset_unknown_value_is_an_error_without_default() -> None:
    outcome = run("optionset", [7], {"mapping": {"0": 0, "1": 1}})
    assert outcome.value is None
    assert outcome.error == "unknown_option: 7 is not one of ['0', '1']"


def test_optionset_unknown_value_takes_the_default_with_a_note() -> None:
    outcome = run("optionset", [7], {"mapping": {"0": 0}, "default": 1})
    assert outcome.value == 1
    assert codes(outcome) == ["option_defaulted"]


def test_optionset_empty_value_gives_the_empty_option() -> None:
    assert run("optionset", [None], {"mapping": {"true": 1}, "empty": 0}).value == 0
    assert run("optionset", [None], {"mapping": {"true": 1}}).value is None


def test_optionset_without_mapping_is_a_parameter_error() -> None:
    assert codes(run("optionset", [1])) == ["invalid_params"]


def opportunity(status: Any, percent: Any) -> dict[str, Any]:
    parts = ("salesstage", "stepname", "closeprobability", "statecode", "statuscode")
    return {part: run("opportunity_stage", [status, percent], {"part": part}).value
            for part in parts}  # fmt: skip


def test_open_opportunity_stage_follows_its_probability() -> None:
    expected = {"salesstage": 0, "stepname": "1-Qualify", "closeprobability": 10}
    assert opportunity(0, 10) == expected | {"statecode": 0, "statuscode": 1}
    assert opportunity(0, 25)["salesstage"] == 1
    assert opportunity(0, 50)["stepname"] == "3-Propose"
    assert opportunity(0, 75)["salesstage"] == 3


def test_won_opportunity_is_closed_at_full_probability() -> None:
    expected = {"salesstage": 3, "stepname": "4-Close", "closeprobability": 100}
    assert opportunity(1, 80) == expected | {"statecode": 1, "statuscode": 3}


def test_lost_opportunity_is_closed_at_zero_probability() -> None:
    found = opportunity(2, 50)
    assert (found["closeprobability"], found["statecode"], found["statuscode"]) == (0, 2, 4)


def test_opportunity_probability_over_100_is_clamped_with_a_note() -> None:
    outcome = run("opportunity_stage", [0, 150], {"part": "closeprobability"})
    assert outcome.value == 100
    assert codes(outcome) == ["out_of_range"]


def test_opportunity_with_an_unknown_status_is_an_error() -> None:
    assert codes(run("opportunity_stage", [9, 50], {"part": "statecode"})) == ["unknown_option"]


def test_opportunity_statuses_can_be_remapped() -> None:
    params = {"part": "statecode", "statuses": {"9": "won"}}
    assert run("opportunity_stage", [9, 50], params).value == 1


# --- lookups and owners -----------------------------------------------------------------------


def test_lookup_resolves_through_the_context() -> None:
    context = StubContext()
    outcome = run("lookup", [7], {"object": "customers"}, context)
    assert outcome.value == Bind("accounts", "c7")
    assert context.asked == [("customers", 7)]


def test_lookup_of_an_empty_link_is_none_without_asking() -> None:
    context = StubContext()
    assert run("lookup", [None], {"object": "customers"}, context).value is None
    assert context.asked == []


def test_lookup_of_a_record_not_migrated_names_object_and_key() -> None:
    outcome = run("lookup", [99], {"object": "customers"})
    assert outcome.error == "lookup_unresolved: customers has no migrated record for key 99"


def test_polymorphic_lookup_picks_the_object_by_type() -> None:
    params = {"objects": {"1": "customers", "0": "suppliers"}}
    assert run("lookup", [1, 7], params).value == Bind("accounts", "c7")
    assert run("lookup", [0, 8], params).value == Bind("accounts", "s8")


def test_polymorphic_lookup_of_an_unknown_type_is_an_error() -> None:
    outcome = run("lookup", [2, 7], {"objects": {"1": "customers"}})
    assert codes(outcome) == ["lookup_type_unknown"]


def test_lookup_needs_object_or_objects() -> None:
    assert codes(run("lookup", [1], {})) == ["invalid_params"]


def test_owner_binds_the_user() -> None:
    outcome = run("owner", [1])
    assert (outcome.value, outcome.notes) == (Bind("systemusers", "u1"), [])


def test_owner_passes_the_contexts_notes_on() -> None:
    outcome = run("owner", [2])
    assert outcome.value == Bind("systemusers", "fallback")
    assert codes(outcome) == ["owner_departed"]


def test_owner_without_code_asks_for_the_fallback() -> None:
    outcome = run("owner", [])
    assert outcome.value == Bind("systemusers", "fallback")
    assert codes(outcome) == ["owner_unmatched"]


def test_owner_without_match_or_fallback_is_an_error() -> None:
    outcome = run("owner", [55], context=StubContext(fallback=False))
    assert outcome.value is None
    assert codes(outcome) == ["owner_unresolved"]


def test_source_key_is_table_and_code() -> None:
    assert run("source_key", [1739201], {"table": "Kunden"}).value == "Kunden:1739201"


def test_source_key_without_table_is_a_parameter_error() -> None:
    assert codes(run("source_key", [1])) == ["invalid_params"]


# --- contact data -----------------------------------------------------------------------------


def test_email_is_trimmed() -> None:
    assert run("email", ["  info@mueller-fenster.de "]).value == "info@mueller-fenster.de"


@pytest.mark.parametrize("bad", ["info@mueller", "info(at)mueller.de", "@mueller.de", "a b@c.de"])
def test_invalid_email_is_an_error_with_the_value(bad: str) -> None:
    outcome = run("email", [bad])
    assert outcome.value is None
    assert outcome.error is not None
    assert outcome.error.startswith("invalid_email: ")


def test_email_error_quotes_the_value() -> None:
    assert (
        run("email", ["info@mueller"]).error
        == "invalid_email: 'info@mueller' is not an e-mail address"
    )


def test_email_drops_mailto() -> None:
    assert run("email", ["mailto:a@b.de"]).value == "a@b.de"


def test_email_of_several_keeps_the_first_valid_with_a_note() -> None:
    outcome = run("email", ["kaputt; a@b.de, c@d.de"])
    assert outcome.value == "a@b.de"
    assert codes(outcome) == ["multiple_values"]


def test_email_too_long_for_the_column_is_an_error() -> None:
    address = "a" * 95 + "@b.de"
    assert codes(run("email", [address], {"max_length": 50})) == ["too_long"]


@pytest.mark.parametrize(
    "number", ["+49-2234-12345", "09621 4711-12", "(0171) 123 45 67", "0621/12.34"]
)
def test_phone_keeps_its_format(number: str) -> None:
    assert run("phone", [number]).value == number


def test_phone_collapses_whitespace() -> None:
    assert run("phone", ["  0171   1234 "]).value == "0171 1234"


@pytest.mark.parametrize("bad", ["Rückruf erbeten", "12", "0171 123 (privat)"])
def test_phone_with_words_or_too_few_digits_is_an_error(bad: str) -> None:
    assert codes(run("phone", [bad])) == ["invalid_phone"]


def test_url_keeps_a_full_address() -> None:
    outcome = run("url", ["https://www.mueller-fenster.de/kontakt"])
    assert (outcome.value, outcome.notes) == ("https://www.mueller-fenster.de/kontakt", [])


def test_url_without_scheme_gets_http_with_a_note() -> None:
    outcome = run("url", ["www.mueller-fenster.de"])
    assert outcome.value == "http://www.mueller-fenster.de"
    assert codes(outcome) == ["url_scheme_added"]


@pytest.mark.parametrize("bad", ["keine Webseite", "localhost", "ftp://files.example.de", "www."])
def test_invalid_url_is_an_error(bad: str) -> None:
    assert codes(run("url", [bad])) == ["invalid_url"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(-1, True), (1, True), (0, False), (True, True), ("Ja", True), ("WAHR", True),
     ("nein", False), (None, None)],
)  # fmt: skip
def test_boolean_reads_work4all_flags(value: Any, expected: bool | None) -> None:
    assert run("boolean", [value]).value is expected


def test_boolean_invert() -> None:
    assert run("boolean", [-1], {"invert": True}).value is False


def test_boolean_of_something_else_is_an_error() -> None:
    assert codes(run("boolean", [5])) == ["invalid_boolean"]


def test_is_set_tells_whether_a_link_exists() -> None:
    assert run("is_set", [1234]).value is True
    assert run("is_set", [None]).value is False
    assert run("is_set", [None], {"invert": True}).value is True
    assert run("is_set", [1234], {"invert": True}).value is False


# --- files and notes --------------------------------------------------------------------------


def test_mimetype_by_extension() -> None:
    assert run("mimetype", ["Aufmaß Küche.pdf"]).value == "application/pdf"
    assert run("mimetype", ["notiz.txt"]).value == "text/plain"
    assert run("mimetype", ["ohne_endung"]).value == "application/octet-stream"


def test_file_refers_to_the_file_store() -> None:
    outcome = run("file", ["123_rueckruf.txt", 120], {"folder": "CRMAttachements/M001"})
    assert outcome.value == FileRef("CRMAttachements/M001/123_rueckruf.txt", 120)


def test_file_too_large_once_base64_encoded_is_an_error() -> None:
    # 3,900,000 bytes are 5,200,000 in Base64: under the limit; 4,000,000 bytes are over it
    assert run("file", ["a.pdf", 3_900_000], {"max_bytes": 5_242_880}).error is None
    assert codes(run("file", ["a.pdf", 4_000_000], {"max_bytes": 5_242_880})) == [
        "attachment_too_large"
    ]


RTF = (
    r"{\rtf1\ansi\ansicpg1252\deff0\nouicompat\deflang1031{\fonttbl{\f0\fnil\fcharset0 Calibri;}}"
    r"{\colortbl ;\red255\green0\blue0;}{\*\generator Riched20 10.0.19041}\viewkind4\uc1"
    "\r\n"
    r"\pard\sa200\sl276\slmult1\f0\fs22\lang7 Kunde w\'fcnscht R\'fcckruf\par"
    "\r\n"
    r"Ma\'dfe: 3 \u8364? \{netto\}\line zweite Zeile\par"
    "\r\n}"
)


def test_rtf_to_text_keeps_words_and_umlauts_and_drops_tables() -> None:
    assert rtf_to_text(RTF).split("\n\n")[:2] == [
        "Kunde wünscht Rückruf",
        "Maße: 3 € {netto}\nzweite Zeile",
    ]


def test_html_from_rtf_makes_paragraphs() -> None:
    assert run("html_from_rtf", [RTF]).value == (
        "<p>Kunde wünscht Rückruf</p><p>Maße: 3 € {netto}<br>zweite Zeile</p>"
    )


def test_html_from_plain_text_escapes_markup() -> None:
    value = run("html_from_rtf", ["Preis < 100 & >50\nZeile 2\n\nAbsatz <b>"]).value
    assert value == "<p>Preis &lt; 100 &amp; &gt;50<br>Zeile 2</p><p>Absatz &lt;b&gt;</p>"


def test_html_from_empty_rtf_is_none() -> None:
    assert run("html_from_rtf", [r"{\rtf1\ansi{\fonttbl{\f0 Arial;}}}"]).value is None


def test_html_too_long_drops_whole_paragraphs_with_a_note() -> None:
    outcome = run("html_from_rtf", ["eins\n\nzwei\n\ndrei"], {"max_length": 25, "truncate": True})
    assert outcome.value == "<p>eins</p><p>zwei</p>"
    assert codes(outcome) == ["truncated"]


def test_html_too_long_without_truncate_is_an_error() -> None:
    assert codes(run("html_from_rtf", ["x" * 50], {"max_length": 10})) == ["too_long"]


def test_copy_and_constant_are_unchanged() -> None:
    assert run("copy", [5, 6]).value == 5
    assert run("constant", [5], {"value": 3}).value == 3
