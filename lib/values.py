"""Field values between Odoo and JSON, one conversion per Odoo field type.

``to_json`` turns a value as Odoo keeps it in the record cache into a JSON-ready
value; ``from_json`` checks a client's JSON value against the field's type and
turns it into what ``create``/``write`` expects; ``parse_query_value`` does the
same for the text of a URL query parameter. ``json_depth`` and ``dumps`` help
the controllers guard and write bodies.

Decisions worth knowing:

* Strict types: a string field rejects numbers, a number field rejects booleans
  (``True`` is not ``1``), ids must be positive integers within PostgreSQL's
  ``int4`` range. The one leniency is text that spells the value exactly:
  ``"12"`` for integers, ``"1.5"``/``"1e3"`` for floats and ``"true"``,
  ``"false"``, ``"1"``, ``"0"`` (any case) for booleans.
* Datetimes are exchanged as UTC ``YYYY-MM-DDTHH:MM:SSZ``. Incoming ISO 8601
  with any offset (or none, meaning UTC) and Odoo's ``YYYY-MM-DD HH:MM:SS`` are
  accepted and become naive UTC; fractional seconds are dropped, as Odoo stores
  whole seconds.
* Empty values (``False``, ``None``, ``''``) go out as ``null``; ``null`` comes
  in as ``False`` (what Odoo writes as "empty").
* x2many values come in as a list of ids and go to Odoo as one ``Command.set``
  tuple, ``[(6, 0, ids)]``.
"""

import base64
import binascii
import datetime
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal

from .errors import Msg, SyncError, _lt

__all__ = [
    "INT4_MAX",
    "INT4_MIN",
    "SUPPORTED_TYPES",
    "dumps",
    "from_json",
    "json_depth",
    "parse_query_value",
    "to_json",
]

INT4_MIN = -(2**31)
INT4_MAX = 2**31 - 1

STRING_TYPES = frozenset({"char", "text", "html", "selection"})
NUMBER_TYPES = frozenset({"integer", "float", "monetary"})
X2MANY_TYPES = frozenset({"one2many", "many2many"})
ID_TYPES = frozenset({"many2one", "many2one_reference"})
SUPPORTED_TYPES = frozenset(
    STRING_TYPES | NUMBER_TYPES | X2MANY_TYPES | ID_TYPES
    | {"boolean", "date", "datetime", "binary", "json", "reference"}
)

LIST_OPERATORS = frozenset({"in", "not in"})
TEXT_OPERATORS = frozenset({"like", "ilike", "not like", "not ilike", "=like", "=ilike"})

_INT_RE = re.compile(r"[+-]?[0-9]+", re.ASCII)
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII)
_DATE_RE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})", re.ASCII)
_DATETIME_RE = re.compile(
    r"""
    ([0-9]{4})-([0-9]{2})-([0-9]{2})
    [Tt\ ]
    ([0-9]{2}):([0-9]{2})
    (?::([0-9]{2})(?:[.,][0-9]+)?)?
    (?:[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2})(?::?(?P<om>[0-9]{2}))?)?
    """,
    re.ASCII | re.VERBOSE,
)
_REFERENCE_RE = re.compile(r"([A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*),([0-9]{1,12})", re.ASCII)
_WHITESPACE_RE = re.compile(r"\s+")
_BOOL_WORDS = {"true": True, "1": True, "false": False, "0": False}
# More digits than any int4 has: refuse before int() does the (slow) work.
_MAX_INT_DIGITS = 12


class _Invalid(Exception):
    """A value that does not fit its type; the reason (a ``Msg``) reads "expected ..., got ..."."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _describe(value):
    """Name a JSON value for a message: ``number 12``, ``string 'abc'`` (a ``Msg`` or text)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return Msg(_lt("boolean %(value)s"), value="true" if value else "false")
    if isinstance(value, (int, float, Decimal)):
        text = repr(value) if not isinstance(value, Decimal) else str(value)
        return Msg(_lt("number %(value)s"), value=text if len(text) <= 40 else text[:40] + "...")
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "..."
        return Msg(_lt("string '%(value)s'"), value=text)
    if isinstance(value, (list, tuple)):
        return Msg(_lt("array"))
    if isinstance(value, dict):
        return Msg(_lt("object"))
    return type(value).__name__


def _expected(template, value, **params):
    """``template`` reads "expected ..., got %(got)s"; ``got`` describes ``value``."""
    return _Invalid(Msg(template, got=_describe(value), **params))


def _is_number(value):
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _unsupported_reason(ttype):
    return Msg(_lt("unsupported field type '%(type)s'"), type=ttype)


def _unsupported(ttype):
    return SyncError(Msg(_lt("Unsupported field type '%(type)s'"), type=ttype), status=400)


# ---------------------------------------------------------------------------
# Odoo -> JSON
# ---------------------------------------------------------------------------

def _utc_naive(value):
    if value.tzinfo is not None and value.utcoffset() is not None:
        value = value.astimezone(datetime.UTC)
    return value.replace(tzinfo=None)


def _format_date(value):
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _format_datetime(value):
    value = _utc_naive(value)
    return f"{_format_date(value)}T{value.hour:02d}:{value.minute:02d}:{value.second:02d}Z"


def _binary_to_str(value):
    if isinstance(value, str):
        return value
    data = bytes(value)
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        # Not ASCII, so it cannot be base64 already: encode it once.
        return base64.b64encode(data).decode("ascii")


def _number_to_json(value):
    if isinstance(value, Decimal):
        if not value.is_finite():
            return None
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _record_id(value):
    """An id from an int, a ``(id, name)`` pair or a recordset-like object."""
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    elif not isinstance(value, int):
        value = getattr(value, "id", None)
    if value is None or value is False:
        return None
    return int(value)


def to_json(ttype, value):
    """Turn a value read from an Odoo record into a JSON-ready value.

    ``False``, ``None`` and ``''`` are "empty" and give ``None``, except for
    booleans, which always give ``True`` or ``False``.
    """
    if ttype == "boolean":
        return bool(value)
    if ttype not in SUPPORTED_TYPES:
        raise _unsupported(ttype)
    if value is None or value is False or (isinstance(value, str) and value == ""):
        return None
    if ttype == "binary":
        return _binary_to_str(value) or None
    if ttype in STRING_TYPES:
        return str(value)
    if ttype in NUMBER_TYPES:
        return _number_to_json(value)
    if ttype == "date":
        if isinstance(value, str):
            value = _parse_date(value)
        elif isinstance(value, datetime.datetime):
            value = value.date()
        return _format_date(value)
    if ttype == "datetime":
        if isinstance(value, str):
            value = _parse_datetime(value)
        elif not isinstance(value, datetime.datetime):
            value = datetime.datetime.combine(value, datetime.time.min)
        return _format_datetime(value)
    if ttype in ID_TYPES:
        return _record_id(value)
    if ttype in X2MANY_TYPES:
        ids = getattr(value, "ids", value)
        return [int(record_id) for record_id in ids]
    if ttype == "reference":
        if isinstance(value, str):
            return value
        model, record_id = getattr(value, "_name", None), getattr(value, "id", None)
        if not model or not record_id:
            return None
        return f"{model},{record_id}"
    # json
    return value


# ---------------------------------------------------------------------------
# Parsers shared by from_json and parse_query_value (raise _Invalid)
# ---------------------------------------------------------------------------

def _out_of_range(number):
    return _Invalid(
        Msg(_lt("integer %(value)s is out of range (%(min)s to %(max)s)"), value=number, min=INT4_MIN, max=INT4_MAX)
    )


def _check_int4(number, what="integer"):
    if not INT4_MIN <= number <= INT4_MAX:
        if what == "id":
            raise _Invalid(
                Msg(_lt("id %(value)s is out of range (%(min)s to %(max)s)"), value=number, min=INT4_MIN, max=INT4_MAX)
            )
        raise _out_of_range(number)
    return number


def _int_from_text(text, original):
    text = text.strip()
    if not _INT_RE.fullmatch(text):
        raise _expected(_lt("expected an integer, got %(got)s"), original)
    if len(text.lstrip("+-").lstrip("0")) > _MAX_INT_DIGITS:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise _out_of_range(shown)
    return int(text)


def _parse_integer(value):
    if isinstance(value, str):
        return _check_int4(_int_from_text(value, value))
    if not _is_number(value):
        raise _expected(_lt("expected an integer, got %(got)s"), value)
    if isinstance(value, int):
        return _check_int4(value)
    if isinstance(value, float):
        if not value.is_integer():
            raise _expected(_lt("expected an integer, got %(got)s"), value)
        return _check_int4(int(value))
    # Decimal
    if not value.is_finite() or value != value.to_integral_value():
        raise _expected(_lt("expected an integer, got %(got)s"), value)
    return _check_int4(int(value))


def _parse_float(value):
    expected = _lt("expected a number, got %(got)s")
    if isinstance(value, str):
        if not _FLOAT_RE.fullmatch(value.strip()):
            raise _expected(expected, value)
        number = float(value.strip())
    elif _is_number(value):
        if isinstance(value, float) and not math.isfinite(value):
            raise _expected(_lt("expected a finite number, got %(got)s"), value)
        if isinstance(value, Decimal) and not value.is_finite():
            raise _expected(_lt("expected a finite number, got %(got)s"), value)
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    else:
        raise _expected(expected, value)
    if not math.isfinite(number):
        raise _expected(_lt("expected a number within the float range, got %(got)s"), value)
    return number


def _apply_digits(number, digits):
    """Round to the scale of ``digits`` and check it fits its precision."""
    if not (
        isinstance(digits, (tuple, list)) and len(digits) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) for d in digits)
    ):
        return number
    precision, scale = digits
    rounded = Decimal(repr(number)).quantize(Decimal(1).scaleb(-scale), rounding=ROUND_HALF_UP)
    if precision and abs(rounded) >= Decimal(10) ** (precision - scale):
        raise _Invalid(
            Msg(
                _lt("number %(value)s does not fit %(precision)s digits with %(scale)s decimals"),
                value=repr(number), precision=precision, scale=scale,
            )
        )
    return float(rounded)


def _parse_boolean(value):
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = _BOOL_WORDS.get(value.strip().lower())
        if word is not None:
            return word
    raise _expected(_lt("expected a boolean (true/false), got %(got)s"), value)


def _parse_date(value):
    if not isinstance(value, str):
        raise _expected(_lt("expected a date (YYYY-MM-DD), got %(got)s"), value)
    match = _DATE_RE.fullmatch(value.strip())
    if not match:
        raise _expected(_lt("expected a date (YYYY-MM-DD), got %(got)s"), value)
    try:
        return datetime.date(*(int(part) for part in match.groups()))
    except ValueError:
        raise _expected(_lt("expected a valid calendar date (YYYY-MM-DD), got %(got)s"), value) from None


def _parse_datetime(value, allow_date=False):
    """ISO 8601 (any offset; none means UTC) or Odoo's format -> naive UTC."""
    expected = _lt("expected a datetime (ISO 8601, e.g. 2024-05-01T10:00:00Z), got %(got)s")
    if not isinstance(value, str):
        raise _expected(expected, value)
    text = value.strip()
    if allow_date and _DATE_RE.fullmatch(text):
        return datetime.datetime.combine(_parse_date(text), datetime.time.min)
    match = _DATETIME_RE.fullmatch(text)
    if not match:
        raise _expected(expected, value)
    year, month, day, hour, minute, second = (int(p or 0) for p in match.groups()[:6])
    tzinfo = None
    if match.group("sign"):
        off_hours = int(match.group("oh"))
        off_minutes = int(match.group("om") or 0)
        if off_hours > 23 or off_minutes > 59:
            raise _expected(_lt("expected a datetime with a valid UTC offset, got %(got)s"), value)
        offset = datetime.timedelta(hours=off_hours, minutes=off_minutes)
        tzinfo = datetime.timezone(-offset if match.group("sign") == "-" else offset)
    try:
        result = datetime.datetime(year, month, day, hour, minute, second, tzinfo=tzinfo)
    except ValueError:
        raise _expected(_lt("expected a valid calendar datetime, got %(got)s"), value) from None
    if tzinfo is not None:
        try:
            result = result.astimezone(datetime.UTC).replace(tzinfo=None)
        except OverflowError:
            raise _expected(_lt("expected a datetime within years 1 to 9999 in UTC, got %(got)s"), value) from None
    return result


def _parse_id(value):
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return _check_int4(value, "id")
    raise _expected(_lt("expected a record id (positive integer), got %(got)s"), value)


def _parse_id_text(text):
    expected = _lt("expected a record id (positive integer), got %(got)s")
    try:
        number = _int_from_text(text, text)
    except _Invalid:
        raise _expected(expected, text) from None
    if number <= 0:
        raise _expected(expected, text)
    return _check_int4(number, "id")


def _parse_binary(value):
    if not isinstance(value, str):
        raise _expected(_lt("expected a base64 string, got %(got)s"), value)
    cleaned = _WHITESPACE_RE.sub("", value)
    try:
        # Padded base64 comes in whole 4-character groups; the decoder alone
        # would let trailing extra "=" through.
        if len(cleaned) % 4:
            raise ValueError(cleaned)
        base64.b64decode(cleaned, validate=True)
    except (binascii.Error, ValueError):
        raise _Invalid(Msg(_lt("expected a base64 string, got invalid base64 data"))) from None
    return cleaned


def _parse_reference(value):
    expected = _lt("expected a reference 'model,id', got %(got)s")
    match = _REFERENCE_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if not match or int(match.group(2)) <= 0:
        raise _expected(expected, value)
    record_id = _check_int4(int(match.group(2)), "id")
    return f"{match.group(1)},{record_id}"


def _selection_keys(selection):
    if isinstance(selection, dict):
        return list(selection)
    keys = []
    for item in selection:
        keys.append(item[0] if isinstance(item, (list, tuple)) else item)
    return keys


# ---------------------------------------------------------------------------
# JSON -> Odoo
# ---------------------------------------------------------------------------

def _from_json(ttype, value, selection, size, digits):
    if ttype in ("char", "text", "html"):
        if not isinstance(value, str):
            raise _expected(_lt("expected a string, got %(got)s"), value)
        if size and len(value) > size:
            raise _Invalid(
                Msg(_lt("expected at most %(size)s characters, got %(length)s"), size=size, length=len(value))
            )
        return value
    if ttype == "selection":
        if selection is not None:
            keys = _selection_keys(selection)
            if value in keys and not isinstance(value, bool):
                return value
            allowed = ", ".join(f"'{key}'" for key in keys)
            raise _expected(_lt("expected one of %(allowed)s, got %(got)s"), value, allowed=allowed)
        if not isinstance(value, str):
            raise _expected(_lt("expected a string, got %(got)s"), value)
        return value
    if ttype == "integer":
        return _parse_integer(value)
    if ttype in ("float", "monetary"):
        number = _parse_float(value)
        return _apply_digits(number, digits) if digits is not None else number
    if ttype == "boolean":
        return _parse_boolean(value)
    if ttype == "date":
        return _parse_date(value)
    if ttype == "datetime":
        return _parse_datetime(value)
    if ttype in ID_TYPES:
        return _parse_id(value)
    if ttype in X2MANY_TYPES:
        if not isinstance(value, list):
            raise _expected(_lt("expected a list of record ids, got %(got)s"), value)
        ids = []
        for position, item in enumerate(value):
            try:
                record_id = _parse_id(item)
            except _Invalid as exc:
                raise _Invalid(
                    Msg(_lt("%(reason)s at position %(position)s"), reason=exc.reason, position=position)
                ) from None
            if record_id not in ids:
                ids.append(record_id)
        return [(6, 0, ids)]
    if ttype == "binary":
        return _parse_binary(value) or False
    if ttype == "reference":
        return _parse_reference(value)
    # json: any JSON value
    return value


def from_json(ttype, value, *, selection=None, line_id=None, label=None, size=None, digits=None):
    """Check a JSON value against the field type; return it ready for ``write``.

    ``None`` gives ``False``. A value of the wrong type raises ``SyncError``
    (status 400, ``line_id`` carried) naming ``label`` and the expected type.
    ``selection`` lists the allowed keys (keys, ``(key, label)`` pairs or a
    dict); ``size`` caps string length; ``digits`` ``(precision, scale)``
    rounds floats half-up to the scale and checks the precision.
    """
    if ttype not in SUPPORTED_TYPES:
        raise SyncError(
            Msg(_lt("Field '%(label)s': %(reason)s"), label=label or "?", reason=_unsupported_reason(ttype)),
            status=400, line_id=line_id,
        )
    if value is None:
        return False
    try:
        return _from_json(ttype, value, selection, size, digits)
    except _Invalid as exc:
        if label:
            message = Msg(_lt("Field '%(label)s': %(reason)s"), label=label, reason=exc.reason)
        else:
            message = Msg(_lt("Invalid value: %(reason)s"), reason=exc.reason)
        raise SyncError(message, status=400, line_id=line_id) from None


# ---------------------------------------------------------------------------
# URL query -> domain value
# ---------------------------------------------------------------------------

def _query_scalar(ttype, raw):
    if ttype in STRING_TYPES or ttype == "json":
        return raw
    text = raw.strip()
    if text.lower() == "null":
        return False
    if ttype == "boolean":
        return _parse_boolean(text)
    if ttype == "integer":
        return _parse_integer(text)
    if ttype in ("float", "monetary"):
        return _parse_float(text)
    if ttype == "date":
        return _parse_date(text)
    if ttype == "datetime":
        return _parse_datetime(text, allow_date=True)
    if ttype in ID_TYPES or ttype in X2MANY_TYPES:
        return _parse_id_text(text)
    if ttype == "reference":
        return _parse_reference(text)
    raise _Invalid(Msg(_lt("cannot filter on a %(type)s field"), type=ttype))


def _query_error(key, reason):
    if key:
        return SyncError(Msg(_lt("Query parameter '%(key)s': %(reason)s"), key=key, reason=reason), status=400)
    return SyncError(Msg(_lt("Query parameter: %(reason)s"), reason=reason), status=400)


def parse_query_value(ttype, raw, operator="=", *, key=None):
    """Turn the text of a URL query parameter into a domain value.

    Booleans take ``true/false/1/0``, numbers their decimal text, dates
    ``YYYY-MM-DD``, datetimes what ``from_json`` takes or a bare date (midnight
    UTC), relational fields a positive id. ``null`` (non-text types) gives
    ``False``, i.e. "not set". ``in``/``not in`` take a comma-separated list,
    converted element by element (items are stripped, empty items skipped).
    ``like``-style operators keep the raw text. Bad input raises ``SyncError``
    400 "Query parameter 'key': ...".
    """
    if ttype not in SUPPORTED_TYPES:
        raise _query_error(key, _unsupported_reason(ttype))
    if not isinstance(raw, str):
        raise _query_error(key, Msg(_lt("expected text, got %(got)s"), got=_describe(raw)))
    operator = (operator or "=").strip().lower()
    try:
        if operator in TEXT_OPERATORS:
            return raw
        if operator in LIST_OPERATORS:
            items = [item.strip() for item in raw.split(",")]
            return [_query_scalar(ttype, item) for item in items if item]
        return _query_scalar(ttype, raw)
    except _Invalid as exc:
        raise _query_error(key, exc.reason) from None


# ---------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------

def json_depth(obj):
    """Nesting depth of dicts/lists: scalars 0, ``[]`` 1, ``[[1]]`` 2.

    Walks level by level without recursion, so any depth is safe. ``obj`` must
    be acyclic, as parsed JSON always is.
    """
    depth = 0
    level = [obj]
    while level:
        next_level = []
        has_container = False
        for item in level:
            if isinstance(item, dict):
                children = item.values()
            elif isinstance(item, (list, tuple)):
                children = item
            else:
                continue
            has_container = True
            next_level.extend(
                child for child in children if isinstance(child, (dict, list, tuple))
            )
        if not has_container:
            break
        depth += 1
        level = next_level
    return depth


def _json_default(value):
    if isinstance(value, datetime.datetime):
        return _format_datetime(value)
    if isinstance(value, datetime.date):
        return _format_date(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _binary_to_str(value)
    if isinstance(value, Decimal):
        return _number_to_json(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def dumps(obj):
    """Compact JSON (UTF-8 text, not ``\\u`` escapes) that also writes dates,
    datetimes (UTC ``...Z``), bytes (as base64 text) and Decimals.

    NaN and infinities raise ``ValueError``: they are not JSON.
    """
    return json.dumps(
        obj, ensure_ascii=False, separators=(",", ":"), default=_json_default, allow_nan=False
    )
