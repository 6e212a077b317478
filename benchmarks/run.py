"""Benchmarks: webpipe routes vs the same logic hand-written in Starlette + orjson.

Run on demand (not in CI):  python benchmarks/run.py [W0 W1 ... W11] [--duration 5] [--rounds 3]
    [--before OTHER_CHECKOUT]
(W11, `--workers 2` vs one worker, is benchmarks/workers.py; its placement is described there.)

For each workload both servers run under uvicorn with the same settings (uvloop, httptools,
no access log), pinned to CPU 0; wrk (Debian package `wrk`) drives them from CPU 1, in rounds
alternating between the two servers (each side's median round is reported). Each round
also drives both servers at the same time (`paired`): sharing CPU 0, each gets about half of
it, so the ratio of their rps is the ratio of their per-request costs measured under the same
machine speed; this machine's speed drifts by up to ±30 % between solo rounds, which paired
rounds cancel. Results are printed as a table (rps, p50, p99 from the solo rounds, the ratio of
their medians and the median paired ratio, all from this run) and written to
benchmarks/results.json. With `--before DIR`, a third server runs webpipe from another
checkout (`PYTHONPATH=DIR`, e.g. a `git worktree` of an older commit) in every round too
(solo, and paired with the hand-written server in a pair of its own), so one run gives
before and after, each as a ratio to the same hand-written server.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import WORKLOADS, Workload  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def start(cmd: list[str], port: int, path: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    pin = ["taskset", "-c", "0"] if shutil.which("taskset") else []
    proc = subprocess.Popen(pin + cmd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    wait_ready(port, path)
    return proc


def stop(proc: subprocess.Popen[bytes], wait_s: float = 10) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=wait_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def wrk(port: int, w: Workload, duration: int) -> dict[str, float]:
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") else []
    cmd = [*pin, "wrk", "-t1", f"-c{w.connections}", f"-d{duration}s", "--latency"]
    if w.lua:
        script = HERE / f".{w.name}.lua"
        script.write_text(w.lua)
        cmd += ["-s", str(script)]
    url = f"http://127.0.0.1:{port}{w.path}"
    subprocess.run([*pin, "wrk", "-t1", "-c8", "-d1s", *(["-s", str(HERE / f".{w.name}.lua")]
                    if w.lua else []), url], capture_output=True, check=True)  # warm-up
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    return parse_wrk(out)


def _ms(text: str) -> float:
    value, unit = float(re.match(r"[\d.]+", text).group(0)), re.sub(r"[\d.]", "", text)  # type: ignore[union-attr]
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(out: str) -> dict[str, float]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": rps, "p50_ms": _ms(p50), "p99_ms": _ms(p99),
            "non2xx": float(errors.group(1)) if errors else 0.0}


def database_url(workdir: Path) -> str:
    """DATABASE_URL, else the embedded server of the benchmark directory, seeded once."""
    if os.environ.get("DATABASE_URL"):
        return os.environ["DATABASE_URL"]
    (workdir / "db").mkdir(parents=True, exist_ok=True)
    app = workdir / "db" / "app.wp"
    app.write_text("GET /\n")
    seed = workdir / "db" / "seed.sql"
    seed.write_text("CREATE TABLE IF NOT EXISTS bench_users (id int PRIMARY KEY, name text);\n"
                    "INSERT INTO bench_users VALUES (1, 'Ada') ON CONFLICT DO NOTHING;\n")
    webpipe = [sys.executable, "-m", "webpipe", "db"]
    subprocess.run([*webpipe, "run", str(app), str(seed)], check=True, capture_output=True)
    url = subprocess.run([*webpipe, "url", str(app)], check=True, capture_output=True,
                         text=True).stdout.strip()
    return url


def run_workload(w: Workload, duration: int, rounds: int, workdir: Path,
                 before: Path | None = None) -> dict[str, object]:
    env = {**os.environ, "WEBPIPE_LOG": "WARNING"}
    if w.needs_database:
        env["DATABASE_URL"] = database_url(workdir)
    results: dict[str, object] = {"workload": w.name, "title": w.title}
    app_dir = workdir / w.name
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "app.wp").write_text(w.wp)
    (app_dir / "hand.py").write_text(w.starlette)
    for extra_name, extra_text in w.files.items():
        (app_dir / extra_name).write_text(extra_text)
    uvicorn = [sys.executable, "-m", "uvicorn", "--loop", "uvloop", "--http", "httptools",
               "--no-access-log", "--log-level", "warning"]
    serve = [sys.executable, "-m", "webpipe", "serve", str(app_dir / "app.wp")]
    sides = {"webpipe": serve, "hand": [*uvicorn, "--app-dir", str(app_dir), "hand:app"]}
    envs = {side: env for side in sides}
    if before is not None:  # -P: `-m` would put the working directory (this checkout)
        sides["before"] = [sys.executable, "-P", *serve[1:]]  # first on the path
        envs["before"] = {**env, "PYTHONPATH": str(before)}
    # Both servers run at once (an idle one costs nothing) and the rounds alternate between
    # them, so drift in the machine's speed hits both sides alike; each side's median round
    # is reported.
    procs: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for side, cmd in sides.items():
            port = free_port()
            procs[side] = (start([*cmd, "--port", str(port)], port, w.path, envs[side]), port)
        runs: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
        paired: list[float] = []
        paired_before: list[float] = []
        for _ in range(rounds):
            for side, (_proc, port) in procs.items():
                runs[side].append(wrk(port, w, duration))
            # pairs of two: three servers at once on one core did not split it evenly
            ports = {side: port for side, (_proc, port) in procs.items()}
            both = wrk_together({s: ports[s] for s in ("webpipe", "hand")}, w, duration)
            paired.append(both["webpipe"]["rps"] / both["hand"]["rps"])
            if before is not None:
                both = wrk_together({s: ports[s] for s in ("before", "hand")}, w, duration)
                paired_before.append(both["before"]["rps"] / both["hand"]["rps"])
    finally:
        for proc, _port in procs.values():
            stop(proc)
    for side, side_runs in runs.items():
        ordered = sorted(side_runs, key=lambda r: r["rps"])
        results[side] = {**ordered[len(ordered) // 2],
                         "rounds_rps": [round(r["rps"]) for r in side_runs]}
    web, hand = results["webpipe"], results["hand"]
    results["ratio"] = round(web["rps"] / hand["rps"], 3)  # type: ignore[index]
    results["paired_ratio"] = round(sorted(paired)[len(paired) // 2], 3)
    results["paired_rounds"] = [round(r, 3) for r in paired]
    if before is not None:
        results["before_paired_ratio"] = round(sorted(paired_before)[len(paired) // 2], 3)
        results["before_paired_rounds"] = [round(r, 3) for r in paired_before]
        results["before_ratio"] = round(
            results["before"]["rps"] / hand["rps"], 3)  # type: ignore[index]
    return results


def wrk_together(ports: dict[str, int], w: Workload, duration: int,
                 ) -> dict[str, dict[str, float]]:
    """One wrk per server, all started at once (see the module docstring)."""
    found: dict[str, dict[str, float]] = {}

    def drive(side: str, port: int) -> None:
        found[side] = wrk(port, w, duration)

    threads = [threading.Thread(target=drive, args=item) for item in ports.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if len(found) != len(ports):
        raise RuntimeError(f"a paired wrk run failed for {w.name}")
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("names", nargs="*", help="workloads to run (default: all)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds (each: one solo run per side, one paired run); "
                             "medians are reported")
    parser.add_argument("--before", type=Path,
                        help="another checkout whose webpipe also runs in every round")
    args = parser.parse_args()
    chosen = [w for w in WORKLOADS if not args.names or w.name in args.names]
    workdir = HERE / ".work"
    before = args.before.resolve() if args.before else None
    rows: list[dict[str, object]] = [run_workload(w, args.duration, args.rounds, workdir, before)
                                     for w in chosen]
    if not args.names or "W11" in args.names:  # --workers 2 vs one worker (workers.py)
        from workers import print_w11, run_w11

        w11 = run_w11(args.duration, args.rounds, workdir)
        print_w11(w11)
        rows.append(w11)
    extra = f"{'before':>8}{'b.paired':>9}" if before else ""
    print(f"{'workload':<8}{'webpipe rps':>13}{'hand rps':>11}{'ratio':>8}{'paired':>8}{extra}"
          f"{'wp p50':>9}{'wp p99':>9}{'hand p99':>10}  title")
    for r in rows:
        if r["workload"] == "W11":
            continue
        web, hand = r["webpipe"], r["hand"]
        extra = f"{r['before_ratio']:>8.2f}{r['before_paired_ratio']:>9.2f}" if before else ""
        print(f"{r['workload']:<8}{web['rps']:>13.0f}{hand['rps']:>11.0f}{r['ratio']:>8.2f}"  # type: ignore[index]
              f"{r['paired_ratio']:>8.2f}{extra}"
              f"{web['p50_ms']:>8.2f}m{web['p99_ms']:>8.2f}m{hand['p99_ms']:>9.2f}m  {r['title']}")  # type: ignore[index]
    (HERE / "results.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
