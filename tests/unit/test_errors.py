"""lib.errors: SyncError and the translatable messages lib raises without a database."""

import ast
import pathlib

import pytest
from lib import signing, values
from lib.errors import Msg, SyncError, _lt, translate_error

LIB = pathlib.Path(__file__).resolve().parents[2] / "lib"


def fake_gettext(template, **params):
    """A stand-in for env._: brackets the template ("translates" it), then formats it."""
    return "[%s]" % template % params if params else "[%s]" % template


def test_msg_english_and_translated():
    msg = Msg(_lt("Field '%(label)s': %(reason)s"), label="name",
              reason=Msg(_lt("expected a string, got %(got)s"), got=Msg(_lt("number %(value)s"), value="12")))
    assert str(msg) == "Field 'name': expected a string, got number 12"
    # nested messages are translated too; parameters are not
    assert msg.translate(fake_gettext) == "[Field 'name': [expected a string, got [number 12]]]"
    assert Msg(_lt("array")).translate(fake_gettext) == "[array]"


def test_sync_error_keeps_english_until_translated_once():
    with pytest.raises(SyncError) as info:
        values.from_json("char", 12, label="Phone", line_id=4)
    err = info.value
    assert err.message == str(err) == "Field 'Phone': expected a string, got number 12"
    assert err.translate(fake_gettext) is err
    assert err.message == str(err) == "[Field 'Phone': [expected a string, got [number 12]]]"
    assert err.to_body() == {"error": err.message, "line_id": 4, "status_code": 400}
    err.translate(lambda template, **params: "again")  # already translated: kept
    assert err.message.startswith("[Field")
    plain = SyncError("plain text", status=404)
    assert plain.translate(fake_gettext).message == "plain text"


def test_query_and_signature_errors_translatable():
    with pytest.raises(SyncError) as info:
        values.parse_query_value("integer", "red", key="color")
    assert info.value.translate(fake_gettext).message == (
        "[Query parameter 'color': [expected an integer, got [string 'red']]]"
    )
    with pytest.raises(signing.SignatureError) as info:
        signing.verify("whsec_QUJD", {}, b"")
    assert str(info.value).startswith("Missing webhook signature header(s): webhook-id")
    assert str(translate_error(info.value, fake_gettext)).startswith("[Missing webhook signature header(s): webhook-id")


def _calls(tree, name):
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name]


@pytest.mark.parametrize("module", ["values.py", "signing.py"])
def test_every_message_is_an_extractable_term(module):
    """Odoo's extractor finds _lt("...") literals only: every Msg template is one, or a name
    assigned from one (a variable, or _expected's parameter), and no English text is raised."""
    tree = ast.parse((LIB / module).read_text())
    lt_calls = _calls(tree, "_lt")
    assert lt_calls and all(isinstance(call.args[0], ast.Constant) for call in lt_calls)
    for call in _calls(tree, "Msg") + _calls(tree, "_expected"):
        first = call.args[0]
        if isinstance(first, ast.Call):
            assert isinstance(first.func, ast.Name) and first.func.id == "_lt", ast.unparse(call)
        else:
            assert isinstance(first, ast.Name), ast.unparse(call)
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "expected" for t in node.targets):
            assert not isinstance(node.value, (ast.Constant, ast.JoinedStr)), ast.unparse(node)
        if (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name)
                and node.exc.func.id in ("SyncError", "SignatureError", "_Invalid")):
            for arg in node.exc.args:
                assert not isinstance(arg, (ast.JoinedStr, ast.Constant)), ast.unparse(node)
