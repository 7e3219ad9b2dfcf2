"""One exception family for every database backend.

Callers need to tell apart what they can retry (a lost connection, a lock), what is the caller's
fault (an integrity error) and what took too long (a statement timeout, or a ConBridge call killed
after ``db_timeout``).
"""


class DBError(Exception):
    """Any database failure."""


class ConnectionLost(DBError):
    """The session is gone (server restart, terminated backend, network). Reconnect and retry."""


class IntegrityError(DBError):
    """A constraint was violated (duplicate key, NOT NULL, foreign key)."""


class LockTimeout(DBError):
    """A row or table lock could not be obtained in time, or a deadlock was broken."""


class Deadlock(LockTimeout):
    """The server broke a deadlock by rolling this transaction back; running it again is safe."""


class StatementTimeout(DBError):
    """The server cancelled a statement that ran past its statement timeout."""


class DBTimeout(DBError):
    """A ConBridge call exceeded ``db_timeout``; its child process and DB session were killed."""


class PoolTimeout(DBError):
    """No proxy became free within the pool's bounded wait."""
