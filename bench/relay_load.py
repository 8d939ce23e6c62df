"""Relay load test on loopback: signed + stored webhooks per second, p50/p99, against a bare app.

Both apps run on the same server set-up with the same workers and threads (default: waitress,
2 worker processes x 8 threads, the default of `relay serve` and the Docker image; `--server
gunicorn` for comparison), started the same way, measured by the same load generator in the same
run, so the ratio is what the relay costs:

* **bare**  — a WSGI app that reads the body and answers `200 OK` (the ceiling of the server);
* **relay** — `sentry-autofix relay serve` (the real CLI), every request a distinct, correctly
  signed Sentry `issue.created` webhook, verified, parsed, routed and committed to the SQLite
  outbox before the answer; its dispatcher runs against a loopback fake GitHub (at the default
  dispatch rate cap). Dedup is switched off here so that every request is a stored row.

Load generator: `wrk` (Debian package) when it is on PATH, else a Python keep-alive client in
worker processes. Usage:

    .venv/bin/python bench/relay_load.py [--duration 10] [--connections 16] [--workers 2] [--threads 8] [--rounds 2]
    .venv/bin/python bench/relay_load.py --rounds 0 --slow-clients 200       # the slow-client probe alone
    .venv/bin/python bench/relay_load.py --baseline /path/to/other/checkout/src   # before/after

`--baseline` adds a third server per round: the relay from another checkout, alternated with the
other two, so a change is judged against its predecessor under the same machine load.

Prints one table plus ratios. Goals on the reference 2-core machine: >= 2,000 req/s, p99 <= 25 ms,
>= 60 % of the bare app's throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import http.client
import json
import multiprocessing as mp
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = (
    Path(os.environ.get("SENTRY_AUTOFIX_SHARED_FIXTURES", ROOT.parent / "shared" / "fixtures"))
    / "sentry"
    / "webhooks"
    / "issue.created.json"
)
SECRET = b"bench-secret"
PATH = "/webhooks/sentry"


def bare_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """The ceiling: read the body, answer 200."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"OK"]


def serve_bare_waitress(port: int, threads: int, workers: int) -> None:
    """The bare app on exactly the relay's waitress set-up: same socket, tuning and supervisor."""
    from sentry_autofix.relay.server import Supervisor, listen, waitress_server

    sock = listen("127.0.0.1", port)

    def worker() -> int:
        server = waitress_server(bare_app, sock, threads=threads)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.run()
        return 0

    if workers <= 1:
        worker()
    else:
        Supervisor(workers, worker).run()


def bare_command(py: str, server: str, port: int, threads: int, workers: int) -> list[str]:
    if server == "gunicorn":
        return [
            str(Path(py).parent / "gunicorn"),
            "--chdir",
            str(Path(__file__).parent),
            "-b",
            f"127.0.0.1:{port}",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            str(threads),
            "--log-level",
            "warning",
            "relay_load:bare_app",
        ]
    return [
        py,
        "-c",
        "import sys; sys.path.insert(0, sys.argv[1]); import relay_load; "
        "relay_load.serve_bare_waitress(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))",
        str(Path(__file__).parent),
        str(port),
        str(threads),
        str(workers),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not start")


def make_bodies(n: int) -> list[tuple[str, bytes]]:
    """Distinct issue.created webhooks, compact JSON as Sentry sends them, each with its signature."""
    doc = json.loads(FIXTURE.read_text(encoding="utf-8"))
    # Fresh issue times: the relay ignores fix-starting webhooks older than its replay window.
    seen = time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())
    out = []
    for i in range(n):
        issue = doc["data"]["issue"]
        issue["firstSeen"] = issue["lastSeen"] = seen
        issue["id"] = str(7_000_000_000 + i)
        issue["shortId"] = f"PYTHON-{i:X}"
        body = json.dumps(doc, separators=(",", ":")).encode()
        out.append((hmac.new(SECRET, body, hashlib.sha256).hexdigest(), body))
    return out


LUA = r"""
local bodies = {
%s
}
local i = 0
function init(args)
  i = (wrk.thread:get("id") or 0) * 997
end
function setup(thread)
  thread:set("id", (setup_count or 0))
  setup_count = (setup_count or 0) + 1
end
function request()
  i = i %% #bodies + 1
  local b = bodies[i]
  return wrk.format("POST", "%s", {["Content-Type"] = "application/json", ["Sentry-Hook-Resource"] = "issue",
    ["Sentry-Hook-Signature"] = b[1], ["Request-ID"] = "bench-" .. i}, b[2])
end
function done(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "non2xx": %%d, '
    .. '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


def write_lua(bodies: list[tuple[str, bytes]], path: Path) -> None:
    rows = ",\n".join(f'{{"{sig}", [=====[{body.decode()}]=====]}}' for sig, body in bodies)
    path.write_text(LUA % (rows, PATH), encoding="utf-8")


def run_wrk(port: int, lua: Path, duration: int, connections: int) -> dict[str, float]:
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{duration}s",
            "--timeout",
            "5s",
            "-s",
            str(lua),
            f"http://127.0.0.1:{port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    r = json.loads(line[7:])
    secs = r["duration_us"] / 1e6
    return {
        "rps": r["requests"] / secs,
        "ok_rps": (r["requests"] - r["non2xx"]) / secs,
        "requests": r["requests"],
        "non2xx": r["non2xx"],
        "errors": r["socket_errors"],
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
    }


def _py_worker(port: int, bodies: list[tuple[str, bytes]], start: float, stop: float, offset: int, q: Any) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    lat: list[float] = []
    non2xx = 0
    i = offset
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < stop:
        sig, body = bodies[i % len(bodies)]
        i += 1
        t0 = time.perf_counter()
        conn.request(
            "POST",
            PATH,
            body,
            {
                "Content-Type": "application/json",
                "Sentry-Hook-Resource": "issue",
                "Sentry-Hook-Signature": sig,
            },
        )
        resp = conn.getresponse()
        resp.read()
        lat.append(time.perf_counter() - t0)
        if not 200 <= resp.status < 300:
            non2xx += 1
    q.put((lat, non2xx))


def run_python_client(port: int, bodies: list[tuple[str, bytes]], duration: int, connections: int) -> dict[str, float]:
    q: Any = mp.Queue()
    start = time.time() + 1.0
    procs = [
        mp.Process(target=_py_worker, args=(port, bodies, start, start + duration, k * 997, q))
        for k in range(connections)
    ]
    for p in procs:
        p.start()
    results = [q.get() for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in results for x in r[0])
    non2xx = sum(r[1] for r in results)
    return {
        "rps": len(lat) / duration,
        "ok_rps": (len(lat) - non2xx) / duration,
        "requests": len(lat),
        "non2xx": non2xx,
        "errors": 0,
        "p50_ms": lat[len(lat) // 2] * 1000,
        "p99_ms": lat[int(len(lat) * 0.99)] * 1000,
    }


def slow_client_probe(port: int, bodies: list[tuple[str, bytes]], n: int, webhooks: int = 48) -> dict[str, float]:
    """Slowloris on loopback: `n` connections dribble a request's headers a byte every 0.3 s and
    `n` connect and say nothing; meanwhile 8 threads send `webhooks` well-behaved webhooks, each
    with Sentry's 1 s timeout. Bounded: every socket is closed at the end."""
    head = b"POST /webhooks/sentry HTTP/1.1\r\nHost: relay\r\nContent-Type: application/json\r\n"
    socks = []
    for _ in range(2 * n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    stop_flag = threading.Event()

    def dribble() -> None:
        position = 0
        while not stop_flag.wait(0.3):
            for s in socks[:n]:
                try:
                    s.send(head[position % len(head) : position % len(head) + 1])
                except OSError:
                    pass
            position += 1

    thread = threading.Thread(target=dribble, daemon=True)
    thread.start()
    time.sleep(1.0)

    def send(item: tuple[str, bytes]) -> float:
        sig, body = item
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
            conn.request(
                "POST",
                PATH,
                body,
                {"Content-Type": "application/json", "Sentry-Hook-Resource": "issue", "Sentry-Hook-Signature": sig},
            )
            ok = 200 <= conn.getresponse().status < 300
            conn.close()
        except OSError:
            ok = False
        elapsed = time.monotonic() - started
        return elapsed if ok and elapsed <= 1.0 else float("inf")

    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            times = list(pool.map(send, bodies[-webhooks:]))
    finally:
        stop_flag.set()
        thread.join(5)
        for s in socks:
            s.close()
    answered = [t for t in times if t != float("inf")]
    return {
        "sent": float(webhooks),
        "within_1s": float(len(answered)),
        "max_ms": max(times) * 1000 if answered and len(answered) == webhooks else float("inf"),
        "requests": float(webhooks),
        "non2xx": float(webhooks - len(answered)),
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (gunicorn workers), from /proc (Linux)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    try:
        pids = [pid] + [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return float("nan")
    for p in pids:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def measured(proc: subprocess.Popen[Any], load: Any, port: int) -> dict[str, float]:
    before = cpu_seconds(proc.pid)
    result: dict[str, float] = load(port)
    used = cpu_seconds(proc.pid) - before
    result["cpu_us_per_req"] = used / max(1, result["requests"]) * 1e6
    result["cpu_cores"] = used / max(1e-9, result["requests"] / result["rps"])
    return result


def stop(proc: subprocess.Popen[Any]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--server", choices=["waitress", "gunicorn"], default="waitress")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2, as `relay serve`)")
    ap.add_argument("--threads", type=int, help="threads per worker (default: 1 gunicorn, 8 waitress)")
    ap.add_argument("--rounds", type=int, default=2, help="bare/relay pairs, alternated; the median is reported")
    ap.add_argument("--bodies", type=int, default=2000)
    ap.add_argument("--client", choices=["auto", "wrk", "python"], default="auto")
    ap.add_argument(
        "--slow-clients",
        type=int,
        default=0,
        metavar="N",
        help="also probe the relay with N connections sending a byte every 0.3 s and N idle ones (0: off)",
    )
    ap.add_argument(
        "--baseline",
        metavar="SRC",
        help="also measure the relay from another checkout's src/ (e.g. the previous release) in the same rounds",
    )
    args = ap.parse_args()
    if args.threads is None:
        args.threads = 1 if args.server == "gunicorn" else 8
    if not FIXTURE.is_file():
        print(f"fixture not found: {FIXTURE}", file=sys.stderr)
        return 2
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"

    tmp = Path(tempfile.mkdtemp(prefix="relay-bench-"))
    bodies = make_bodies(args.bodies)
    lua = tmp / "bodies.lua"
    write_lua(bodies, lua)

    def load(port: int) -> dict[str, float]:
        if client == "wrk":
            return run_wrk(port, lua, args.duration, args.connections)
        return run_python_client(port, bodies, args.duration, args.connections)

    py = sys.executable
    gh = subprocess.Popen(
        [
            py,
            str(ROOT / "tests" / "relay" / "relay_fake_github.py"),
            "--token",
            "bench-token",
            "--repo",
            "acme/web",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert gh.stdout is not None
    gh_port = int(gh.stdout.readline().split()[1])
    kinds = ["bare", "relay"] + (["baseline"] if args.baseline else [])
    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in kinds}
    stored_total = 0

    def run_relay(rnd: int, kind: str, probe: Any = None) -> dict[str, float]:
        db = tmp / f"{kind}-{rnd}.sqlite3"
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "SENTRY_"))},
            "SENTRY_WEBHOOK_SECRET": SECRET.decode(),
            "GITHUB_TOKEN": "bench-token",
            "GITHUB_API_URL": f"http://127.0.0.1:{gh_port}",
            "SENTRY_AUTOFIX_ROUTES": "python=acme/web",
            "SENTRY_AUTOFIX_RELAY_DB": str(db),
            "SENTRY_AUTOFIX_RELAY_DEDUP_WINDOW": "0",
            "SENTRY_AUTOFIX_RELAY_RATE_WINDOW": "0",
            "SENTRY_AUTOFIX_RELAY_THREADS": str(args.threads),
            "SENTRY_AUTOFIX_RELAY_WORKERS": str(args.workers),
            "SENTRY_AUTOFIX_RELAY_SERVER": args.server,
        }
        if kind == "baseline":
            # The other checkout's package wins over this one's editable install.
            env["PYTHONPATH"] = str(Path(args.baseline).resolve())
        with open(tmp / f"{kind}-{rnd}.log", "w") as relay_log:
            relay = subprocess.Popen(
                [str(Path(py).parent / "sentry-autofix"), "relay", "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stderr=relay_log,
            )
            try:
                wait_port(port)
                r = probe(port) if probe is not None else measured(relay, load, port)
            finally:
                stop(relay)
        with sqlite3.connect(db) as conn:
            r["stored"] = conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        conn.close()
        return r

    try:
        for rnd in range(args.rounds):
            # Alternate the order so that neither side always runs first after a quiet spell.
            for kind in kinds if rnd % 2 == 0 else kinds[::-1]:
                if kind != "bare":
                    r = run_relay(rnd, kind)
                    stored_total += r["stored"] if kind == "relay" else 0
                    results[kind].append(r)
                    continue
                port = free_port()
                bare = subprocess.Popen(
                    bare_command(py, args.server, port, args.threads, args.workers), stderr=subprocess.DEVNULL
                )
                try:
                    wait_port(port)
                    results["bare"].append(measured(bare, load, port))
                finally:
                    stop(bare)
        if args.slow_clients:
            slow = run_relay(0, "slow", probe=lambda port: slow_client_probe(port, bodies, args.slow_clients))
    finally:
        gh.send_signal(signal.SIGTERM)
        gh.wait(10)

    if args.slow_clients:
        print(
            f"slow clients: {args.slow_clients} dribbling + {args.slow_clients} idle connections; "
            f"well-behaved webhooks answered 2xx within 1 s: {slow['within_1s']:.0f} of {slow['sent']:.0f}"
            + (f" (slowest {slow['max_ms']:.0f} ms)" if slow["within_1s"] == slow["sent"] else "")
        )
    if not args.rounds:
        return 0

    def med(kind: str, key: str) -> float:
        return statistics.median(x[key] for x in results[kind])

    print(
        f"client={client} connections={args.connections} server={args.server} "
        + f"workers={args.workers} "
        + f"threads={args.threads} "
        f"duration={args.duration}s rounds={args.rounds} cpus={os.cpu_count()}"
    )
    print(f"{'':8}{'req/s':>10}{'2xx req/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'non-2xx':>9}{'CPU us/req':>12}{'cores':>7}")
    for kind in kinds:
        print(
            f"{kind:8}{med(kind, 'rps'):>10.0f}{med(kind, 'ok_rps'):>11.0f}{med(kind, 'p50_ms'):>9.2f}"
            f"{med(kind, 'p99_ms'):>9.2f}{med(kind, 'non2xx'):>9.0f}{med(kind, 'cpu_us_per_req'):>12.0f}"
            f"{med(kind, 'cpu_cores'):>7.2f}"
        )
    ratio = med("relay", "ok_rps") / med("bare", "ok_rps")
    acked = sum(x["requests"] - x["non2xx"] for x in results["relay"])
    print(f"relay/bare throughput: {ratio:.1%}")
    if args.baseline:
        print(f"baseline/bare throughput: {med('baseline', 'ok_rps') / med('bare', 'ok_rps'):.1%}")
    print(f"stored rows: {stored_total} for {acked:.0f} acknowledged webhooks (every 2xx must be a stored row)")
    goals = [
        ("relay >= 2000 req/s", med("relay", "ok_rps") >= 2000),
        ("relay p99 <= 25 ms", med("relay", "p99_ms") <= 25),
        ("relay >= 60% of bare", ratio >= 0.60),
        ("every 2xx stored", stored_total >= acked),
    ]
    print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
