"""Configuration-line scripts, run only through Odoo's ``safe_eval``.

A line of type "Python Script for Plain Value" or "Relational with Python
Script" carries user code. Evaluate mode is one expression (``safe_eval`` in
eval mode); Execute mode is statements (exec mode, ``nocopy=True`` so that an
assigned ``result`` can be read back). The context is the one of Odoo's server
actions plus what a mapping needs (``request_data``, ``config``, ``line``,
``log``); ``SCRIPT_CONTEXT_NAMES`` lists it and the Script dialog's manual
(views/bj_api_sync_config_line_views.xml) documents the same names.

Errors become ``SyncError`` naming the line: a ``UserError`` (or
``ValidationError``) raised by the script is the client's problem (400, 403
for an ``AccessError``), anything else is a broken script (500, traceback in
``details`` for the log, never for the client).
"""

import base64
import contextlib
import datetime as std_datetime
import logging
import threading
import traceback

import psycopg2
import pytz
from dateutil.relativedelta import relativedelta

from odoo import Command
from odoo.exceptions import AccessError, UserError
from odoo.tools import float_compare
from odoo.tools import safe_eval as safe_eval_module
from odoo.tools.safe_eval import safe_eval, wrap_module

from ..lib.errors import SyncError

_logger = logging.getLogger(__name__)

__all__ = ["SCRIPT_CONTEXT_NAMES", "build_context", "run_script"]

# The names a script sees, in the order of the Script dialog's manual.
SCRIPT_CONTEXT_NAMES = (
    "env",
    "model",
    "records",
    "record",
    "request_data",
    "time",
    "datetime",
    "dateutil",
    "timezone",
    "timedelta",
    "relativedelta",
    "json",
    "float_compare",
    "b64encode",
    "b64decode",
    "UserError",
    "Command",
    "config",
    "line",
    "log",
)

_NO_RESULT = object()
_collector = threading.local()


@contextlib.contextmanager
def collect_messages():
    """Collect every ``log(message)`` of the scripts run inside, for the request's API log."""
    previous = getattr(_collector, "messages", None)
    _collector.messages = messages = []
    try:
        yield messages
    finally:
        _collector.messages = previous


def _datetime_namespace():
    """safe_eval's ``datetime`` module wrapper plus the datetime class's constructors.

    Server actions write ``datetime.datetime.now()``; BJET's examples write
    ``datetime.strptime(...)``: both must work, so the module wrapper also
    carries the class methods that do not clash with the module's names.
    """
    namespace = wrap_module(
        std_datetime, ["date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MAXYEAR", "MINYEAR"]
    )
    for name in ("now", "utcnow", "today", "strptime", "fromisoformat", "fromtimestamp", "combine"):
        setattr(namespace, name, getattr(std_datetime.datetime, name))
    return namespace


_DATETIME = _datetime_namespace()


def build_context(line, *, env, record=None, records=None, request_data=None, messages=None, config=None):
    """The evaluation context of one script run (a fresh dict: Execute mode writes into it).

    The configuration is read as superuser (same uid): a Run As user needs no
    access to the configuration models for its scripts to run.
    """
    config = config or line.config_id
    model = env[config.sudo().model_id.model]
    if record is None:
        record = model.browse()
    if records is None:
        records = record
    messages = messages if messages is not None else []
    api_key = line.sudo().api_key

    def log(message):
        """Keep a script's message for the API log of the request."""
        text = "%s: %s" % (api_key, message)
        messages.append(text)
        collector = getattr(_collector, "messages", None)
        if collector is not None and collector is not messages:
            collector.append(text)
        _logger.info("bj_api_sync script log: %s", text)

    context = {
        "env": env,
        "model": model,
        "records": records,
        "record": record,
        "request_data": request_data if request_data is not None else {},
        "time": safe_eval_module.time,
        "datetime": _DATETIME,
        "dateutil": safe_eval_module.dateutil,
        "timezone": pytz.timezone,
        "timedelta": std_datetime.timedelta,
        "relativedelta": relativedelta,
        "json": safe_eval_module.json,
        "float_compare": float_compare,
        "b64encode": base64.b64encode,
        "b64decode": base64.b64decode,
        "UserError": UserError,
        "Command": Command,
        "config": config.with_env(env),
        "line": line.with_env(env),
        "log": log,
    }
    assert tuple(context) == SCRIPT_CONTEXT_NAMES
    return context


def _original_exception(exc):
    """The script's own exception: safe_eval re-raises most as ``ValueError('<repr> while evaluating...')``."""
    if type(exc) is ValueError and " while evaluating\n" in str(exc) and exc.__context__ is not None:
        return exc.__context__
    return exc


def run_script(line, *, env, record=None, records=None, request_data=None, messages=None, config=None):
    """Run ``line.python_script``; return ``(has_value, value)``.

    Evaluate always has a value. Execute has one only when the script assigned
    ``result``. ``request_data`` is passed as is (not copied): the script may
    change it for the lines that follow.
    """
    context = build_context(
        line, env=env, record=record, records=records, request_data=request_data, messages=messages, config=config
    )
    sline = line.sudo()
    code = sline.python_script or ""
    mode = sline.script_mode or "eval"
    api_key = sline.api_key
    filename = "bj_api_sync line %s (%s)" % (line.id, api_key)
    try:
        if mode == "exec":
            safe_eval(code, context, mode="exec", nocopy=True, filename=filename)
            value = context.get("result", _NO_RESULT)
            return (value is not _NO_RESULT), (None if value is _NO_RESULT else value)
        return True, safe_eval(code.strip(), context, mode="eval", filename=filename)
    except SyncError as exc:
        if exc.line_id is None:
            exc.line_id = line.id
        raise
    except psycopg2.OperationalError:
        # Serialization failures and the like: Odoo retries the whole request.
        raise
    except AccessError as exc:
        raise SyncError(_message(exc), status=403, line_id=line.id) from exc
    except UserError as exc:
        raise SyncError(_message(exc), status=400, line_id=line.id) from exc
    except Exception as exc:
        original = _original_exception(exc)
        message = env._(
            "Script error in line %(key)s: %(error)s: %(message)s",
            key=api_key,
            error=type(original).__name__,
            message=original,
        )
        details = "".join(traceback.format_exception(exc))
        _logger.info("bj_api_sync: %s", message)
        raise SyncError(message, status=500, line_id=line.id, details=details) from exc


def _message(exc):
    return exc.args[0] if exc.args else str(exc)
