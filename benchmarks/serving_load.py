"""A served model under concurrent load: a bounded load generator against
``mlflow models serve`` on 127.0.0.1.

``clients`` threads each POST one series' raw history, one request after
another, for ``seconds``; then one client sends requests of 1,000 series.
Every request is counted: its latency, and whether it was answered 200.
Then a request over the size limit (``experiments.serving.pyfunc``) is sent:
it must be refused (400) at once, and the server must go on answering. The
server's peak memory is its processes' peak resident sets (``VmHWM``), summed.
"""

from __future__ import annotations

import os
import threading
import time
import urllib.error

import numpy as np


def under_load(post, clients: int, seconds: float, series: int = 1) -> dict:
    """``clients`` threads calling ``post()`` back to back for ``seconds``:
    requests/s, forecasts/s (``series`` per request), p50/p99 latency and
    errors (any answer but 200, or none)."""
    latencies, errors, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def client():
        while time.monotonic() < stop:
            start = time.perf_counter()
            try:
                post()
                ok = True
            except (urllib.error.URLError, OSError):
                ok = False
            with lock:
                latencies.append(time.perf_counter() - start)
                errors[0] += not ok

    began = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    ms = np.asarray(latencies) * 1000
    return {"clients": clients, "series_per_request": series, "requests": len(ms),
            "errors": errors[0], "seconds": wall, "requests_per_s": len(ms) / wall,
            "forecasts_per_s": series * (len(ms) - errors[0]) / wall,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def refused_at_once(post_body, body: bytes) -> dict:
    """POST ``body`` (over the size limit): its status, seconds to the answer
    and the answer's message."""
    start = time.perf_counter()
    try:
        post_body(body)
        status, message = 200, ""
    except urllib.error.HTTPError as err:
        status, message = err.code, err.read().decode()[-300:]
    return {"status": status, "seconds": time.perf_counter() - start,
            "megabytes": len(body) / 1e6, "message": message}


def tree_peak_rss_mb(pid: int) -> float:
    """Peak resident memory of process ``pid`` and its descendants, summed
    (Linux ``/proc``; 0 where it cannot be read)."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        todo += children.get(current, [])
        try:
            with open(f"/proc/{current}/status") as f:
                peak = next((line for line in f if line.startswith("VmHWM:")), None)
        except OSError:
            continue
        total += int(peak.split()[1]) / 1024 if peak else 0.0
    return total


def targets(rows: list[dict]) -> dict:
    """The issue's targets: no errors at the most clients, and its p99 under
    20 times the single client's p50."""
    one = next(r for r in rows if r["clients"] == 1 and r["series_per_request"] == 1)
    most = max((r for r in rows if r["series_per_request"] == 1), key=lambda r: r["clients"])
    return {"clients": most["clients"], "no_errors": most["errors"] == 0,
            "p99_vs_single_p50": most["p99_ms"] / one["p50_ms"],
            "p99_under_20x": most["p99_ms"] < 20 * one["p50_ms"]}


def markdown(load: dict) -> list[str]:
    rows = load["rows"]
    met = load["targets"]
    lines = [f"Under load: `mlflow models serve --workers {load['workers']}` on 127.0.0.1, "
             f"each client POSTing back to back for {load['seconds']:g} s:", "",
             "| clients | series/request | requests | errors | requests/s | forecasts/s "
             "| p50 ms | p99 ms |", "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['clients']} | {r['series_per_request']} | {r['requests']} | "
              f"{r['errors']} | {r['requests_per_s']:.1f} | {r['forecasts_per_s']:.0f} | "
              f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} |" for r in rows]
    big = load["oversize"]
    lines += ["", f"At {met['clients']} clients: errors "
              f"{'none' if met['no_errors'] else 'SOME'}; p99 is "
              f"{met['p99_vs_single_p50']:.1f}x the single client's p50 (target < 20x: "
              f"{'met' if met['p99_under_20x'] else 'NOT met'}). Server peak RSS "
              f"{load['server_peak_rss_mb']:.0f} MB (its processes' peaks, summed). A "
              f"request over the limit ({big['megabytes']:.1f} MB) was answered "
              f"{big['status']} in {big['seconds']:.2f} s, and the server answered the "
              f"next request {'normally' if load['answers_after'] else 'NOT AT ALL'}."]
    return lines
