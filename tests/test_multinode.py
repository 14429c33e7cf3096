"""Stateless API nodes: two gunicorn nodes on one data folder (SQLite's writer lock is a file
lock, so nodes must share a host; PostgreSQL lifts that) and one S3 bucket (moto), behind a
round-robin TCP proxy, with one SAFEHOLD_PUBLIC_URL and one server key. Any request may land on
any node: a login begun on one node finishes on the other, an encounter's log stays dense and
consistent while its chunks arrive through both at once, and a node killed -9 in the middle of a
live recording loses nothing that was acknowledged. Two `safehold worker` processes poll the same
store and still deliver each notification once: deliveries are leased across nodes."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bundlekit import run_cli
from contactkit import add_contact
from faultproxy import RoundRobinProxy
from helpers import Device, ServerProcess, error_of, verify_receipt
from log_audit import Gunicorn, seal_many
from moto_s3 import moto_endpoint, new_bucket  # noqa: F401 - a fixture
from notifykit import WebhookReceiver
from synckit import audit, cli_popen, register, wait_until
from test_concurrency import check_encounter, statuses_are_one_201_per_chunk, upload_all
from test_notify_worker import WorkerProcess, wait_for


@dataclass
class Cluster:
    proxy: RoundRobinProxy
    nodes: list[Gunicorn]

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def name(self) -> str:
        return f"127.0.0.1:{self.proxy.port}"

    def device(self) -> Device:
        device = Device(self.url, self.name)
        device.session.headers["Connection"] = "close"  # each request a new turn of the proxy
        response = device.register()
        assert response.status_code == 201, response.text
        return device.login()


@pytest.fixture(scope="module")
def cluster(request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    endpoint = request.getfixturevalue("moto_endpoint")
    root = tmp_path_factory.mktemp("multinode")
    ports = [0, 0]
    proxy = RoundRobinProxy(ports).start()
    env = {"SAFEHOLD_PUBLIC_URL": proxy.url,  # one public name (and key) for every node
           "SAFEHOLD_SERVER_KEY_FILE": str(root / "server.key"),
           "SAFEHOLD_BLOB_STORE": "s3", "SAFEHOLD_S3_BUCKET": new_bucket(endpoint),
           "SAFEHOLD_S3_ENDPOINT_URL": endpoint, "SAFEHOLD_DIRECT_UPLOADS": "1"}
    nodes: list[Gunicorn] = []
    try:
        for _ in ports:  # one after the other: the first applies the migrations
            nodes.append(Gunicorn(root / "data", workers=1, env=env).start())
        proxy.upstream_ports[:] = [node.port for node in nodes]
        yield Cluster(proxy, nodes)
    finally:
        for node in nodes:
            node.stop()
        proxy.stop()


def test_login_begun_on_one_node_finishes_on_the_other(cluster: Cluster) -> None:
    device = Device(cluster.url, cluster.name)
    device.session.headers["Connection"] = "close"
    assert device.register().status_code == 201
    first = len(cluster.proxy.routes)
    challenge = device.challenge()
    response = device.login_request(challenge)
    assert response.status_code == 200, response.text
    challenge_node, token_node = cluster.proxy.routes[first:first + 2]
    assert challenge_node != token_node
    device.token = response.json()["token"]
    # The token works on both nodes; uploads alternate and share one log.
    encounter = device.new_encounter()
    start = len(cluster.proxy.routes)
    server_key = cluster.nodes[0].server_key()
    for seq in range(4):
        receipt, _body, note = device.upload(encounter, "audio", seq)
        assert receipt["leaf_index"] == seq
        verify_receipt(receipt, note, server_key)
    assert set(cluster.proxy.routes[start:]) == {node.port for node in cluster.nodes}


def test_one_encounter_and_many_devices_through_both_nodes_at_once(cluster: Cluster) -> None:
    devices = [cluster.device() for _ in range(4)]
    shared = devices[0].new_encounter()
    busy = seal_many(devices[0], shared, {"log": 10, "audio": 30, "video": 20})
    others = [(device, seal_many(device, device.new_encounter(), {"log": 3, "audio": 6}))
              for device in devices[1:]]
    jobs = [(devices[0], chunk) for chunk in busy + busy[::4]]  # some sent twice, racing
    jobs += [(device, chunk) for device, sent in others for chunk in sent]
    random.Random(3).shuffle(jobs)
    start = len(cluster.proxy.routes)
    uploads = upload_all(jobs, threads=12)
    assert set(cluster.proxy.routes[start:]) == {node.port for node in cluster.nodes}
    statuses_are_one_201_per_chunk(uploads)
    server_key = cluster.nodes[1].server_key()
    # Leaf indexes unique and dense, every receipt consistent with the final checkpoint.
    check_encounter(devices[0], server_key, busy, uploads)
    for device, sent in others:
        check_encounter(device, server_key, sent, uploads)


def test_a_node_with_its_own_public_url_refuses_the_clusters_logins(cluster: Cluster,
                                                                      tmp_path: Path) -> None:
    """Why nodes must share SAFEHOLD_PUBLIC_URL: a device signs its login for the name it was
    given; a node that calls itself by its own host:port (and so keeps its own key) cannot
    verify it, even on the very same database."""
    device = cluster.device()
    stray = ServerProcess(cluster.nodes[0].data_dir, env={
        "SAFEHOLD_SERVER_KEY_FILE": str(tmp_path / "own.key")}).start()
    try:
        device.url = stray.url
        response = device.login_request(device.challenge())
        assert error_of(response) == (401, "login_failed")
        assert stray.server_key() != cluster.nodes[0].server_key()
    finally:
        stray.stop()
    device.url = cluster.url
    device.login()  # the same device logs in through the cluster as before


def delivered_by(worker: WorkerProcess) -> int:
    """How many deliveries this worker's passes say it made (its `worker pass:` log lines)."""
    return sum(int(n) for n in re.findall(r"delivered=(\d+)", worker.output()))


def test_two_workers_deliver_each_notification_once(cluster: Cluster) -> None:
    receiver = WebhookReceiver()
    # A slow receiver (well under the 2 s lease) keeps each delivery in flight while the other
    # worker's pass runs, so both see the same queue at once.
    receiver.on_request = lambda _message: time.sleep(0.2)
    receiver.start()
    workers = [WorkerProcess(node) for node in cluster.nodes]  # each node's own settings
    try:
        owner = cluster.device()
        add_contact(owner, "immediate", notify_webhook_url=receiver.url)
        encounters = {owner.new_encounter() for _ in range(6)}
        wait_for(lambda: len(receiver.received) >= len(encounters), "six webhooks", timeout=20)
        time.sleep(3)  # more passes of both workers and a lease period: nothing more arrives
    finally:
        for worker in workers:
            worker.stop()
        receiver.stop()
    bodies = [json.loads(message.body) for message in receiver.received]
    assert sorted(body["encounter_id"] for body in bodies) == sorted(encounters)
    assert {body["kind"] for body in bodies} == {"released"}
    ids = [message.headers["Safehold-Notification-Id"] for message in receiver.received]
    assert len(set(ids)) == len(ids) == len(encounters)
    # Both workers ran against the one store, and together they claimed each delivery once.
    assert all("worker started" in worker.output() for worker in workers)
    assert sum(delivered_by(worker) for worker in workers) == len(encounters), \
        [worker.output() for worker in workers]


def test_a_node_killed_mid_recording_loses_nothing_acknowledged(cluster: Cluster,
                                                                tmp_path: Path) -> None:
    state = tmp_path / "phone"
    register(state, cluster.url)
    media = tmp_path / "media.bin"
    media.write_bytes(os.urandom(48_000))
    # A live recording: 2000 bytes a chunk at 12 kB/s, about four seconds.
    encounter = str(uuid.uuid4())
    recording = cli_popen(state, "record", str(media), "--stream", "audio",
                          "--chunk-bytes", "2000", "--rate", "12000", "--encounter", encounter)

    def served() -> list[int]:
        return [node.output().count(f"/v1/encounters/{encounter}/streams/")
                for node in cluster.nodes]

    # Kill the node the phone's (keep-alive) connection reached once it took a few chunks.
    wait_until(lambda: max(served()) >= 3, timeout=30, what="chunks reaching a node")
    victim = cluster.nodes[served().index(max(served()))]
    assert victim.proc is not None and recording.poll() is None
    os.killpg(victim.proc.pid, signal.SIGKILL)
    out, err = recording.communicate(timeout=60)
    victim.proc.wait()
    assert recording.returncode == 0, err
    outcome = audit(state, cluster.url)
    assert outcome.clean, outcome  # each acknowledged chunk once, bytes and receipts intact
    assert sum(outcome.chunk_count.values()) >= 24
    # Both nodes took part in this recording: the victim before it died, the other after.
    assert all(served()), served()
    # Fetched through the surviving node: it verifies, and decrypts to the very bytes recorded.
    bundle, out = tmp_path / "bundle", tmp_path / "out"
    fetched = run_cli("fetch", encounter, "-o", bundle, "--state", state)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert "Result     OK: nothing was altered" in fetched.stdout
    decrypted = run_cli("decrypt", bundle, "-i", state / "recovery.key", "-o", out)
    assert decrypted.returncode == 0, decrypted.stderr
    assert (out / "audio.bin").read_bytes() == media.read_bytes()

