"""Liveness means progress: a service holding one message too long, or whose consumer stopped polling, is not live;
readiness says what the service waits for."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

from rdmt_core.kafka.observability import ServiceMetrics, ServiceState, serve_http


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_a_message_held_longer_than_the_limit_fails_liveness_and_readiness() -> None:
    state = ServiceState(stale_after_s=60, max_processing_s=0.2)
    state.assigned = {("t", 0)}
    server = serve_http(0, ServiceMetrics("rdmt-test"), state, "127.0.0.1")
    port = server.server_address[1]
    try:
        assert _get(port, "/healthz") == (200, "ok\n") and _get(port, "/readyz") == (200, "ready\n")
        state.started()  # a read that hangs, say
        assert _get(port, "/healthz")[0] == 200  # within the limit
        time.sleep(0.3)
        code, text = _get(port, "/healthz")
        assert code == 503 and "one message held for" in text and "limit 0.2 s" in text
        assert _get(port, "/readyz")[0] == 503
        state.finished()
        assert _get(port, "/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_consumer_that_stopped_polling_is_not_live_and_a_wait_is_named() -> None:
    state = ServiceState(stale_after_s=0.1)
    state.assigned = {("t", 0)}
    state.waiting_for = "store clickhouse://rdmt@db:8123/rdmt: cannot reach"
    assert state.not_ready() == "waiting for store clickhouse://rdmt@db:8123/rdmt: cannot reach"
    assert state.healthy()
    time.sleep(0.15)
    assert not state.healthy() and "has not polled" in state.problem()
    state.polled()
    state.waiting_for = None
    assert state.ready()
