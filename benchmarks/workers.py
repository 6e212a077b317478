"""W11 (issue 23): W1's app under `webpipe serve --workers 2` vs the same under one worker.

Run: python benchmarks/run.py W11 [--duration 5] [--rounds 3]

Both servers run at once (an idle one costs nothing) and wrk's rounds alternate between
them; each side's median round is reported with the ratio of the medians. Placement:

- with 3 or more cores, the one-worker server is pinned to CPU 0, each of the two workers
  to its own core (CPU 0 and CPU 1, found from their `worker <pid> serving` lines), and wrk
  to the remaining cores (one wrk thread per core, at most two), so the servers never
  share a core with the load generator: the ratio is what a second core buys.
- with 2 cores, wrk cannot have a core of its own. Nothing is pinned and the kernel places
  the workers and wrk; the two workers then have 2 cores minus wrk's share and minus what
  other processes use (on a shared machine, other developers' tests), while the one
  worker needs only one core, so the ratio is bounded well below 2. Each round measures
  the cores used by the server, by wrk and by everything else (/proc), and the result
  prints them with the bound they imply, and the rps per core the server used on each
  side: their ratio (the efficiency) times two is what two whole cores would give.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from workloads import W1

CONNECTIONS = 64


def placement() -> dict[str, Any]:
    """CPU sets for the one-worker server, each of the two workers, and wrk."""
    cores = os.cpu_count() or 1
    if cores < 3 or not shutil.which("taskset"):
        return {"pinned": False, "cores": cores, "wrk_threads": 1}
    wrk_cores = list(range(2, min(cores, 4)))
    return {"pinned": True, "cores": cores, "one": "0", "workers": ["0", "1"],
            "wrk": ",".join(map(str, wrk_cores)), "wrk_threads": len(wrk_cores)}


def start(app: Path, port: int, log: Path, workers: int, place: dict[str, Any],
          ) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "webpipe", "serve", str(app), "--port", str(port),
           "--no-access-log"]
    if workers > 1:
        cmd += ["--workers", str(workers)]
    elif place["pinned"]:
        cmd = ["taskset", "-c", place["one"], *cmd]
    env = {**os.environ, "WEBPIPE_LOG": "INFO"}  # the `worker <pid> serving` lines
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    wait_workers(log, workers, proc)
    if workers > 1 and place["pinned"]:
        for pid, cpus in zip(worker_pids(log), place["workers"], strict=False):
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], check=True,
                           capture_output=True)  # -a: every thread the worker has
    return proc


def worker_pids(log: Path) -> list[int]:
    return [int(pid) for pid in re.findall(r"worker (\d+) serving", log.read_text())]


def wait_workers(log: Path, workers: int, proc: subprocess.Popen[bytes]) -> None:
    """Until every worker logged that it serves (one worker logs no such line)."""
    deadline = time.time() + 60
    while time.time() < deadline:
        text = log.read_text()
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {text}")
        ready = "webpipe serving" in text if workers == 1 else \
            len(worker_pids(log)) >= workers
        if ready:
            time.sleep(1.0)  # the last worker's socket starts listening after its line
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not start: {log.read_text()}")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (Linux /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def server_cpu_s(pid: int) -> float:
    """CPU seconds of the server process `pid` and its children (the workers)."""
    total = 0.0
    for one in [pid, *children(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found += [int(c) for c in text.split()]
    return found


def wrk(port: int, server: int, duration: int, place: dict[str, Any],
        ) -> tuple[dict[str, float], dict[str, float]]:
    """One wrk round: its figures, and the cores used meanwhile by the server, by wrk
    and by everything else on the machine (other developers' tests, on a shared one)."""
    from run import parse_wrk

    pin = ["taskset", "-c", place["wrk"]] if place["pinned"] else []
    url = f"http://127.0.0.1:{port}{W1.path}"
    subprocess.run([*pin, "wrk", "-t1", "-c8", "-d1s", url], capture_output=True, check=True)
    before, busy, served = os.times(), machine_busy_s(), server_cpu_s(server)
    start = time.monotonic()
    out = subprocess.run([*pin, "wrk", f"-t{place['wrk_threads']}", f"-c{CONNECTIONS}",
                          f"-d{duration}s", "--latency", url],
                         capture_output=True, text=True, check=True).stdout
    after, elapsed = os.times(), time.monotonic() - start
    used = {"wrk": (after.children_user - before.children_user
                    + after.children_system - before.children_system) / elapsed,
            "server": (server_cpu_s(server) - served) / elapsed}
    used["others"] = max(0.0, (machine_busy_s() - busy) / elapsed - used["wrk"]
                         - used["server"])
    return parse_wrk(out), used


def run_w11(duration: int, rounds: int, workdir: Path) -> dict[str, object]:
    from run import free_port

    place = placement()
    app_dir = workdir / "W11"
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "app.wp").write_text(W1.wp)
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    runs: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
    cores: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
    try:
        for side, workers in (("one", 1), ("two", 2)):
            port = free_port()
            procs[side] = (start(app_dir / "app.wp", port, app_dir / f"{side}.log", workers,
                                 place), port)
        for _ in range(rounds):
            for side, (proc, port) in procs.items():
                figures, used = wrk(port, proc.pid, duration, place)
                runs[side].append(figures)
                cores[side].append(used)
    finally:
        from run import stop

        for proc, _port in procs.values():
            stop(proc, wait_s=20)
    return summary(runs, cores, place)


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def summary(runs: dict[str, list[dict[str, float]]], cores: dict[str, list[dict[str, float]]],
            place: dict[str, Any]) -> dict[str, object]:
    medians = {side: _median([r["rps"] for r in side_runs]) for side, side_runs in runs.items()}
    used = {side: {what: round(_median([c[what] for c in rounds]), 2)
                   for what in ("server", "wrk", "others")} for side, rounds in cores.items()}
    two = used["two"]
    if place["pinned"]:
        how = (f"{place['cores']} cores: one worker on CPU 0; two workers on CPUs 0 and 1; "
               f"wrk on CPUs {place['wrk']}")
    else:
        how = (f"{place['cores']} cores, nothing pinned: during the two-worker rounds wrk "
               f"used {two['wrk']:.2f} cores and other processes {two['others']:.2f}, so "
               f"the two workers could have at most "
               f"{place['cores'] - two['wrk'] - two['others']:.2f} cores (they used "
               f"{two['server']:.2f}; one worker used {used['one']['server']:.2f}): the "
               f"ratio is bounded by that, not by webpipe")
    # rps per core the server used: what each worker gets out of a core, whatever the
    # machine left it; their ratio is the scaling efficiency (1.0: no loss to a second worker)
    per_core = {side: medians[side] / max(used[side]["server"], 0.01) for side in medians}
    return {"workload": "W11", "title": "W1 under --workers 2 vs one worker",
            "one_rps": round(medians["one"]), "two_rps": round(medians["two"]),
            "ratio": round(medians["two"] / medians["one"], 3),
            "rps_per_server_core": {side: round(v) for side, v in per_core.items()},
            "efficiency": round(per_core["two"] / per_core["one"], 3),
            "rounds_rps": {side: [round(r["rps"]) for r in side_runs]
                           for side, side_runs in runs.items()},
            "cores_used": used, "placement": how}


def print_w11(row: dict[str, object]) -> None:
    per_core = row["rps_per_server_core"]
    print(f"W11  one worker {row['one_rps']} rps, two workers {row['two_rps']} rps: "
          f"x{row['ratio']:.2f}  ({row['placement']}); rps per core the server used: "
          f"{per_core['one']} vs {per_core['two']} (efficiency "  # type: ignore[index]
          f"{row['efficiency']:.2f})")
