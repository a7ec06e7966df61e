"""Whether a running job has stopped moving (no bpy).

The backend sends a heartbeat PROGRESS about once a second while a job is queued or
running, repeating the job's last fraction and message, so the connection stays alive
even when the job's compute hangs: the connection timeout cannot notice a stuck job.
:class:`StallWatch` does: the step function shows it every tick what the job reports
(fraction and message); when neither has changed for the preferences' Job Timeout, the
job is *stalled*. Nothing is dropped or cancelled: the panel says so, and the animator
cancels or waits. Any new fraction or message clears it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Fractions closer than this are the same report (a heartbeat repeats the last one).
FRACTION_EPS = 1e-6


@dataclass
class StallWatch:
    """The last progress a job reported, when it changed, and whether that is too long
    ago. Times are ``time.monotonic()`` seconds, passed in so tests choose them."""

    timeout_s: float
    changed_at: float
    fraction: float = -1.0
    message: str = ""
    stalled: bool = field(default=False, init=False)

    def observe(self, fraction: float, message: str, now: float) -> bool:
        """Take the job's current report; return whether it is stalled now."""
        if abs(float(fraction) - self.fraction) > FRACTION_EPS or message != self.message:
            self.fraction, self.message, self.changed_at = float(fraction), message, now
        self.stalled = now - self.changed_at >= self.timeout_s
        return self.stalled

    def idle_s(self, now: float) -> float:
        """Seconds since the job last reported something new."""
        return max(0.0, now - self.changed_at)

    def note(self, now: float) -> str:
        """The panel's line while stalled ("" otherwise)."""
        if not self.stalled:
            return ""
        idle = self.idle_s(now)
        if self.message.startswith("queued"):
            return (f"Queued for {idle:.0f} s — the backend is busy with other jobs; "
                    "Cancel or wait")
        return f"No progress for {idle:.0f} s — the backend may be stuck; Cancel or wait"
