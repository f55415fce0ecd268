"""`lstm-zoo ui`, `tracking-server` and `runs reap`: the MLflow store."""

from __future__ import annotations

import os
import sys


def cmd_ui(args) -> int:
    from experiments import tracking

    uri = tracking.resolve_uri(args.tracking_uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri,
               "--host", args.host, "--port", str(args.port)]
    root = tracking.artifact_root(uri)
    if root:
        command += ["--default-artifact-root", root]
    url = tracking.ui_url(f"http://{args.host}:{args.port}", tracking.latest_experiment(uri))
    print(f"MLflow UI for {tracking.redact(uri)}; open {url} (Ctrl-C stops)")
    if args.host not in ("127.0.0.1", "localhost"):
        print("warning: the UI has no authentication; anyone who can reach "
              f"{args.host}:{args.port} can read and change your runs")
    os.execv(sys.executable, command)
    return 0  # not reached


def cmd_tracking_server(args) -> int:
    from experiments.tracking import server

    return server.run(args.dir, args.host, args.port, auth=args.auth)


def cmd_runs_reap(args) -> int:
    from experiments import tracking

    uri = tracking.init_store(tracking.resolve_uri(args.tracking_uri))
    closed = tracking.reap_orphans(uri)
    for run_id in closed:
        print(f"closed {run_id} as KILLED (its process is gone)")
    print(f"{len(closed)} orphaned run(s) closed in {uri}")
    return 0
