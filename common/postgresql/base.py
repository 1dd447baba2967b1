"""Django's PostgreSQL backend with a health check that costs no round trip while the connection
is busy and shows no sign of trouble (settings.DATABASES names this package as the engine).

Measured need: Django checks a reused connection with `SELECT 1` before each request uses it
(CONN_HEALTH_CHECKS): a round trip of 0.09 ms of CPU in the app server alone, and one round trip
more per redemption cost 2% of the redemptions a server answers (bench/http_load.py, side by
side). A connection the server has ended (a restart, pg_terminate_backend, an idle timeout, a
pooler gone) has something to read: the server's last message or the end of the stream. One a
network device dropped silently (an idle flow forgotten by a firewall, an address moved by a
failover) shows nothing until something is sent; devices drop flows after minutes of silence.
So a connection that spoke to the server within the last QUIET_SECONDS and is idle with nothing
to read is taken as usable; any other gets Django's own `SELECT 1`, and is replaced when that
fails, as before.
"""

import select
import time

from django.db.backends.postgresql import base
from psycopg import pq

# How long a connection may have been silent and still skip the round trip.
QUIET_SECONDS = 1.0


class DatabaseWrapper(base.DatabaseWrapper):
    _spoke_at = float("-inf")  # when the connection last opened a cursor (monotonic seconds)

    def create_cursor(self, name=None):
        self._spoke_at = time.monotonic()
        return super().create_cursor(name)

    def is_usable(self) -> bool:
        connection = self.connection
        if connection is None:
            return False
        if (
            time.monotonic() - self._spoke_at < QUIET_SECONDS
            and not connection.closed
            and connection.pgconn.status == pq.ConnStatus.OK
            and connection.pgconn.transaction_status == pq.TransactionStatus.IDLE
            and not _readable(connection.fileno())
        ):
            return True
        return super().is_usable()


def _readable(fd: int) -> bool:
    """Whether the socket has data, its end or an error waiting (without waiting for any)."""
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll(2) here, or a bad descriptor
        return True
