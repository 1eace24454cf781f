"""The one structured error both directions report with.

Every failure the API can tell a client about carries the HTTP status it maps
to and, when a configuration line caused it, that line's id. The inbound
controller turns it into BJET's body shapes; the outbound flow into a failed
record in the log.
"""


class SyncError(Exception):
    """A failure with an HTTP status and, optionally, the line that caused it."""

    def __init__(self, message, status=400, line_id=None, details=None, headers=None):
        super().__init__(message)
        self.message = str(message)
        self.status = int(status)
        self.line_id = line_id
        # Internal details (tracebacks) for the log only, never for the client.
        self.details = details
        self.headers = dict(headers or {})

    def to_body(self):
        """BJET's error shapes: line errors name the line, others carry a message."""
        if self.line_id:
            return {"error": self.message, "line_id": self.line_id, "status_code": self.status}
        return {"message": self.message, "status_code": self.status}

    def __repr__(self):
        return "SyncError(%r, status=%r, line_id=%r)" % (self.message, self.status, self.line_id)
