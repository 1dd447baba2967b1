from django.conf import settings

from ops.beats import beats, seconds_since


def worker_seen() -> str:
    """ "ok" when a worker beat within READYZ_WORKER_SECONDS, or when none is needed (0, or jobs
    run inline); otherwise what was seen."""
    needed = settings.READYZ_WORKER_SECONDS
    if not needed or settings.JOBS_INLINE:
        return "ok"
    seen = seconds_since(beats().worker_last_seen())
    if seen is None:
        return "no worker seen"
    if seen > needed:
        return f"no worker seen for {int(seen)} s"
    return "ok"
