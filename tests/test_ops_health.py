"""What an operator's load balancer, Prometheus and log pipeline see of the production server
(gunicorn with server/gunicorn_conf.py, two worker processes)."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from helpers import PYTHON, ROOT, ServerProcess, error_of, registered_device
from prometheus_client.parser import text_string_to_metric_families


@pytest.fixture
def gunicorn(make_server) -> ServerProcess:
    return make_server(kind="gunicorn", env={"SAFEHOLD_RATE_PER_MINUTE": "100000"})


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, asked on a fresh connection (any worker may answer)."""
    response = requests.get(server.url + "/metrics", timeout=10,
                            headers={"Connection": "close"})
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_healthz_and_readyz_answer_and_echo_request_ids(gunicorn: ServerProcess) -> None:
    health = requests.get(gunicorn.url + "/healthz", timeout=5,
                          headers={"X-Request-Id": "lb-probe-42"})
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert health.headers["X-Request-Id"] == "lb-probe-42"
    ready = requests.get(gunicorn.url + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "blob_store": "ok"}}
    assert re.fullmatch(r"[0-9a-f]{32}", ready.headers["X-Request-Id"])  # made when not given
    # An id that could forge log lines is replaced, not echoed.
    odd = requests.get(gunicorn.url + "/healthz", timeout=5,
                       headers={"X-Request-Id": 'x", "level": "ERROR'})
    assert re.fullmatch(r"[0-9a-f]{32}", odd.headers["X-Request-Id"])
    # Refusals carry one too.
    missing = requests.get(gunicorn.url + "/v1/nothing", timeout=5)
    assert error_of(missing) == (404, "not_found") and missing.headers["X-Request-Id"]


@pytest.mark.sqlite_only("makes the SQLite file unusable")
def test_readyz_is_503_while_the_blob_store_or_database_is_unusable(
        gunicorn: ServerProcess) -> None:
    blobs = gunicorn.data_dir / "blobs"
    moved = gunicorn.data_dir / "blobs-away"
    blobs.rename(moved)
    try:
        response = requests.get(gunicorn.url + "/readyz", timeout=5)
        assert error_of(response) == (503, "not_ready")
        assert response.json()["error"]["details"] == {"database": "ok",
                                                       "blob_store": "missing"}
        assert "blob_store missing" in response.json()["error"]["message"]
        assert int(response.headers["Retry-After"]) >= 1
        assert requests.get(gunicorn.url + "/healthz", timeout=5).status_code == 200
    finally:
        moved.rename(blobs)
    assert requests.get(gunicorn.url + "/readyz", timeout=5).status_code == 200
    db = sqlite3.connect(gunicorn.data_dir / "safehold.sqlite3")
    db.execute("DROP TABLE migrations")  # what a half-restored backup looks like
    db.commit()
    db.close()
    response = requests.get(gunicorn.url + "/readyz", timeout=5)
    assert error_of(response) == (503, "not_ready")
    assert response.json()["error"]["details"]["database"] == "not migrated"


def test_metrics_count_across_worker_processes(gunicorn: ServerProcess) -> None:
    phone = registered_device(gunicorn.url, gunicorn.name)
    encounter = phone.new_encounter()
    sizes = []
    for seq in range(4):
        phone.session.close()  # a new connection each time: spread over the workers
        body, note = phone.seal(encounter, "audio", seq, payload=b"x" * (100 * (seq + 1)))
        assert phone.put_chunk(encounter, "audio", seq, body, note).status_code == 201
        sizes.append(len(body))
    body, note = phone.seal(encounter, "audio", 0)
    assert phone.put_chunk(encounter, "audio", 0, body, note).status_code == 409
    for _ in range(3):
        assert requests.get(gunicorn.url + f"/v1/encounters/{uuid.uuid4()}", timeout=5,
                            headers={**phone.headers(), "Connection": "close"}
                            ).status_code == 404
    first, second = scrape(gunicorn), scrape(gunicorn)
    for samples in (first, second):  # whichever worker answers, the sums are the same
        assert samples[("safehold_chunks_stored_total", ())] == 4
        assert samples[("safehold_chunk_bytes_stored_total", ())] == sum(sizes)
        assert samples[("safehold_refusals_total", (("code", "chunk_exists"),
                                                   ("status", "409")))] == 1
        assert samples[("safehold_refusals_total", (("code", "not_found"),
                                                   ("status", "404")))] == 3
        assert samples[("safehold_ack_seconds_count", ())] == 4
        assert samples[("safehold_ack_seconds_bucket", (("le", "+Inf"),))] == 4
        assert samples[("safehold_fsync_seconds_count", (("what", "blob"),))] == 4
        assert samples[("safehold_fsync_seconds_count", (("what", "commit"),))] == 4
        assert samples[("safehold_worker_queue_depth", (("queue", "deliveries"),))] == 0
        assert ("safehold_worker_queue_depth", (("queue", "notifications"),)) in samples


def test_metrics_token_guards_metrics_when_set(make_server) -> None:
    server = make_server(env={"SAFEHOLD_METRICS_TOKEN": "s3cret-scrape"})
    assert error_of(requests.get(server.url + "/metrics", timeout=5)) == (401, "auth_required")
    wrong = requests.get(server.url + "/metrics", timeout=5,
                         headers={"Authorization": "Bearer nope"})
    assert error_of(wrong) == (401, "auth_required")
    right = requests.get(server.url + "/metrics", timeout=5,
                         headers={"Authorization": "Bearer s3cret-scrape"})
    assert right.status_code == 200 and "safehold_chunks_stored_total" in right.text


def log_lines(server: ServerProcess) -> list[dict[str, Any]]:
    lines = [line for line in server.output().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line, gunicorn's own too
    for line in parsed:
        assert {"time", "level", "logger", "message", "request_id"} <= set(line), line
    return parsed


@pytest.mark.sqlite_only("makes the SQLite file unusable")
def test_logs_are_json_lines_with_the_request_id(gunicorn: ServerProcess) -> None:
    phone = registered_device(gunicorn.url, gunicorn.name)
    request_id = "trace-" + uuid.uuid4().hex[:8]
    answer = phone.call("GET", "/v1/encounters", headers={"X-Request-Id": request_id})
    assert answer.status_code == 200
    # Break the database under the running server: the crash's lines carry the id too.
    db = sqlite3.connect(gunicorn.data_dir / "safehold.sqlite3")
    db.execute("DROP TABLE changes")
    db.commit()
    db.close()
    crashed = phone.call("GET", "/v1/changes", headers={"X-Request-Id": request_id + "-500"})
    assert error_of(crashed) == (500, "internal_error")
    gunicorn.stop()
    lines = log_lines(gunicorn)
    loggers = {line["logger"] for line in lines}
    assert {"gunicorn.error", "safehold.server", "safehold.access"} <= loggers
    [access] = [line for line in lines if line["request_id"] == request_id]
    assert access["logger"] == "safehold.access" and access["status"] == 200
    assert access["method"] == "GET" and access["path"] == "/v1/encounters"
    crash = [line for line in lines if line["request_id"] == request_id + "-500"]
    assert {line["logger"] for line in crash} == {"safehold.server", "safehold.access"}
    assert any("Traceback" in line.get("exc_info", "") for line in crash)
    started = [line for line in lines if "key fingerprint" in line["message"]]
    assert started and all(line["request_id"] is None for line in started)


def test_text_logs_when_asked(make_server) -> None:
    server = make_server(kind="gunicorn", env={"SAFEHOLD_LOG_FORMAT": "text"})
    requests.get(server.url + "/healthz", headers={"X-Request-Id": "txt-1"}, timeout=5)
    server.stop()
    lines = server.output().splitlines()
    assert any(" INFO safehold.access [txt-1]: GET /healthz 200" in line for line in lines)
    assert any("safehold.server [-]: server 127.0.0.1:" in line for line in lines)
    assert not any(line.startswith("{") for line in lines)


def test_landing_page_points_people_to_contacts_and_docs(gunicorn: ServerProcess) -> None:
    page = requests.get(gunicorn.url + "/", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "href='/contact'" in page.text and "href='/docs'" in page.text
    assert gunicorn.name in page.text


def test_worker_logs_in_the_same_format(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAFEHOLD_")}
    env.update(SAFEHOLD_DATA_DIR=str(tmp_path / "data"), SAFEHOLD_WORKER_INTERVAL="1",
               SAFEHOLD_PUBLIC_URL="https://safehold.example.org")
    worker = subprocess.Popen([PYTHON, "-m", "cli.main", "worker"], cwd=ROOT, env=env,
                              stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)  # a pass or two
    finally:
        worker.terminate()
        _out, err = worker.communicate(timeout=30)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert lines and all(line["request_id"] is None for line in lines)
    assert any(line["logger"] == "safehold.worker" for line in lines)
