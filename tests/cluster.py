"""A real Spark standalone cluster on 127.0.0.1 for integration tests: one master and N workers started with
pyspark's own `bin/spark-class`, stopped by pid (with every process they spawned) when the test ends."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, from /proc (children first spawned first)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def signal_all(pids: list[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, sig)


def cpu_ticks(pids: list[int]) -> int:
    """User + system CPU clock ticks used so far by `pids` (those still alive)."""
    total = 0
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    signal_all([pid, *descendants(pid)], sig)


@dataclass
class Cluster:
    url: str
    ui_port: int
    master: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as resp:
            return int(json.load(resp).get("aliveworkers", 0))

    def python_workers(self, worker: int) -> list[int]:
        """PySpark Python worker processes running under one worker's executors."""
        # `python -m pyspark.daemon` and its forks; the executor JVM's own command line names pyspark's jars only.
        return [p for p in descendants(self.workers[worker].pid) if "pyspark.daemon" in command_line(p)]

    def busy_worker(self, window: float = 0.5) -> int | None:
        """A worker whose Python workers are computing (CPU time rising over `window` s), or None."""
        before = {w: cpu_ticks(self.python_workers(w)) for w in range(len(self.workers))}
        time.sleep(window)
        rising = {w: cpu_ticks(self.python_workers(w)) - t for w, t in before.items()}
        best = max(rising, key=rising.get) if rising else None
        # 10 ticks = 0.1 s of CPU: a task running Python, not an idle daemon.
        return best if best is not None and rising[best] >= 10 else None

    def kill_worker(self, worker: int) -> None:
        """The machine dies: the worker JVM, its executors and their Python workers, all at once."""
        kill_tree(self.workers[worker].pid)
        self.workers[worker].wait(timeout=30)

    def stop(self) -> None:
        for proc in [*self.workers, self.master]:
            tree = [proc.pid, *descendants(proc.pid)]
            signal_all(tree, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=15)
            signal_all(tree, signal.SIGKILL)
            if proc.poll() is None:
                proc.wait(timeout=15)


def start_cluster(
    workdir: Path, n_workers: int = 2, worker_conf: dict[str, str] | None = None, cores: int = 1
) -> Cluster:
    """Start a master and `n_workers` workers (`cores` cores, 2 GB each; `worker_conf` as their Spark properties);
    waits until all have registered."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, "SPARK_LOG_DIR": str(workdir / "logs")}  # fmt: skip
    props = workdir / "worker.properties"
    props.write_text("".join(f"{k} {v}\n" for k, v in (worker_conf or {}).items()))
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    port, ui = free_port(), free_port()
    log = open(workdir / "master.log", "w")  # noqa: SIM115 - lives as long as the process
    master = subprocess.Popen([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                               "--port", str(port), "--webui-port", str(ui)], stdout=log, stderr=subprocess.STDOUT,
                              env=env)  # fmt: skip
    cluster = Cluster(f"spark://127.0.0.1:{port}", ui, master)
    for i in range(n_workers):
        wlog = open(workdir / f"worker{i}.log", "w")  # noqa: SIM115
        cmd = [spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--cores", str(cores),
               "--memory", "2g", "--webui-port", str(free_port()), "--work-dir", str(workdir / f"worker{i}"),
               "--properties-file", str(props), cluster.url]  # fmt: skip
        cluster.workers.append(subprocess.Popen(cmd, stdout=wlog, stderr=subprocess.STDOUT, env=env))
    deadline = time.time() + 120
    while True:
        try:
            if cluster.alive_workers() == n_workers:
                return cluster
        # Not up yet: no answer, or an HTML page. While the master starts, its root page can answer /json/ (seen
        # once in a full suite run: a JSONDecodeError that failed the test and left the cluster running).
        except (OSError, ValueError):
            pass
        if time.time() > deadline or master.poll() is not None:
            cluster.stop()
            raise RuntimeError(f"standalone cluster did not come up; see {workdir}/*.log")
        time.sleep(1)
