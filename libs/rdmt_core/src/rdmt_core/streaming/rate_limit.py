"""A sliding-window limit on notifications, so a storm of alerts cannot flood Slack or e-mail.

Pure: the caller passes the time. Alerts over the limit are held back (the notifier logs them, and
they stay on the alert topic for subscribers); the next notification that goes out says how many were
held back.
"""

from __future__ import annotations

from collections import deque


class RateLimit:
    """At most ``max_per_window`` notifications in any ``window_s`` seconds."""

    def __init__(self, max_per_window: int, window_s: float = 3600.0) -> None:
        if max_per_window < 1:
            raise ValueError(f"a rate limit allows at least 1 notification per window, got {max_per_window}")
        self.max_per_window = max_per_window
        self.window_s = window_s
        self._sent: deque[float] = deque()
        self.held_back = 0  # since the last notification that went out

    def allow(self, now: float) -> bool:
        """True (and counted) when a notification may go out at ``now``; False when held back."""
        while self._sent and now - self._sent[0] >= self.window_s:
            self._sent.popleft()
        if len(self._sent) >= self.max_per_window:
            self.held_back += 1
            return False
        self._sent.append(now)
        return True

    def take_held_back(self) -> int:
        """Number held back since the last notification sent, and reset it."""
        count, self.held_back = self.held_back, 0
        return count
