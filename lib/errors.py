"""The one structured error both directions report with, and translatable messages.

Every failure the API can tell a client about carries the HTTP status it maps
to and, when a configuration line caused it, that line's id. The inbound
controller turns it into BJET's body shapes; the outbound flow into a failed
record in the log.

``lib`` has no database, so it cannot translate: its messages are ``Msg``
objects, an English template marked with ``_lt`` (Odoo's term extractor collects
``_lt("...")`` calls into ``i18n/bj_api_sync.pot`` like ``_("...")`` ones) and
its parameters. ``str()`` gives the English text; the Odoo side translates with
``SyncError.translate(env._)`` / ``Msg.translate(env._)``.
"""


def _lt(template):
    """Mark ``template`` as a translatable term; return it unchanged (translated later, by the caller)."""
    return template


class Msg:
    """A translatable message: a template with ``%(name)s`` placeholders and their values.

    Values that are ``Msg`` themselves are translated with the message.
    """

    __slots__ = ("params", "template")

    def __init__(self, template, **params):
        self.template = template
        self.params = params

    def translate(self, gettext=None):
        """The text through ``gettext(template, **params)`` (e.g. ``env._``); English without it."""
        params = {
            name: value.translate(gettext) if isinstance(value, Msg) else value for name, value in self.params.items()
        }
        if gettext is not None:
            return gettext(self.template, **params) if params else gettext(self.template)
        return self.template % params if params else self.template

    def __str__(self):
        return self.translate()

    def __repr__(self):
        return "Msg(%r, **%r)" % (self.template, self.params)


def translate_error(exc, gettext):
    """Translate the ``Msg`` an exception was raised with (``exc.msg``), once; return ``exc``."""
    msg = getattr(exc, "msg", None)
    if isinstance(msg, Msg) and not getattr(exc, "translated", False):
        text = msg.translate(gettext)
        exc.args = (text,)
        if isinstance(exc, SyncError):
            exc.message = text
        exc.translated = True
    return exc


class SyncError(Exception):
    """A failure with an HTTP status and, optionally, the line that caused it.

    ``message`` is text or a ``Msg`` (kept in ``msg``; ``message`` is then its English
    text until ``translate`` is called).
    """

    def __init__(self, message, status=400, line_id=None, details=None, headers=None):
        self.msg = message if isinstance(message, Msg) else None
        self.translated = False
        self.message = str(message)
        super().__init__(self.message)
        self.status = int(status)
        self.line_id = line_id
        # Internal details (tracebacks) for the log only, never for the client.
        self.details = details
        self.headers = dict(headers or {})

    def translate(self, gettext):
        """Translate the message with ``gettext`` (``env._``) when it is a ``Msg``; return self."""
        return translate_error(self, gettext)

    def to_body(self):
        """BJET's error shapes: line errors name the line, others carry a message."""
        if self.line_id:
            return {"error": self.message, "line_id": self.line_id, "status_code": self.status}
        return {"message": self.message, "status_code": self.status}

    def __repr__(self):
        return "SyncError(%r, status=%r, line_id=%r)" % (self.message, self.status, self.line_id)
