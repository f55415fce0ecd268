"""One search across several processes or machines: keras-tuner's chief/worker mode.

The chief holds the oracle (which trial to try next) and serves it over gRPC;
each worker asks it for a trial, trains it and reports the score. The chief
also owns the MLflow parent run; every worker logs its trials as children of
that run, tagged with its worker id.

keras-tuner leaves two gaps that this module closes:

- A worker that dies keeps its trial assigned forever, and the chief waits
  for it forever. Workers here send a heartbeat during each trial; the chief
  gives the trial of a worker silent for ``worker_timeout`` seconds to the
  next worker that asks (keras-tuner's own retry queue).
- A worker whose chief is not there waits up to an hour per call. Workers
  here check the chief first and give up after ``connect_timeout`` seconds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from experiments.errors import ConfigError
from experiments.tracking.server import free_port  # noqa: F401  (the launcher's port)
from zoo import compat

CONNECT_TIMEOUT = 60.0   # seconds a worker waits for its chief (and each call)
WORKER_TIMEOUT = 60.0    # seconds of silence after which a worker's trial moves on
HEARTBEAT = 5.0          # seconds between a busy worker's signs of life


def parse_address(text: str, flag: str) -> tuple[str, int]:
    """``"HOST:PORT"`` as ``(host, port)``; a ConfigError naming ``flag`` if not."""
    host, sep, port = (text or "").rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{flag} must look like HOST:PORT (e.g. 127.0.0.1:8470); "
                          f"received {text!r}")
    return host, int(port)


def configure(role: str, address: tuple[str, int]) -> str:
    """Set the environment keras-tuner reads to find its role and chief; the
    tuner id. Call before the tuner is created."""
    host, port = address
    os.environ["KERASTUNER_ORACLE_IP"] = host
    os.environ["KERASTUNER_ORACLE_PORT"] = str(port)
    if role == "chief":
        os.environ["KERASTUNER_TUNER_ID"] = "chief"
    elif not os.environ.get("KERASTUNER_TUNER_ID", "").startswith("worker"):
        os.environ["KERASTUNER_TUNER_ID"] = f"worker-{socket.gethostname()}-{os.getpid()}"
    return os.environ["KERASTUNER_TUNER_ID"]


_ROLE_ENV = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT", "KERASTUNER_TUNER_ID")


@contextlib.contextmanager
def role_scope():
    """Undo ``configure`` and ``wait_for_chief`` on exit, so that a later search
    in the same process (a notebook, the test suite) runs on its own again."""
    saved = {key: os.environ.get(key) for key in _ROLE_ENV}
    client = compat.loaded_oracle_client_module()
    timeout = getattr(client, "TIMEOUT", None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        client = compat.loaded_oracle_client_module()
        if client is not None:
            client.TIMEOUT = timeout if timeout is not None else 60 * 60


class ChiefUnreachable(ConfigError):
    """A worker's chief did not answer in time."""


def wait_for_chief(address: tuple[str, int], timeout: float = CONNECT_TIMEOUT) -> None:
    """Return once the chief at ``address`` accepts gRPC calls; raise
    ``ChiefUnreachable`` after ``timeout`` seconds. Also caps each later call to
    the chief at ``timeout`` (keras-tuner's own cap is an hour)."""
    import grpc

    host, port = address
    compat.oracle_client_module().TIMEOUT = timeout
    channel = grpc.insecure_channel(f"{host}:{port}")
    try:
        grpc.channel_ready_future(channel).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        raise ChiefUnreachable(
            f"the chief at {host}:{port} did not answer within {timeout:g} s; start it "
            f"first (lstm-zoo tune ... --role chief --bind {host}:{port}) or check "
            f"--chief") from None
    finally:
        channel.close()


def find_parent(client, name: str, timeout: float = CONNECT_TIMEOUT) -> str:
    """The id of the RUNNING parent run of search ``name`` (made by its
    chief), waiting up to ``timeout`` seconds for it to appear."""
    deadline = time.monotonic() + timeout
    query = (f"tags.search = '{name}' and tags.run_kind = 'search' "
             f"and attributes.status = 'RUNNING'")
    while True:
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, query, order_by=["attributes.start_time DESC"],
                                  max_results=1) if ids else []
        if runs:
            return runs[0].info.run_id
        if time.monotonic() > deadline:
            raise ChiefUnreachable(
                f"no running search {name!r} in the tracking store after {timeout:g} s; "
                f"the chief and the workers must use the same --name and tracking URI")
        time.sleep(1.0)


class WorkerWatch:
    """On the chief: notes when each worker was last heard from, and gives
    the trial of a worker silent for ``timeout`` seconds back to the queue."""

    def __init__(self, oracle, timeout: float = WORKER_TIMEOUT):
        self.oracle, self.timeout = oracle, timeout
        self.last_seen: dict[str, float] = {}
        self.requeued: list[tuple[str, str]] = []   # (worker, trial id)
        self._arrived: set[str] = set()
        self._gate = threading.Condition()
        self._expect, self._open_at = 0, 0.0
        compat.wrap_oracle_calls(oracle, self._noting)

    def hold_until(self, workers: int, timeout: float) -> None:
        """Hand out no trial until ``workers`` distinct workers have asked for
        one, or ``timeout`` seconds have passed: otherwise the first worker
        to finish importing TensorFlow takes every trial of a short search."""
        self._expect, self._open_at = workers, time.monotonic() + timeout

    def _wait_for_the_others(self, worker: str) -> None:
        with self._gate:
            self._arrived.add(worker)
            self._gate.notify_all()
            while (len(self._arrived) < self._expect
                   and time.monotonic() < self._open_at):
                self._gate.wait(timeout=max(0.0, self._open_at - time.monotonic()))

    def _noting(self, call, method):
        def wrapper(*args, **kwargs):
            worker = args[0] if method == "create_trial" else self._owner(args, kwargs)
            if method == "create_trial" and self._expect:
                self._wait_for_the_others(worker)
            if worker:
                self.last_seen[worker] = time.monotonic()
            result = call(*args, **kwargs)
            if method == "create_trial":
                result = self._stay_while_others_train(call, worker, result)
            return result
        return wrapper

    def _stay_while_others_train(self, create_trial, worker, trial, poll: float = 0.2):
        """A worker told to stop (every trial handed out) waits instead while
        another worker still holds a trial: if that one falls silent, its
        trial goes back to the queue (``expire``) and this worker takes it.
        Otherwise the last worker standing could leave before a dead one's
        trial came back, and that trial would never finish."""
        from keras_tuner.engine.trial import TrialStatus

        while trial.status == TrialStatus.STOPPED and any(
                other != worker for other in compat.held_trials(self.oracle)):
            time.sleep(poll)
            trial = create_trial(worker)
        return trial

    def _owner(self, args, kwargs):
        first = kwargs.get("trial_id", kwargs.get("trial", args[0] if args else None))
        trial_id = getattr(first, "trial_id", first)
        for worker, trial in compat.held_trials(self.oracle).items():
            if trial.trial_id == trial_id:
                return worker
        return None

    def expire(self) -> None:
        now = time.monotonic()
        with compat.oracle_lock(self.oracle):
            for worker, trial in compat.held_trials(self.oracle).items():
                seen = self.last_seen.setdefault(worker, now)
                if now - seen > self.timeout:
                    compat.take_back_trial(self.oracle, worker, trial.trial_id)
                    self.requeued.append((worker, trial.trial_id))
                    print(f"worker {worker} silent for {now - seen:.0f} s: trial "
                          f"{trial.trial_id} goes to the next worker", flush=True)


class Listener:
    """The chief's gRPC server, bound to ``address`` at once (so an address
    in use fails before any run is opened) and serving the oracle later.

    gRPC sets ``SO_REUSEPORT`` by default, which lets a second chief bind the
    same address without error and split the workers with the first; it is
    turned off here, so the second chief is refused.
    """

    def __init__(self, address: tuple[str, int], expect_workers: int = 0):
        from concurrent import futures

        import grpc

        self.address, self.expect_workers = address, expect_workers
        host, port = address
        # Workers held at the start-up barrier each keep a thread waiting.
        threads = max(4, expect_workers + 2)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads),
                                  options=[("grpc.so_reuseport", 0)])
        try:
            bound = self.server.add_insecure_port(f"{host}:{port}")
        except RuntimeError:  # grpc >= 1.60 raises instead of returning 0
            bound = 0
        if not bound:
            self.server.stop(None)
            raise ConfigError(f"the chief cannot listen on {host}:{port} (address in use, "
                              f"or not one of this machine's); choose another --bind")

    def serve(self, oracle, watch: WorkerWatch, poll: float = 0.5,
              start_timeout: float = CONNECT_TIMEOUT) -> None:
        """Serve ``oracle`` until the search is over: every trial handed out
        and no worker still holding one."""
        servicer = compat.add_oracle_servicer(oracle, self.server)
        # Below each worker's own call timeout, so a held worker never gives up.
        watch.hold_until(self.expect_workers, start_timeout / 2)
        self.server.start()
        try:
            while True:
                time.sleep(poll)
                watch.expire()
                done = compat.search_over(oracle)
                if servicer.stop_triggered and done:
                    break
        finally:
            self.close()

    def close(self) -> None:
        self.server.stop(grace=2)


class Heartbeat:
    """On a worker: while a trial runs, ask the chief about it every
    ``interval`` seconds, so the chief knows this worker is alive.

    A failed call (the chief busy, a dropped connection) is not the end:
    the next beat tries again. Stopping for good on one failure let the chief
    hand a live worker's trial to a second worker.
    """

    def __init__(self, oracle, trial_id: str, interval: float = HEARTBEAT):
        self._stop = threading.Event()
        self.sent = self.failed = 0

        def beat():
            while not self._stop.wait(interval):
                try:
                    oracle.get_trial(trial_id)
                    self.sent += 1
                except Exception:  # the trial's own calls report a chief that is gone
                    self.failed += 1

        self._thread = threading.Thread(target=beat, daemon=True, name="heartbeat")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def visible_gpus() -> list[str]:
    """GPU indices to hand out, one per worker: ``CUDA_VISIBLE_DEVICES`` if
    set, else what ``nvidia-smi`` lists; empty on a machine without GPUs."""
    given = os.environ.get("CUDA_VISIBLE_DEVICES")
    if given is not None:
        return [g for g in given.split(",") if g.strip()]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def launch(argv: list[str], workers: int, host: str = "127.0.0.1",
           worker_timeout: float = WORKER_TIMEOUT) -> int:
    """``lstm-zoo tune ... --workers N``: start a chief and ``workers`` workers
    on this machine (each worker on its own GPU where there are GPUs), wait
    for all of them, and return the chief's exit code.

    If every worker dies before the search is over, the chief cannot finish:
    it is stopped (its parent run ends KILLED, the search resumes when the
    same command runs again) and 1 is returned. No process is left behind.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be an int >= 1; received {workers!r}")
    port = free_port(host)
    base = [sys.executable, "-m", "experiments.cli", "tune", *argv]
    gpus = visible_gpus()
    chief = subprocess.Popen([*base, "--role", "chief", "--bind", f"{host}:{port}",
                              "--expect-workers", str(workers)], preexec_fn=_die_with_parent)
    procs = []
    for i in range(workers):
        env = dict(os.environ, KERASTUNER_TUNER_ID=f"worker{i}")
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        else:
            env.update(worker_threads(workers, env))
        procs.append(subprocess.Popen([*base, "--role", "worker", "--chief",
                                       f"{host}:{port}"], env=env,
                                      preexec_fn=_die_with_parent))
    print(f"chief on {host}:{port} (pid {chief.pid}), {workers} worker(s): "
          f"{', '.join(str(p.pid) for p in procs)}", flush=True)
    everyone = (chief, *procs)
    try:
        code = _supervise(chief, procs, worker_timeout)
    except BaseException:  # Ctrl-C or SIGTERM: pass it on, let each close its runs
        _stop(everyone)
        raise
    _stop(everyone)  # only stragglers: normally all have exited
    return code


def worker_threads(workers: int, env=os.environ) -> dict[str, str]:
    """CPU threads for each of ``workers`` processes sharing this machine:
    the cores split between them (workers x threads = cores), as
    TensorFlow's and OpenMP's environment variables, unless the user set
    them. Without it every worker starts a thread per core, and the
    workers' threads fight over the cores."""
    threads = str(max(1, (os.cpu_count() or 1) // workers))
    names = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
    return {name: threads for name in names if name not in env}


def _die_with_parent() -> None:
    """In a child of the launcher: get SIGTERM if the launcher dies, even by
    SIGKILL, so that no chief or worker outlives it (Linux; elsewhere a no-op)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _supervise(chief, procs, worker_timeout: float, poll: float = 0.2) -> int:
    """Wait for the chief; stop it if all the workers die first."""
    workers_gone_at = None
    while chief.poll() is None:
        if all(p.poll() is not None for p in procs):
            failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode]
            workers_gone_at = workers_gone_at or time.monotonic()
            # Workers that ended well ran out of trials: the chief is finishing.
            if failed or time.monotonic() - workers_gone_at > worker_timeout + 10:
                causes = ", ".join(f"worker{i} {_exit_text(c)}" for i, c in failed)
                print(f"every worker has stopped ({causes or 'the chief did not finish'}); "
                      f"stopping the chief. Run the same command again to resume the "
                      f"search", file=sys.stderr, flush=True)
                _stop([chief])
                return 1
        time.sleep(poll)
    for i, p in enumerate(procs):
        try:
            p.wait(timeout=CONNECT_TIMEOUT + 10)  # a worker notices its chief is gone
        except subprocess.TimeoutExpired:
            pass
        if p.poll() is not None and p.returncode != 0:
            print(f"worker{i} {_exit_text(p.returncode)}", file=sys.stderr)
    return chief.returncode


def _exit_text(code: int) -> str:
    if code is not None and code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with {code}"


def _stop(procs, grace: float = 30.0) -> None:
    """SIGTERM each live process (each closes its runs), then SIGKILL any
    still alive after ``grace`` seconds."""
    live = [p for p in procs if p.poll() is None]
    for p in live:
        p.terminate()
    deadline = time.monotonic() + grace
    for p in live:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
