"""Alert grouping: a delivery's evaluation records become one alert record, and an alert one message.

Pure: no Kafka, no state store, no network. :func:`result_summary` keeps of an evaluation record
what an alert needs (failing cells per evaluator, the worst failing metrics); a delivery's group is
a JSON mapping (so a state store can keep it) built by :func:`add_result`, idempotent per file: a
redelivered record replaces its earlier summary. :func:`alert_record` makes the ``alert`` record
when the group is complete or has waited long enough, and only when something failed;
:func:`format_alert` turns an alert into the text the notifier sends. :func:`send_alert` sends it,
within a sliding-window :class:`RateLimit`, so a storm of alerts cannot flood Slack or e-mail (alerts
over the limit are logged, and stay on the alert topic for subscribers; the next notification that goes
out says how many were held back).
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .geometry import SCALES
from .notify import Notification, send_notification
from .records import Status
from .wire import as_datetime

if TYPE_CHECKING:
    from .config import NotifyConfig
    from .kafka.settings import ServiceOptions

log = logging.getLogger("rdmt.streaming.notifier")
LIVE = "live"
TOP_FAILURES = 3  # failing metrics listed per detector
_FAIL = Status.FAIL.value
_SCALE_ORDER = {scale: i for i, scale in enumerate(SCALES)}


def result_summary(record: Mapping[str, Any]) -> dict[str, Any]:
    """What an alert needs of one decoded ``evaluation_record`` (JSON: a state store can keep it)."""
    fail_counts: Counter[str] = Counter()
    failing: dict[tuple[str, str], list[Any]] = {}  # (metric, evaluator) -> [scale, n_fail, reason], coarsest scale
    for block in sorted(record["evaluations"], key=lambda b: _SCALE_ORDER.get(b["scale"], len(SCALES))):
        positions = [i for i, status in enumerate(block["status"]) if status == _FAIL]
        if not positions:
            continue
        fail_counts[block["evaluator"]] += len(positions)
        example = [block["scale"], len(positions), block["reason"][positions[0]]]
        failing.setdefault((block["metric"], block["evaluator"]), example)
    return {
        "delivery_id": record["delivery_id"],
        "n_files_in_delivery": int(record["n_files_in_delivery"]),
        "release": record["release"],
        "monitor": record["monitor"],
        "detector": record["detector"],
        "file_key": record["file_key"],
        "fail_counts": dict(fail_counts),
        "failures": [[metric, evaluator, *rest] for (metric, evaluator), rest in failing.items()],
    }


def result_key_of(summary: Mapping[str, Any]) -> str:
    """The key of one (monitor, file) result in a delivery's group."""
    return f"{summary['monitor']}|{summary['file_key']}"


def add_result(group: Mapping[str, Any] | None, summary: Mapping[str, Any], now_ms: int) -> dict[str, Any]:
    """The delivery's group with ``summary`` added (replacing an earlier summary of the same file)."""
    group = dict(group) if group else {
        "delivery_id": summary["delivery_id"],
        "release": summary["release"],
        "first_seen_ms": int(now_ms),
        "results": {},
    }  # fmt: skip
    group["n_expected"] = max(int(summary["n_files_in_delivery"]), group.get("n_expected", 0))
    group["results"] = dict(group["results"]) | {result_key_of(summary): dict(summary)}
    return group


def is_complete(group: Mapping[str, Any]) -> bool:
    """Every (file, monitor) result of the delivery is in."""
    return len(group["results"]) >= group["n_expected"]


def is_overdue(group: Mapping[str, Any], now_ms: int, timeout_s: float) -> bool:
    """The group has waited ``timeout_s`` since its first result."""
    return now_ms - group["first_seen_ms"] >= timeout_s * 1000


def alert_record(
    group: Mapping[str, Any], now: datetime | None = None, report_url: str | None = None, alert_id: str | None = None,
    late: bool = False,
) -> dict[str, Any] | None:
    """The ``alert`` record of a delivery's group; ``None`` when nothing failed.

    ``late``: the group holds results that arrived after the delivery was closed (its alert, if any, already
    sent): a follow-up alert of that delivery.
    """
    results = list(group["results"].values())
    detectors = []
    for detector in sorted({r["detector"] for r in results}):
        mine = [r for r in results if r["detector"] == detector and r["fail_counts"]]
        if not mine:
            continue
        counts: Counter[str] = Counter()
        top = []
        for result in mine:
            counts.update(result["fail_counts"])
            top += [
                {"monitor": result["monitor"], "metric": metric, "evaluator": evaluator, "scale": scale,
                 "n_fail": n_fail, "reason": reason}
                for metric, evaluator, scale, n_fail, reason in result["failures"]
            ]  # fmt: skip
        # Coarsest scale first (a whole-detector failure matters most), then the most failing cells.
        top.sort(key=lambda f: (_SCALE_ORDER.get(f["scale"], len(SCALES)), -f["n_fail"], f["metric"]))
        detectors.append(
            {
                "detector": detector,
                "n_failed_files": len(mine),
                "fail_counts": dict(counts),
                "top_failures": top[:TOP_FAILURES],
            }
        )
    if not detectors:
        return None
    return {
        "alert_id": alert_id or str(uuid.uuid4()),
        "delivery_id": group["delivery_id"],
        "release": group["release"],
        "monitors": sorted({r["monitor"] for r in results}),
        "created_at": now or datetime.now(UTC),
        "n_files": len(results),
        "n_files_expected": int(group["n_expected"]),
        "detectors": detectors,
        "report_url": report_url,
        "replay": group["release"] != LIVE,
        "late": late,
    }


def format_alert(alert: Mapping[str, Any]) -> Notification:
    """The message of one alert: a title (the e-mail subject) and plain text (Slack mrkdwn shows it as is)."""
    failed = [d["detector"] for d in alert["detectors"]]
    monitors = ", ".join(alert["monitors"])
    replay = f" [replay, release {alert['release']}]" if alert["replay"] else ""
    late = alert.get("late", False)
    title = (
        f"RDMT {monitors}: {len(failed)} {'detector' if len(failed) == 1 else 'detectors'} failed in delivery "
        f"{alert['delivery_id']} ({alert['n_files']} {'late result' if late else 'files'}"
        f"{'s' if late and alert['n_files'] != 1 else ''}){replay}"
    )
    lines = [f"*{title}*"]
    if late:
        lines.append(
            "Follow-up: these results arrived after the delivery's alert window had closed "
            f"(it expected {alert['n_files_expected']} results); they were not in its first alert."
        )
    elif alert["n_files"] < alert["n_files_expected"]:
        lines.append(f"Only {alert['n_files']} of {alert['n_files_expected']} results had arrived when this was sent.")
    lines += ["", "Failed:"]
    for detector in alert["detectors"]:
        counts = ", ".join(f"{name} {n}" for name, n in sorted(detector["fail_counts"].items()))
        reasons = "; ".join(
            f"{f['metric']} ({f['evaluator']}, {f['scale']}, {f['n_fail']} failing): {f['reason']}"
            for f in detector["top_failures"]
        )
        lines.append(f"• *{detector['detector']}* failing values {counts}; {reasons}")
    if alert.get("report_url"):
        lines += ["", f"Report: {alert['report_url']}"]
    return Notification(title=title, text="\n".join(lines), failed_detectors=failed)


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


def send_alert(alert: Mapping[str, Any], notify: NotifyConfig, options: ServiceOptions, limit: RateLimit) -> None:
    """Send one alert to the configured channels (or only log it: replays, old alerts, over the rate limit)."""
    note = format_alert(alert)
    age_s = time.time() - as_datetime(alert["created_at"]).timestamp()
    if alert["replay"] and not options.notify_replays:
        log.info("replay alert of delivery %s (release %s) not sent:\n%s", alert["delivery_id"], alert["release"],
                 note.text)  # fmt: skip
    elif age_s > options.notify_max_age_s:
        log.info("alert of delivery %s is %.0f s old: not sent again", alert["delivery_id"], age_s)
    elif not limit.allow(time.time()):
        log.warning("rate limit (%d per hour): alert of delivery %s held back, not sent:\n%s",
                    options.notify_max_per_hour, alert["delivery_id"], note.text)  # fmt: skip
    else:
        held_back = limit.take_held_back()
        if held_back:
            note = dataclasses.replace(
                note,
                text=f"{note.text}\n({held_back} earlier alerts were held back by the rate limit: see the alert topic)",
            )
        log.warning("%s", note.text)
        channels = send_notification(note, notify)
        log.info("alert of delivery %s sent to %s", alert["delivery_id"], ", ".join(channels) or "no channel")
