"""The grouped delivery notification, against a real local webhook and a real local SMTP server."""

from __future__ import annotations

import dataclasses
import json
import logging
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from rdmt_core.config import NotifyConfig, SmtpConfig
from rdmt_core.notify import format_notification, notify_delivery
from rdmt_core.records import DeliverySummary, FileResult, InputProblem, Status

from .. import builders

DETECTORS = [f"WFI{i:02d}" for i in range(1, 19)]
FAILING = ["WFI03", "WFI11"]
PASSING = [d for d in DETECTORS if d not in FAILING]
WEBHOOK_TOKEN = "T0000/B0000/s3cr3t-w3bh00k-t0k3n"
PASSWORD = "hunter2-smtp-pa55word"
OVERVIEW = "/data/rdmt-output/overview-run-42.html"


def dark_result(detector: str, seed: int) -> FileResult:
    """A dark file's result; WFI03 has a 16x16 block at 1 DN/s, WFI11 a dark rate of 0.6 DN/s everywhere."""
    rng = np.random.default_rng(seed)
    dark_slope = rng.normal(0.005, 0.001, (256, 256)).astype(np.float32)
    if detector == "WFI03":
        dark_slope[64:80, 96:112] = 1.0
    if detector == "WFI11":
        dark_slope += np.float32(0.6)
    return builders.dark_result(dark_slope, detector, f"/data/dark_{seed}.asdf", datetime(2026, 3, 1, 12, tzinfo=UTC))


@pytest.fixture(scope="module")
def results() -> list[FileResult]:
    return [dark_result(detector, seed) for seed, detector in enumerate(DETECTORS)]


def summary_of(results: list[FileResult], problems: list[InputProblem] | None = None) -> DeliverySummary:
    return DeliverySummary("run-42", "live", results, problems or [], "/data/rdmt-output", OVERVIEW)


@pytest.fixture
def failing(results: list[FileResult]) -> DeliverySummary:
    return summary_of(results, [InputProblem("/data/broken.asdf", "not an ASDF file")])


@pytest.fixture
def clean(results: list[FileResult]) -> DeliverySummary:
    return summary_of([r for r in results if r.identity.detector in PASSING])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Webhook:
    """A local Slack-compatible incoming webhook that records POSTed bodies."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                self.send_response(hook.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/services/{WEBHOOK_TOKEN}"


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    thread = threading.Thread(target=hook.server.serve_forever, daemon=True)
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
    thread.join()


class Mailbox:
    """aiosmtpd handler and authenticator that keep every message and login."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content.decode("utf-8")  # type: ignore[attr-defined]
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), content))  # type: ignore[attr-defined]
        return "250 OK"

    def __call__(self, *args: object) -> AuthResult:
        data = args[-1]  # (server, session, envelope, mechanism, auth data)
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        return AuthResult(success=data.password == PASSWORD.encode(), handled=False)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port, authenticator=box, auth_require_tls=False)
    controller.start()
    yield box, port
    controller.stop()


def smtp_config(port: int, **kwargs: object) -> SmtpConfig:
    settings = {
        "host": "127.0.0.1",
        "port": port,
        "sender": "rdmt@stsci.example",
        "recipients": ["wfi-team@stsci.example", "soc@stsci.example"],
        "timeout_s": 5.0,
    }
    return SmtpConfig(**(settings | kwargs))


def notify_config(port: int | None = None, **smtp: object) -> NotifyConfig:
    return NotifyConfig(
        smtp=None if port is None else smtp_config(port, **smtp),
        report_base_url="https://rdmt.example/reports/",
        timeout_s=5.0,
    )


def assert_no_secret(caplog: pytest.LogCaptureFixture, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in caplog.text
        for record in caplog.records:
            assert secret not in record.getMessage()


# ---- formatting -------------------------------------------------------------


def test_injected_detectors_fail_and_the_rest_pass(results: list[FileResult]) -> None:
    assert sorted(r.identity.detector for r in results if r.status == Status.FAIL) == FAILING


def test_one_grouped_message_names_failing_detectors_only(failing: DeliverySummary) -> None:
    note = format_notification(failing, notify_config())
    assert note.title == "RDMT dark: 2 of 18 detectors failed; 1 input problem (run run-42)"
    assert note.failed_detectors == FAILING
    lines = note.text.splitlines()
    assert len([line for line in lines if line.startswith("• ")]) == 2
    for detector in FAILING:
        assert f"*{detector}* dark (DARK, 2026-03-01T12:00:00): failing values mission" in note.text
    assert not any(detector in note.text for detector in PASSING)
    # WFI11 fails at detector scale; WFI03's block only fails its amplifiers and super-pixels.
    wfi11 = next(line for line in lines if "WFI11" in line)
    assert "dark_rate_median: 0.60" in wfi11 and "is above the mission limit 0.51 DN/s (also soc)" in wfi11
    wfi03 = next(line for line in lines if "WFI03" in line)
    assert "(amplifier " in wfi03 or "(super-pixel " in wfi03
    assert "Input problems: 1 failed, 0 skipped: /data/broken.asdf: not an ASDF file" in note.text
    assert lines[-1] == "Report: https://rdmt.example/reports/overview-run-42.html"


def test_link_is_the_local_path_without_a_base_url(failing: DeliverySummary) -> None:
    note = format_notification(failing, NotifyConfig())
    assert note.text.endswith(f"Report: {OVERVIEW}")
    no_overview = dataclasses.replace(failing, overview_path=None)
    assert format_notification(no_overview, NotifyConfig()).text.endswith("Report: /data/rdmt-output")


def test_clean_delivery_says_all_passed(clean: DeliverySummary) -> None:
    note = format_notification(clean, NotifyConfig())
    assert note.title == "RDMT dark: all 16 detectors passed (run run-42)"
    assert "All 16 results passed" in note.text
    assert note.failed_detectors == []
    # a first delivery: passed, and the history evaluators say they wait
    assert "(no failing values; in 16, change and trend wait for earlier files)." in note.text


def test_several_monitors_and_many_problems(results: list[FileResult]) -> None:
    flat = [dataclasses.replace(r, monitor="flat", monitor_title="Flat") for r in results[:4]]
    problems = [InputProblem(f"/data/file{i}.asdf", "unreadable", skipped=i % 2 == 1) for i in range(8)]
    note = format_notification(summary_of(results + flat, problems), NotifyConfig())
    assert note.title == (
        "RDMT dark: 2 of 18 detectors failed; flat: 1 of 4 detectors failed; 8 input problems (run run-42)"
    )
    assert note.text.count("• ") == 3
    assert "Input problems: 4 failed, 4 skipped:" in note.text
    assert "/data/file4.asdf" in note.text and "/data/file5.asdf" not in note.text
    assert "and 3 more" in note.text


# ---- sending ----------------------------------------------------------------


def test_one_post_and_one_email_per_delivery(
    failing: DeliverySummary, webhook: Webhook, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    config = notify_config(port, username="rdmt")
    env = {"RDMT_SLACK_WEBHOOK_URL": webhook.url, "RDMT_SMTP_PASSWORD": PASSWORD}
    caplog.set_level(logging.DEBUG)
    assert notify_delivery(failing, config, env=env) == ["log", "slack", "email"]

    assert len(webhook.bodies) == 1
    text = webhook.bodies[0]["text"]
    assert all(d in text for d in FAILING) and not any(d in text for d in PASSING)
    assert "https://rdmt.example/reports/overview-run-42.html" in text

    assert len(box.messages) == 1 and box.logins == [(b"rdmt", PASSWORD.encode())]
    sender, recipients, content = box.messages[0]
    assert sender == "rdmt@stsci.example"
    assert recipients == ["wfi-team@stsci.example", "soc@stsci.example"]
    assert f"Subject: {format_notification(failing, config).title}" in content

    notice = [r for r in caplog.records if r.name == "rdmt.notify" and "WFI03" in r.getMessage()]
    assert [r.levelno for r in notice] == [logging.WARNING]
    assert_no_secret(caplog, PASSWORD, WEBHOOK_TOKEN, webhook.url)


def test_clean_delivery_is_only_logged(
    clean: DeliverySummary, webhook: Webhook, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    env = {"RDMT_SLACK_WEBHOOK_URL": webhook.url}
    caplog.set_level(logging.INFO, logger="rdmt.notify")
    assert notify_delivery(clean, notify_config(port), env=env) == ["log"]
    assert webhook.bodies == [] and box.messages == []
    assert [r.levelno for r in caplog.records if r.name == "rdmt.notify"] == [logging.INFO]
    assert "all 16 detectors passed" in caplog.text


def test_input_problems_alone_are_sent(results: list[FileResult], webhook: Webhook) -> None:
    summary = summary_of(results[:1], [InputProblem("/data/x.asdf", "no monitor for FLAT", skipped=True)])
    env = {"RDMT_SLACK_WEBHOOK_URL": webhook.url}
    assert notify_delivery(summary, notify_config(), env=env) == ["log", "slack"]
    assert "0 failed, 1 skipped" in webhook.bodies[0]["text"]


def test_http_500_is_logged_without_the_url_and_email_still_goes(
    failing: DeliverySummary, webhook: Webhook, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    webhook.status = 500
    env = {"RDMT_SLACK_WEBHOOK_URL": webhook.url}
    caplog.set_level(logging.DEBUG)
    assert notify_delivery(failing, notify_config(port), env=env) == ["log", "email"]
    assert len(webhook.bodies) == 1 and len(box.messages) == 1
    assert "slack webhook (from $RDMT_SLACK_WEBHOOK_URL): HTTP 500" in caplog.text
    assert_no_secret(caplog, WEBHOOK_TOKEN, webhook.url)


def test_closed_ports_fail_both_channels_quietly(failing: DeliverySummary, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there any more
    url = f"http://127.0.0.1:{port}/services/{WEBHOOK_TOKEN}"
    env = {"RDMT_SLACK_WEBHOOK_URL": url, "RDMT_SMTP_PASSWORD": PASSWORD}
    caplog.set_level(logging.DEBUG)
    assert notify_delivery(failing, notify_config(port, username="rdmt"), env=env) == ["log"]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    warnings = [m for m in messages if m.startswith("notification not sent")]
    assert len(warnings) == 2
    assert warnings[0].startswith("notification not sent to slack webhook (from $RDMT_SLACK_WEBHOOK_URL)")
    assert warnings[1].startswith(f"notification not sent by email (smtp 127.0.0.1:{port})")
    assert_no_secret(caplog, PASSWORD, WEBHOOK_TOKEN, url)


def test_smtp_failure_does_not_stop_slack(
    failing: DeliverySummary, webhook: Webhook, mailbox: tuple[Mailbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    box, port = mailbox
    env = {"RDMT_SLACK_WEBHOOK_URL": webhook.url, "RDMT_SMTP_PASSWORD": "wrong-" + PASSWORD}
    caplog.set_level(logging.DEBUG)
    assert notify_delivery(failing, notify_config(port, username="rdmt"), env=env) == ["log", "slack"]
    assert len(webhook.bodies) == 1 and box.messages == []
    assert "SMTPAuthenticationError" in caplog.text
    assert_no_secret(caplog, PASSWORD, WEBHOOK_TOKEN)


@pytest.mark.parametrize(
    ("smtp", "env", "expected"),
    [
        ({"username": "rdmt"}, {}, "$RDMT_SMTP_PASSWORD is not set"),
        ({"starttls": True}, {}, "SMTPNotSupportedError"),
    ],
)
def test_email_misconfiguration_is_a_warning(
    failing: DeliverySummary,
    mailbox: tuple[Mailbox, int],
    caplog: pytest.LogCaptureFixture,
    smtp: dict,
    env: dict,
    expected: str,
) -> None:
    box, port = mailbox
    assert notify_delivery(failing, notify_config(port, **smtp), env=env) == ["log"]
    assert box.messages == [] and expected in caplog.text


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (f"file:///tmp/{WEBHOOK_TOKEN}", "not an http(s) URL"),
        # http.client quotes a URL with a space in its error message
        (f"http://127.0.0.1:9/services/{WEBHOOK_TOKEN} x", "InvalidURL (details withheld"),
    ],
)
def test_bad_webhook_is_refused_without_echoing_it(
    failing: DeliverySummary, caplog: pytest.LogCaptureFixture, url: str, expected: str
) -> None:
    assert notify_delivery(failing, notify_config(), env={"RDMT_SLACK_WEBHOOK_URL": url}) == ["log"]
    assert expected in caplog.text
    assert_no_secret(caplog, WEBHOOK_TOKEN, "s3cr3t")


def test_no_webhook_variable_means_no_slack(failing: DeliverySummary, webhook: Webhook) -> None:
    assert notify_delivery(failing, notify_config(), env={}) == ["log"]
    assert webhook.bodies == []
