"""The time at which the fakes mint certificates and render charts: the wall clock, or a simulated
one that a test sets and advances (a year of renewals in no time)."""

from __future__ import annotations

import datetime as dt
from typing import Optional


class FakeClock:
    def __init__(self, start: Optional[dt.datetime] = None):
        self._now = start  # None: the wall clock

    def now(self) -> dt.datetime:
        return self._now or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    def advance(self, hours: float) -> dt.datetime:
        assert self._now is not None, "only a simulated clock is advanced"
        self._now += dt.timedelta(hours=hours)
        return self._now
