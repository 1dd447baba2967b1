"""Django's PostgreSQL backend with a health check that costs no round trip while the connection
shows no sign of trouble (settings.DATABASES names this package as the engine).

Measured need: Django checks a reused connection with `SELECT 1` before each request uses it
(CONN_HEALTH_CHECKS): a round trip of 0.09 ms of CPU in the app server alone, and one round trip
more per redemption cost 2% of the redemptions a server answers (bench/http_load.py, side by
side). A connection the server has
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
    """Whether the socket has data, its end or an error waiting (without waiting for any)."""
    poller = select.poll()
    try:
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
