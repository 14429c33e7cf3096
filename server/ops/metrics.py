"""Prometheus metrics (prometheus_client), served as text at GET /metrics.

Counters and histograms are kept by the process that serves the request. Under gunicorn every
worker is its own process, so server/gunicorn_conf.py sets PROMETHEUS_MULTIPROC_DIR (a fresh
folder per start, unless the operator names one) before any worker imports this module;
prometheus_client then keeps each worker's values in files there, and a scrape, answered by any
worker, sums them all (its multiprocess collector). Without the variable (`safehold serve`,
one process) the values live in memory.

The worker's queues are not counted here: they are read from the database at each scrape
(QueueCollector), so every API process reports the same true numbers.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

if TYPE_CHECKING:
    from server.store.metadata import Store

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REGISTRY = CollectorRegistry(auto_describe=True)
# Acknowledgements of a live recording should take well under a second; the buckets resolve that.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FSYNC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

CHUNKS_STORED = Counter("safehold_chunks_stored", "Chunks stored and acknowledged (new ones, "
                        "not repeats of a stored chunk)", registry=REGISTRY)
BYTES_STORED = Counter("safehold_chunk_bytes_stored", "Bytes of the chunks stored",
                       registry=REGISTRY)
REFUSALS = Counter("safehold_refusals", "Requests answered with an error envelope, by HTTP "
                   "status and stable error code", ["status", "code"], registry=REGISTRY)
ACK_SECONDS = Histogram("safehold_ack_seconds", "Time from a chunk upload's arrival to its "
                        "acknowledgement (2xx receipt)", buckets=LATENCY_BUCKETS,
                        registry=REGISTRY)
FSYNC_SECONDS = Histogram("safehold_fsync_seconds", "Time spent making a chunk durable: the "
                          "blob (file and folder fsync) and the metadata commit (WAL fsync)",
                          ["what"], buckets=FSYNC_BUCKETS, registry=REGISTRY)


class QueueCollector:
    """The worker's backlog, read from the metadata store at scrape time."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        with self.store.read() as tx:
            depth = tx.queue_depth(time.time())
        gauge = GaugeMetricFamily("safehold_worker_queue_depth", "Work waiting for `safehold "
                                  "worker`: notifications not yet expanded, deliveries not yet "
                                  "delivered or given up, deletions due", labels=["queue"])
        for queue, count in sorted(depth.items()):
            gauge.add_metric([queue], count)
        yield gauge


def render(store: Store) -> bytes:
    """The text exposition of every metric, summed over processes when multiprocess."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counted = generate_latest(registry)
    else:
        counted = generate_latest(REGISTRY)
    queues = CollectorRegistry()
    queues.register(QueueCollector(store))
    return counted + generate_latest(queues)
