"""The grouped notification sent after a delivery: one message, whatever fails.

:func:`format_notification` turns a :class:`DeliverySummary` into one title and
one text (plain text that Slack's mrkdwn shows as it is): which detectors
failed, why, which input files could not be monitored, and where the report is.
:func:`notify_delivery` always logs it, and sends it to a Slack-compatible
incoming webhook and to e-mail recipients when something failed.

Secrets (the webhook URL, the SMTP password) come from environment variables
named in :class:`NotifyConfig`; they are never logged and never put into an
error message. A channel that fails is logged as a warning and does not stop
the others. This module decides nothing about quality: it only reports.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import re
import smtplib
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from pathlib import PurePath

import numpy as np
from pydantic import SecretStr

from .config import NotifyConfig, SmtpConfig
from .geometry import SCALES
from .records import DeliverySummary, FileResult, Status

LOGGER_NAME = "rdmt.notify"
TOP_METRICS = 3  # failing metrics shown per detector
TOP_PROBLEMS = 5  # input problems listed by name
_FAIL = Status.FAIL.value
_CELL_NAMES = {"detector": "detector", "amplifier": "amplifier", "superpixel": "super-pixel"}


@dataclass(frozen=True)
class Notification:
    """One delivery's message: a one-line title (the e-mail subject) and the text."""

    title: str
    text: str
    failed_detectors: list[str]


def format_notification(summary: DeliverySummary, config: NotifyConfig) -> Notification:
    """Group a delivery's failures and input problems into one message.

    Parameters
    ----------
    summary : DeliverySummary
        The results and input problems of one pipeline run.
    config : NotifyConfig
        ``report_base_url``, when set, replaces the local report path in the link.

    Returns
    -------
    Notification
        Title, text, and the sorted names of the detectors with a failing result.
    """
    failed = sorted(summary.failed_results, key=_result_order)
    unmeasured = sorted(summary.unmeasured_results, key=_result_order)
    parts = []
    for monitor in sorted({r.monitor for r in summary.results}):
        detectors = {r.identity.detector for r in summary.results if r.monitor == monitor}
        n_failed = len({r.identity.detector for r in failed if r.monitor == monitor})
        n_unmeasured = len({r.identity.detector for r in unmeasured if r.monitor == monitor})
        words = [f"{n} of {len(detectors)} detectors {what}" for n, what in
                 ((n_failed, "failed"), (n_unmeasured, "not measured")) if n]  # fmt: skip
        if not words and any(r.verdict == Status.INCOMPLETE.value for r in summary.results if r.monitor == monitor):
            words = [f"no failure in {len(detectors)} detectors"]
        parts.append(f"{monitor}: {', '.join(words) if words else f'all {len(detectors)} detectors passed'}")
    if summary.problems:
        parts.append(_plural(len(summary.problems), "input problem"))
    title = f"RDMT {'; '.join(parts) or 'no files monitored'} (run {summary.run_id})"

    lines = [f"*{title}*"]
    if failed:
        lines += ["", "Failed:"] + [_result_line(result) for result in failed]
    if unmeasured:
        lines += ["", "Not measured:"] + [_unmeasured_line(result) for result in unmeasured]
    if summary.results and not failed and not unmeasured:
        unjudged = sum(1 for r in summary.results if r.verdict == Status.INCOMPLETE.value)
        if unjudged:
            lines += [
                "",
                f"No failing values; {_plural(unjudged, 'result')} of {len(summary.results)} with values that could "
                "not be judged (no value: see the reports).",
            ]
        else:
            waiting = sum(1 for r in summary.results if r.waiting_for_history)
            history = f"; in {waiting}, change and trend wait for earlier files" if waiting else ""
            lines += ["", f"All {_plural(len(summary.results), 'result')} passed (no failing values{history})."]
    if summary.problems:
        lines += ["", _problems_line(summary)]
    lines += ["", f"Report: {_report_link(summary, config)}"]
    detectors = sorted({r.identity.detector for r in failed})
    return Notification(title=title, text="\n".join(lines), failed_detectors=detectors)


def _result_order(result: FileResult) -> tuple[str, str, datetime]:
    return result.monitor, result.identity.detector, result.identity.file_time


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _unmeasured_line(result: FileResult) -> str:
    identity = result.identity
    return (
        f"• *{identity.detector}* {result.monitor} ({identity.kind}, "
        f"{identity.file_time:%Y-%m-%dT%H:%M:%S}): {result.unmeasured}"
    )


def _result_line(result: FileResult) -> str:
    """Detector, kind, time, failing values per evaluator, and the first few failing metrics."""
    counts: Counter[str] = Counter()
    failing_metrics: dict[str, tuple[str, list[str]]] = {}  # metric -> (coarsest reason, evaluators)
    order = {scale: i for i, scale in enumerate(SCALES)}
    for block in sorted(result.evaluations, key=lambda b: order.get(b.scale, len(order))):
        failing = np.flatnonzero(block.status == _FAIL)
        counts[block.evaluator] += len(failing)
        if not len(failing):
            continue
        if block.metric not in failing_metrics:
            i = failing[0]
            where = ""
            if block.scale != "detector":
                cell = f"{_CELL_NAMES.get(block.scale, block.scale)} {block.cells[i]}"
                where = f" ({cell}, {_plural(len(failing), 'cell')} failing)"
            failing_metrics[block.metric] = (f"{block.metric}{where}: {block.reason[i]}", [])
        evaluators = failing_metrics[block.metric][1]
        if block.evaluator not in evaluators:
            evaluators.append(block.evaluator)
    shown = [
        text + (f" (also {', '.join(evaluators[1:])})" if len(evaluators) > 1 else "")
        for text, evaluators in list(failing_metrics.values())[:TOP_METRICS]
    ]
    if len(failing_metrics) > TOP_METRICS:
        shown.append(f"and {_plural(len(failing_metrics) - TOP_METRICS, 'more metric')}")
    per_evaluator = ", ".join(f"{name} {n}" for name, n in counts.items() if n)
    when = result.identity.file_time.strftime("%Y-%m-%dT%H:%M:%S")
    return (
        f"• *{result.identity.detector}* {result.monitor} ({result.identity.kind}, {when}): "
        f"failing values {per_evaluator}; " + "; ".join(shown)
    )


def _problems_line(summary: DeliverySummary) -> str:
    skipped = sum(p.skipped for p in summary.problems)
    head = f"Input problems: {len(summary.problems) - skipped} failed, {skipped} skipped"
    items = [
        f"{p.source}: {p.reason}{' (skipped)' if p.skipped else ''}" for p in summary.problems[:TOP_PROBLEMS]
    ]
    if len(summary.problems) > TOP_PROBLEMS:
        items.append(f"and {len(summary.problems) - TOP_PROBLEMS} more")
    return f"{head}: " + "; ".join(items)


def _report_link(summary: DeliverySummary, config: NotifyConfig) -> str:
    if config.report_base_url:
        base = config.report_base_url.rstrip("/")
        return f"{base}/{PurePath(summary.overview_path).name}" if summary.overview_path else base
    return summary.overview_path or summary.output_dir


def notify_delivery(
    summary: DeliverySummary,
    config: NotifyConfig,
    env: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
) -> list[str]:
    """Log the delivery's notification; send it to Slack and e-mail when something failed.

    Parameters
    ----------
    summary : DeliverySummary
        The pipeline run to report.
    config : NotifyConfig
        Channels, timeouts and the report URL.
    env : mapping, optional
        Environment holding the webhook URL and SMTP password (``os.environ`` by default).
    logger : logging.Logger, optional
        Where the notification and channel failures go (``rdmt.notify`` by default).

    Returns
    -------
    list of str
        The channels that delivered: ``"log"`` always, then ``"slack"`` and ``"email"``
        when they were configured, needed and succeeded.
    """
    log = logger or logging.getLogger(LOGGER_NAME)
    note = format_notification(summary, config)
    log.log(logging.WARNING if note.failed_detectors else logging.INFO, "%s", note.text)
    if not (note.failed_detectors or summary.problems):
        return ["log"]  # a clean delivery is only logged
    return ["log", *send_notification(note, config, env, log)]


def send_notification(
    note: Notification,
    config: NotifyConfig,
    env: Mapping[str, str] | None = None,
    logger: logging.Logger | None = None,
) -> list[str]:
    """Send ``note`` to the configured Slack-compatible webhook and e-mail recipients.

    Used by :func:`notify_delivery` and by the streaming notifier (one alert record, one message).
    A channel that fails is logged as a warning and does not stop the others.

    Returns
    -------
    list of str
        The channels that delivered: ``"slack"`` and ``"email"``.
    """
    env = os.environ if env is None else env
    log = logger or logging.getLogger(LOGGER_NAME)
    delivered: list[str] = []
    url = env.get(config.slack_webhook_env)
    if url:
        channel = f"slack webhook (from ${config.slack_webhook_env})"
        webhook = SecretStr(url)
        try:
            _post_slack(webhook, note.text, config.timeout_s)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            log.warning("notification not sent to %s: %s", channel, _safe_error(exc, [webhook]))
        else:
            log.info("notification sent to %s", channel)
            delivered.append("slack")

    if config.smtp is not None:
        smtp = config.smtp
        channel = f"email (smtp {smtp.host}:{smtp.port})"
        password = SecretStr(env.get(smtp.password_env, ""))
        try:
            _send_email(note, smtp, password)
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            log.warning("notification not sent by %s: %s", channel, _safe_error(exc, [password]))
        else:
            log.info("notification sent by %s to %s", channel, ", ".join(smtp.recipients))
            delivered.append("email")
    return delivered


def _post_slack(webhook: SecretStr, text: str, timeout_s: float) -> None:
    """POST ``{"text": text}`` to the webhook; raises on a non-2xx answer or no connection."""
    url = webhook.get_secret_value()
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise ValueError("the webhook is not an http(s) URL")
    # Slack's mrkdwn gives &, < and > a meaning; escaping them shows reasons as written.
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    body = json.dumps({"text": escaped}).encode("utf-8")
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json; charset=utf-8"}
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        response.read()


def _send_email(note: Notification, smtp: SmtpConfig, password: SecretStr) -> None:
    """Send the notification to every recipient in one message."""
    if smtp.username and not password.get_secret_value():
        raise ValueError(f"${smtp.password_env} is not set but smtp.username is")
    message = EmailMessage()
    message["Subject"] = note.title
    message["From"] = smtp.sender
    message["To"] = ", ".join(smtp.recipients)
    message.set_content(note.text)
    with smtplib.SMTP(smtp.host, smtp.port, timeout=smtp.timeout_s) as client:
        if smtp.starttls:
            client.starttls(context=ssl.create_default_context())
        if smtp.username:
            client.login(smtp.username, password.get_secret_value())
        client.send_message(message)


def _safe_error(exc: BaseException, secrets: list[SecretStr]) -> str:
    """A one-line description of ``exc``, withheld when it quotes any part of a secret."""
    if isinstance(exc, urllib.error.HTTPError):
        text = f"HTTP {exc.code} {exc.reason}"
    elif isinstance(exc, urllib.error.URLError):
        text = f"cannot connect ({exc.reason})"
    else:
        text = f"{type(exc).__name__}: {exc}"
    for secret in secrets:
        # Libraries quote pieces of a bad URL (its path, its host) in their messages, not always all of it.
        value = re.sub(r"^[A-Za-z][A-Za-z0-9+.-]*://", "", secret.get_secret_value())
        pieces = [value, *re.split(r"[/?&=#:@\s]+", value)]
        if any(len(piece) >= 4 and piece in text for piece in pieces):
            return f"{type(exc).__name__} (details withheld: they quote part of a secret)"
    return text
