"""lib.values: Odoo <-> JSON conversion per field type, query values, JSON helpers."""

import base64
import datetime
import json
import math
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lib import values
from lib.errors import SyncError
from lib.values import dumps, from_json, json_depth, parse_query_value, to_json

D = datetime.date
DT = datetime.datetime


def _error(ttype, value, **kwargs):
    kwargs.setdefault("label", "Phone")
    kwargs.setdefault("line_id", 42)
    with pytest.raises(SyncError) as info:
        from_json(ttype, value, **kwargs)
    err = info.value
    assert err.status == 400
    assert err.line_id == kwargs["line_id"]
    assert f"Field '{kwargs['label']}'" in err.message
    return err.message


def _query_error(ttype, raw, operator="=", key="qty"):
    with pytest.raises(SyncError) as info:
        parse_query_value(ttype, raw, operator, key=key)
    assert info.value.status == 400
    assert info.value.message.startswith(f"Query parameter '{key}': ")
    return info.value.message


class FakeRecord:
    """Just enough of a recordset for the duck-typed paths."""

    def __init__(self, model, *ids):
        self._name = model
        self.ids = list(ids)
        self.id = ids[0] if len(ids) == 1 else False


# ---------------------------------------------------------------------------
# to_json
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("ttype", ["char", "text", "html", "selection"])
def test_to_json_strings(ttype):
    assert to_json(ttype, "héllo") == "héllo"
    assert type(to_json(ttype, "x")) is str
    for empty in (False, None, ""):
        assert to_json(ttype, empty) is None


def test_to_json_html_markup_subclass_becomes_plain_str():
    class Markup(str):
        pass

    out = to_json("html", Markup("<p>x</p>"))
    assert out == "<p>x</p>" and type(out) is str


@pytest.mark.parametrize("ttype", ["integer", "float", "monetary"])
def test_to_json_numbers_keep_their_type(ttype):
    assert to_json(ttype, 0) == 0 and type(to_json(ttype, 0)) is int
    assert to_json(ttype, 7) == 7 and type(to_json(ttype, 7)) is int
    assert to_json(ttype, 0.0) == 0.0 and type(to_json(ttype, 0.0)) is float
    assert to_json(ttype, 1.5) == 1.5 and type(to_json(ttype, 1.5)) is float
    assert to_json(ttype, False) is None
    assert to_json(ttype, None) is None


def test_to_json_numbers_non_finite_and_decimal():
    assert to_json("float", float("nan")) is None
    assert to_json("float", float("inf")) is None
    assert to_json("monetary", Decimal("12.50")) == 12.5
    assert to_json("monetary", Decimal("12.00")) == 12
    assert type(to_json("monetary", Decimal("12.00"))) is int
    assert to_json("float", Decimal("NaN")) is None


def test_to_json_boolean():
    assert to_json("boolean", True) is True
    assert to_json("boolean", False) is False
    assert to_json("boolean", None) is False


def test_to_json_date():
    assert to_json("date", D(2024, 5, 1)) == "2024-05-01"
    assert to_json("date", D(5, 1, 2)) == "0005-01-02"
    assert to_json("date", DT(2024, 5, 1, 23, 59)) == "2024-05-01"
    assert to_json("date", "2024-05-01") == "2024-05-01"
    assert to_json("date", False) is None


def test_to_json_datetime():
    assert to_json("datetime", DT(2024, 5, 1, 10, 0, 0)) == "2024-05-01T10:00:00Z"
    assert to_json("datetime", DT(2024, 5, 1, 10, 0, 0, 999999)) == "2024-05-01T10:00:00Z"
    assert to_json("datetime", DT(999, 1, 1)) == "0999-01-01T00:00:00Z"
    assert to_json("datetime", D(2024, 5, 1)) == "2024-05-01T00:00:00Z"
    assert to_json("datetime", "2024-05-01 10:00:00") == "2024-05-01T10:00:00Z"
    assert to_json("datetime", False) is None


def test_to_json_datetime_aware_is_converted_to_utc():
    tz = datetime.timezone(datetime.timedelta(hours=3))
    assert to_json("datetime", DT(2024, 5, 1, 10, 0, tzinfo=tz)) == "2024-05-01T07:00:00Z"


@pytest.mark.parametrize("ttype", ["many2one", "many2one_reference"])
def test_to_json_ids(ttype):
    assert to_json(ttype, 5) == 5
    assert to_json(ttype, False) is None
    assert to_json(ttype, None) is None


def test_to_json_many2one_read_pair_and_record():
    assert to_json("many2one", (5, "Azure Interior")) == 5
    assert to_json("many2one", FakeRecord("res.partner", 9)) == 9
    assert to_json("many2one", FakeRecord("res.partner")) is None


@pytest.mark.parametrize("ttype", ["one2many", "many2many"])
def test_to_json_x2many(ttype):
    assert to_json(ttype, [3, 1, 2]) == [3, 1, 2]
    assert to_json(ttype, (3,)) == [3]
    assert to_json(ttype, []) == []
    assert to_json(ttype, FakeRecord("res.partner.category", 4, 5)) == [4, 5]
    assert to_json(ttype, False) is None


def test_to_json_binary_never_double_encodes():
    b64 = base64.b64encode(b"\x00\xffimage").decode()
    assert to_json("binary", b64.encode()) == b64
    assert to_json("binary", b64) == b64
    assert to_json("binary", bytearray(b64.encode())) == b64
    assert to_json("binary", memoryview(b64.encode())) == b64
    assert to_json("binary", False) is None
    assert to_json("binary", b"") is None


def test_to_json_binary_raw_bytes_are_encoded_once():
    raw = b"\x00\xff\xfe"
    assert to_json("binary", raw) == base64.b64encode(raw).decode()


def test_to_json_json_as_is():
    payload = {"a": [1, 2.5, None, True, "x"]}
    assert to_json("json", payload) is payload
    assert to_json("json", 0) == 0
    assert to_json("json", False) is None
    assert to_json("json", None) is None


def test_to_json_reference():
    assert to_json("reference", "res.partner,7") == "res.partner,7"
    assert to_json("reference", FakeRecord("res.partner", 7)) == "res.partner,7"
    assert to_json("reference", FakeRecord("res.partner")) is None
    assert to_json("reference", False) is None


def test_to_json_unsupported_type():
    with pytest.raises(SyncError) as info:
        to_json("properties", {})
    assert info.value.status == 400
    assert "properties" in info.value.message


# ---------------------------------------------------------------------------
# from_json: happy paths
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("ttype", sorted(values.SUPPORTED_TYPES - {"boolean"}))
def test_from_json_null_is_false(ttype):
    assert from_json(ttype, None) is False


def test_from_json_boolean_null_is_false():
    assert from_json("boolean", None) is False


@pytest.mark.parametrize("ttype", ["char", "text", "html"])
def test_from_json_strings(ttype):
    assert from_json(ttype, "héllo") == "héllo"
    assert from_json(ttype, "") == ""
    assert from_json(ttype, "abc", size=3) == "abc"


def test_from_json_selection():
    assert from_json("selection", "draft") == "draft"
    assert from_json("selection", "draft", selection=["draft", "done"]) == "draft"
    pairs = [("draft", "Draft"), ("done", "Done")]
    assert from_json("selection", "done", selection=pairs) == "done"
    assert from_json("selection", "done", selection={"draft": "Draft", "done": "Done"}) == "done"


def test_from_json_integer():
    assert from_json("integer", 12) == 12
    assert from_json("integer", -12) == -12
    assert from_json("integer", 0) == 0
    assert from_json("integer", 12.0) == 12 and type(from_json("integer", 12.0)) is int
    assert from_json("integer", "12") == 12
    assert from_json("integer", " -7 ") == -7
    assert from_json("integer", "+7") == 7
    assert from_json("integer", values.INT4_MAX) == values.INT4_MAX
    assert from_json("integer", values.INT4_MIN) == values.INT4_MIN
    assert from_json("integer", Decimal(3)) == 3


@pytest.mark.parametrize("ttype", ["float", "monetary"])
def test_from_json_float(ttype):
    assert from_json(ttype, 1.5) == 1.5
    out = from_json(ttype, 3)
    assert out == 3.0 and type(out) is float
    assert from_json(ttype, "1.25") == 1.25
    assert from_json(ttype, "-.5") == -0.5
    assert from_json(ttype, "1e3") == 1000.0
    assert from_json(ttype, 1e308) == 1e308
    assert from_json(ttype, Decimal("2.5")) == 2.5


def test_from_json_float_digits_rounds_half_up_and_checks_precision():
    assert from_json("float", 2.675, digits=(16, 2)) == 2.68
    assert from_json("monetary", 1.005, digits=(16, 2)) == 1.01
    assert from_json("float", 10, digits=(16, 2)) == 10.0
    # Non-tuple digits (an unresolved precision name) are ignored.
    assert from_json("float", 1.23456, digits="Product Price") == 1.23456
    msg = _error("float", 1000.0, digits=(5, 2), label="Amount")
    assert "5 digits" in msg


def test_from_json_boolean():
    assert from_json("boolean", True) is True
    assert from_json("boolean", False) is False
    for text, expected in [("true", True), ("TRUE", True), ("True", True), ("1", True),
                           ("false", False), ("False", False), ("0", False), (" true ", True)]:
        assert from_json("boolean", text) is expected


def test_from_json_date():
    assert from_json("date", "2024-05-01") == D(2024, 5, 1)
    assert from_json("date", "2024-02-29") == D(2024, 2, 29)
    assert type(from_json("date", "2024-05-01")) is D


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2024-05-01T10:00:00Z", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:00z", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:00+03:00", DT(2024, 5, 1, 7, 0, 0)),
        ("2024-05-01T10:00:00-05:30", DT(2024, 5, 1, 15, 30, 0)),
        ("2024-05-01T10:00:00+0300", DT(2024, 5, 1, 7, 0, 0)),
        ("2024-05-01T10:00:00+03", DT(2024, 5, 1, 7, 0, 0)),
        ("2024-05-01T01:00:00+03:00", DT(2024, 4, 30, 22, 0, 0)),
        ("2024-05-01T10:00:00", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01 10:00:00", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:00.123456Z", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:59.999+02:00", DT(2024, 5, 1, 8, 0, 59)),
        ("2024-05-01T10:00:00.1234567891", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-05-01T10:00:00,5Z", DT(2024, 5, 1, 10, 0, 0)),
        ("2024-12-31T23:30:00-01:00", DT(2025, 1, 1, 0, 30, 0)),
    ],
)
def test_from_json_datetime_to_naive_utc(text, expected):
    out = from_json("datetime", text)
    assert out == expected
    assert out.tzinfo is None
    assert out.microsecond == 0


def test_from_json_binary():
    b64 = base64.b64encode(b"\x00\x01hello").decode()
    assert from_json("binary", b64) == b64
    wrapped = b64[:4] + "\n" + b64[4:] + "\r\n"
    assert from_json("binary", wrapped) == b64
    assert from_json("binary", "") is False


@pytest.mark.parametrize("ttype", ["many2one", "many2one_reference"])
def test_from_json_ids(ttype):
    assert from_json(ttype, 5) == 5
    assert from_json(ttype, values.INT4_MAX) == values.INT4_MAX


@pytest.mark.parametrize("ttype", ["one2many", "many2many"])
def test_from_json_x2many_is_a_set_command(ttype):
    assert from_json(ttype, [3, 1, 2]) == [(6, 0, [3, 1, 2])]
    assert from_json(ttype, [3, 3, 1]) == [(6, 0, [3, 1])]
    assert from_json(ttype, []) == [(6, 0, [])]


def test_from_json_json_any_value():
    payload = {"a": [1, {"b": None}], "c": "é"}
    assert from_json("json", payload) == payload
    assert from_json("json", [1, 2]) == [1, 2]
    assert from_json("json", "x") == "x"
    assert from_json("json", 0) == 0


def test_from_json_reference():
    assert from_json("reference", "res.partner,7") == "res.partner,7"
    assert from_json("reference", "res.partner,007") == "res.partner,7"


# ---------------------------------------------------------------------------
# from_json: errors
# ---------------------------------------------------------------------------

def test_error_message_shape():
    msg = _error("char", 12, label="Phone")
    assert msg == "Field 'Phone': expected a string, got number 12"


def test_error_without_label_or_line():
    with pytest.raises(SyncError) as info:
        from_json("integer", "abc")
    assert info.value.status == 400
    assert info.value.line_id is None
    assert "expected an integer" in info.value.message


@pytest.mark.parametrize("ttype", ["char", "text", "html"])
@pytest.mark.parametrize("bad", [12, 1.5, True, [], {}])
def test_strings_are_strict(ttype, bad):
    assert "expected a string" in _error(ttype, bad)


def test_char_size():
    msg = _error("char", "abcd", size=3)
    assert "at most 3 characters" in msg


def test_selection_errors():
    msg = _error("selection", "cancel", selection=[("draft", "Draft"), ("done", "Done")],
                 label="Status")
    assert "'draft'" in msg and "'done'" in msg and "'cancel'" in msg
    assert "expected one of" in msg
    assert "expected a string" in _error("selection", 3)
    assert "expected one of" in _error("selection", True, selection=[1, 0])


@pytest.mark.parametrize(
    "bad, fragment",
    [
        (True, "got boolean true"),
        (False, "got boolean false"),
        (1.5, "expected an integer"),
        (float("nan"), "expected an integer"),
        (float("inf"), "expected an integer"),
        ("12.5", "expected an integer"),
        ("1_000", "expected an integer"),
        ("١٢", "expected an integer"),  # non-ASCII digits
        ("", "expected an integer"),
        ("abc", "expected an integer"),
        ([1], "got array"),
        ({"a": 1}, "got object"),
        (Decimal("1.5"), "expected an integer"),
        (Decimal("NaN"), "expected an integer"),
    ],
)
def test_integer_errors(bad, fragment):
    assert fragment in _error("integer", bad, label="Qty")


@pytest.mark.parametrize("bad", [2**31, -(2**31) - 1, 10**30, 1e20, "2147483648", "9" * 5000])
def test_integer_int4_overflow(bad):
    assert "out of range" in _error("integer", bad, label="Qty")


@pytest.mark.parametrize("ttype", ["float", "monetary"])
@pytest.mark.parametrize(
    "bad, fragment",
    [
        (True, "got boolean true"),
        (float("nan"), "expected a finite number"),
        (float("inf"), "expected a finite number"),
        (float("-inf"), "expected a finite number"),
        (Decimal("Infinity"), "expected a finite number"),
        ("nan", "expected a number"),
        ("inf", "expected a number"),
        ("Infinity", "expected a number"),
        ("1_0", "expected a number"),
        ("1.2.3", "expected a number"),
        ("", "expected a number"),
        ([], "got array"),
        (10**400, "float range"),
        ("1e400", "float range"),
    ],
)
def test_float_errors(ttype, bad, fragment):
    assert fragment in _error(ttype, bad, label="Price")


def test_huge_json_numbers_do_not_crash():
    # json.loads makes an int for 1 followed by many zeros and inf for 1e400.
    big_int = json.loads("1" + "0" * 500)
    big_float = json.loads("1e400")
    assert "expected a number within the float range" in _error("float", big_int)
    assert "expected a finite number" in _error("float", big_float)
    assert "out of range" in _error("integer", big_int)
    assert "expected an integer" in _error("integer", big_float)


@pytest.mark.parametrize("bad", [1, 0, "yes", "no", "t", "", [], 1.0])
def test_boolean_errors(bad):
    assert "expected a boolean" in _error("boolean", bad, label="Active")


@pytest.mark.parametrize(
    "bad",
    ["2024-5-1", "2024/05/01", "01-05-2024", "2024-05-01T00:00:00", "20240501", "", "x",
     20240501, True],
)
def test_date_format_errors(bad):
    assert "expected a date" in _error("date", bad, label="Day")


@pytest.mark.parametrize("bad", ["2024-02-30", "2023-02-29", "2024-13-01", "0000-01-01"])
def test_date_invalid_calendar(bad):
    assert "valid calendar date" in _error("date", bad, label="Day")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("2024-05-01", "expected a datetime"),
        ("2024-05-01T10", "expected a datetime"),
        ("2024-05-01T10:00:00 UTC", "expected a datetime"),
        ("2024-05-01T10:00:00+3:00", "expected a datetime"),
        ("01/05/2024 10:00", "expected a datetime"),
        (1714557600, "expected a datetime"),
        ("2024-02-30T10:00:00Z", "valid calendar datetime"),
        ("2024-05-01T24:00:00Z", "valid calendar datetime"),
        ("2024-05-01T10:60:00Z", "valid calendar datetime"),
        ("2024-05-01T10:00:60Z", "valid calendar datetime"),
        ("2024-05-01T10:00:00+24:00", "valid UTC offset"),
        ("2024-05-01T10:00:00+01:60", "valid UTC offset"),
        ("0001-01-01T00:00:00+01:00", "years 1 to 9999"),
        ("9999-12-31T23:00:00-02:00", "years 1 to 9999"),
    ],
)
def test_datetime_errors(bad, fragment):
    assert fragment in _error("datetime", bad, label="When")


@pytest.mark.parametrize(
    "bad, fragment",
    [
        ("abc", "invalid base64"),
        ("QUJD=", "invalid base64"),
        ("QUJ", "invalid base64"),
        ("QU*D", "invalid base64"),
        ("data:image/png;base64,QUJD", "invalid base64"),
        ("-_-_", "invalid base64"),
        (b"QUJD", "expected a base64 string"),
        (12, "expected a base64 string"),
    ],
)
def test_binary_errors(bad, fragment):
    assert fragment in _error("binary", bad, label="Image")


@pytest.mark.parametrize("ttype", ["many2one", "many2one_reference"])
@pytest.mark.parametrize("bad", [True, False, 0, -1, 1.0, "5", [5], {"id": 5}])
def test_id_errors(ttype, bad):
    assert "expected a record id" in _error(ttype, bad, label="Partner")


def test_id_int4_overflow():
    assert "out of range" in _error("many2one", 2**31, label="Partner")


@pytest.mark.parametrize("ttype", ["one2many", "many2many"])
def test_x2many_errors(ttype):
    assert "expected a list of record ids" in _error(ttype, 5, label="Tags")
    assert "expected a list of record ids" in _error(ttype, "1,2", label="Tags")
    msg = _error(ttype, [1, True], label="Tags")
    assert "got boolean true at position 1" in msg
    assert "at position 0" in _error(ttype, ["1"], label="Tags")
    assert "at position 2" in _error(ttype, [1, 2, 0], label="Tags")


@pytest.mark.parametrize("bad", ["res.partner", "res.partner,", ",7", "res.partner,0",
                                 "res.partner,x", "res partner,7", 7, ["res.partner", 7]])
def test_reference_errors(bad):
    assert "expected a reference" in _error("reference", bad, label="Source")


def test_unsupported_type_from_json():
    with pytest.raises(SyncError) as info:
        from_json("properties", {}, label="Props", line_id=3)
    assert info.value.status == 400
    assert info.value.line_id == 3
    assert "Props" in info.value.message


def test_long_values_are_truncated_in_messages():
    msg = _error("integer", "x" * 1000)
    assert len(msg) < 200


# ---------------------------------------------------------------------------
# Round trips
# ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "ttype, value",
    [
        ("char", "abc"),
        ("text", "line1\nline2"),
        ("html", "<p>é</p>"),
        ("selection", "draft"),
        ("integer", -5),
        ("float", 0.1),
        ("monetary", 12.34),
        ("boolean", True),
        ("boolean", False),
        ("date", D(2024, 2, 29)),
        ("datetime", DT(2024, 5, 1, 10, 11, 12)),
        ("many2one", 3),
        ("many2one_reference", 3),
        ("binary", base64.b64encode(b"abc").decode()),
        ("json", {"a": [1, 2]}),
        ("reference", "res.partner,3"),
    ],
)
def test_round_trip(ttype, value):
    assert from_json(ttype, to_json(ttype, value)) == value
    # And through real JSON text.
    assert from_json(ttype, json.loads(dumps(to_json(ttype, value)))) == value


def test_round_trip_x2many():
    assert from_json("many2many", to_json("many2many", [4, 2])) == [(6, 0, [4, 2])]


def test_round_trip_empty():
    for ttype in sorted(values.SUPPORTED_TYPES):
        assert from_json(ttype, to_json(ttype, False)) is False


_ID = st.integers(min_value=1, max_value=values.INT4_MAX)
_JSON_LEAF = st.none() | st.booleans() | st.integers() | st.floats(
    allow_nan=False, allow_infinity=False) | st.text()
_JSON = st.recursive(
    _JSON_LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
).filter(lambda v: v is not None and v is not False and v != "")  # those are "empty"

SCALAR_STRATEGIES = {
    "char": st.text(min_size=1),
    "text": st.text(min_size=1),
    "html": st.text(min_size=1),
    "selection": st.text(min_size=1),
    "integer": st.integers(min_value=values.INT4_MIN, max_value=values.INT4_MAX),
    "float": st.floats(allow_nan=False, allow_infinity=False),
    "monetary": st.floats(allow_nan=False, allow_infinity=False),
    "boolean": st.booleans(),
    "date": st.dates(),
    "datetime": st.datetimes().map(lambda v: v.replace(microsecond=0)),
    "many2one": _ID,
    "many2one_reference": _ID,
    "binary": st.binary(min_size=1).map(lambda b: base64.b64encode(b).decode()),
    "reference": st.tuples(st.from_regex(r"[a-z_]+(\.[a-z_]+)*", fullmatch=True), _ID).map(
        lambda pair: f"{pair[0]},{pair[1]}"
    ),
    "json": _JSON,
}


@pytest.mark.parametrize("ttype", sorted(SCALAR_STRATEGIES))
def test_property_round_trip(ttype):
    @settings(max_examples=150, deadline=None)
    @given(SCALAR_STRATEGIES[ttype])
    def check(value):
        out = to_json(ttype, value)
        back = from_json(ttype, out)
        assert back == value
        assert type(back) is type(value) or (ttype in ("float", "monetary"))
        # The JSON-ready value really is JSON.
        assert from_json(ttype, json.loads(dumps(out))) == value

    check()


# ---------------------------------------------------------------------------
# parse_query_value
# ---------------------------------------------------------------------------

def test_query_booleans():
    for raw, expected in [("true", True), ("TRUE", True), ("1", True),
                          ("false", False), ("False", False), ("0", False)]:
        assert parse_query_value("boolean", raw, key="active") is expected
    assert "expected a boolean" in _query_error("boolean", "yes", key="active")


def test_query_numbers():
    assert parse_query_value("integer", "12", key="qty") == 12
    assert parse_query_value("integer", "-3", key="qty") == -3
    assert parse_query_value("float", "1.5", key="qty") == 1.5
    assert parse_query_value("monetary", "10", key="qty") == 10.0
    assert "expected an integer" in _query_error("integer", "1.5")
    assert "expected an integer" in _query_error("integer", "abc")
    assert "out of range" in _query_error("integer", "99999999999")
    assert "expected a number" in _query_error("float", "nan")
    assert "float range" in _query_error("float", "1e999")


def test_query_dates():
    assert parse_query_value("date", "2024-05-01", key="d") == D(2024, 5, 1)
    assert parse_query_value("datetime", "2024-05-01T10:00:00+03:00", key="d") == DT(
        2024, 5, 1, 7
    )
    assert parse_query_value("datetime", "2024-05-01 10:00:00", key="d") == DT(2024, 5, 1, 10)
    assert parse_query_value("datetime", "2024-05-01", key="d") == DT(2024, 5, 1)
    assert "valid calendar date" in _query_error("date", "2024-02-30", key="d")
    assert "expected a date" in _query_error("date", "yesterday", key="d")
    assert "expected a datetime" in _query_error("datetime", "now", key="d")


def test_query_relational_ids():
    assert parse_query_value("many2one", "7", key="partner_id") == 7
    assert parse_query_value("many2many", "7", key="tag_ids") == 7
    assert parse_query_value("one2many", " 7 ", key="line_ids") == 7
    for bad in ("0", "-1", "abc", "7.0", "", "true"):
        assert "expected a record id" in _query_error("many2one", bad, key="partner_id")
    assert "out of range" in _query_error("many2one", "2147483648", key="partner_id")
    assert "expected a record id" in _query_error("many2one", "9" * 50, key="partner_id")


def test_query_strings_and_reference():
    assert parse_query_value("char", " a b ", key="name") == " a b "
    assert parse_query_value("selection", "draft", key="state") == "draft"
    assert parse_query_value("char", "null", key="name") == "null"
    assert parse_query_value("reference", "res.partner,3", key="ref") == "res.partner,3"
    assert "expected a reference" in _query_error("reference", "res.partner", key="ref")


def test_query_null_means_not_set_for_non_text_types():
    for ttype in ("integer", "float", "date", "datetime", "many2one", "boolean"):
        assert parse_query_value(ttype, "null", key="x") is False


def test_query_in_lists():
    assert parse_query_value("integer", "1,2,3", "in", key="qty") == [1, 2, 3]
    assert parse_query_value("many2one", "4, 5 ,6", "not in", key="p") == [4, 5, 6]
    assert parse_query_value("char", "a,b", "in", key="name") == ["a", "b"]
    assert parse_query_value("boolean", "true,0", "IN", key="b") == [True, False]
    assert parse_query_value("date", "2024-01-01,2024-01-02", "in", key="d") == [
        D(2024, 1, 1), D(2024, 1, 2)]
    assert parse_query_value("integer", "", "in", key="qty") == []
    assert parse_query_value("integer", "1,,2,", "in", key="qty") == [1, 2]
    msg = _query_error("integer", "1,x,3", "in", key="qty")
    assert "expected an integer, got string 'x'" in msg


def test_query_like_operators_keep_text():
    assert parse_query_value("char", "abc%", "ilike", key="name") == "abc%"
    assert parse_query_value("integer", "12", "like", key="qty") == "12"


def test_query_binary_is_not_filterable():
    assert "cannot filter" in _query_error("binary", "QUJD", key="image")


def test_query_errors_without_key_and_bad_input():
    with pytest.raises(SyncError) as info:
        parse_query_value("integer", "x")
    assert info.value.status == 400
    assert info.value.message.startswith("Query parameter: ")
    with pytest.raises(SyncError) as info:
        parse_query_value("properties", "x", key="p")
    assert info.value.status == 400
    with pytest.raises(SyncError):
        parse_query_value("integer", 12, key="p")


# ---------------------------------------------------------------------------
# json_depth and dumps
# ---------------------------------------------------------------------------

def test_json_depth_small():
    assert json_depth(1) == 0
    assert json_depth("x") == 0
    assert json_depth(None) == 0
    assert json_depth([]) == 1
    assert json_depth({}) == 1
    assert json_depth([1, 2]) == 1
    assert json_depth({"a": [1, {"b": 2}]}) == 3
    assert json_depth({"a": [1, {"b": []}]}) == 4
    assert json_depth([[], [[[]]], {}]) == 4
    assert json_depth((1, (2,))) == 2


def test_json_depth_very_deep_without_recursion():
    deep = []
    for _ in range(10_000 - 1):
        deep = [deep]
    assert json_depth(deep) == 10_000
    mixed = 1
    for index in range(10_000):
        mixed = {"k": mixed} if index % 2 else [mixed]
    assert json_depth(mixed) == 10_000


def test_json_depth_wide():
    assert json_depth([[i] for i in range(50_000)]) == 2


def test_dumps():
    tz = datetime.timezone(datetime.timedelta(hours=-2))
    payload = {
        "name": "Ünïcode ✓",
        "day": D(2024, 5, 1),
        "at": DT(2024, 5, 1, 10, 0, 0, 500),
        "aware": DT(2024, 5, 1, 10, 0, tzinfo=tz),
        "file": b"QUJD",
        "raw": b"\xff",
        "price": Decimal("12.50"),
        "qty": Decimal(3),
        "none": Decimal("NaN"),
        "list": (1, 2),
    }
    text = dumps(payload)
    assert " " not in text.replace("Ünïcode ✓", "")
    assert "Ünïcode ✓" in text
    assert json.loads(text) == {
        "name": "Ünïcode ✓",
        "day": "2024-05-01",
        "at": "2024-05-01T10:00:00Z",
        "aware": "2024-05-01T12:00:00Z",
        "file": "QUJD",
        "raw": base64.b64encode(b"\xff").decode(),
        "price": 12.5,
        "qty": 3,
        "none": None,
        "list": [1, 2],
    }


def test_dumps_rejects_unknown_objects_and_nan():
    with pytest.raises(TypeError):
        dumps({"x": object()})
    with pytest.raises(ValueError):
        dumps({"x": math.nan})
