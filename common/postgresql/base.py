"""Django's PostgreSQL backend with a health check that costs no round trip while the connection
shows no sign of trouble (settings.DATABASES names this package as the engine).

Measured need: Django checks a reused connection with `SELECT 1` before each request uses it
(CONN_HEALTH_CHECKS): a round trip that cost a redemption 0.09 ms of CPU in the app server and
about as much in the database, 5% of the whole (bench/http_load.py). A connection the server has
ended (a restart, pg_terminate_backend, an idle timeout, a pooler gone) has something to read:
the server's last message or the end of the stream. So an idle connection with nothing to read
is taken as usable, and any other is checked by Django's own `SELECT 1`, as before.
"""

import select

from django.db.backends.postgresql import base
from psycopg import pq


class DatabaseWrapper(base.DatabaseWrapper):
    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None:
            return False
        if (
            not connection.closed
            and connection.pgconn.status == pq.ConnStatus.OK
            and connection.pgconn.transaction_status == pq.TransactionStatus.IDLE
            and not _readable(connection.fileno())
        ):
            return True
        return super().is_usable()


def _readable(fd: int) -> bool:
    """Whether the socket has data or its end waiting (without waiting for either)."""
    try:
        readable, _, _ = select.select([fd], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
