"""Celery side of `cargo xtask bench --only peers`: a task that runs the same no-op program as
Sett's benchmark agent, on a Redis broker and result backend (the Redis of the Sett run).

  celery -A celery_bench worker ...          the worker (started by the xtask)
  python celery_bench.py latency N           one task at a time: sent -> started (dispatch)
  python celery_bench.py throughput N        N tasks at once, until every result is back

Prints one JSON object on stdout.
"""
import json
import os
import subprocess
import sys
import time

from celery import Celery

REDIS = os.environ["BENCH_REDIS_URL"]
NOOP = json.loads(os.environ["BENCH_NOOP_ARGV"])

app = Celery("celery_bench", broker=REDIS, backend=REDIS)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    # Like Sett, which acknowledges an event only after handling it: a task is not lost when
    # a worker dies mid-way.
    task_acks_late=True,
    worker_prefetch_multiplier=4,
    broker_connection_retry_on_startup=True,
)


@app.task(name="noop")
def noop(sent_us):
    started_us = time.time_ns() // 1000
    subprocess.run(NOOP, stdout=subprocess.DEVNULL, check=True)
    return started_us


def summary(v):
    v = sorted(v)
    p = lambda q: v[round((len(v) - 1) * q)] if v else 0.0
    return {"p50_ms": p(0.5), "p90_ms": p(0.9), "p99_ms": p(0.99), "max_ms": p(1.0), "n": len(v)}


def latency(n):
    for _ in range(10):  # warm-up (and waits for the worker to come up)
        noop.delay(0).get(timeout=120)
    lat = []
    for _ in range(n):
        t0 = time.time_ns() // 1000
        started = noop.delay(t0).get(timeout=60)
        lat.append((started - t0) / 1000.0)
    return {"tasks": n, "sent_to_started": summary(lat)}


def throughput(n):
    noop.delay(0).get(timeout=120)
    t0 = time.perf_counter()
    results = [noop.delay(0) for _ in range(n)]
    for r in results:
        r.get(timeout=600)
    secs = time.perf_counter() - t0
    return {"tasks": n, "seconds": secs, "tasks_per_second": n / secs}


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    out = latency(n) if mode == "latency" else throughput(n)
    print(json.dumps(out))
