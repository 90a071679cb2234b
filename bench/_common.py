"""What the benchmarks share: an instant End User Messaging stand-in, the repository's one `wrangler
dev` launcher (tests/e2e/launcher.py) set to log to a file, and latency summaries.
(bench/provisioning_bench.py uses the e2e fixtures of tests/e2e/conftest.py: it needs the verifying
stand-ins.)"""
from __future__ import annotations

import collections
import http.client
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from launcher import WranglerDev  # noqa: E402


class InstantMessaging:
    """Answers every POST with 200 {"MessageId": "<prefix>-<n>"} immediately. No signature or body
    checks. Headers and body leave in one write with TCP_NODELAY: a second small write would wait for
    the peer's delayed ACK (Nagle), ~40 ms per request on Linux loopback."""

    def __init__(self, prefix: str = "bench"):
        counter = itertools.count(1)
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "InstantMessaging"
            sys_version = ""
            disable_nagle_algorithm = True

            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                with lock:
                    n = next(counter)
                body = json.dumps({"MessageId": f"{prefix}-{n:012d}"}).encode()
                head = (f"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                self.wfile.write(head + body)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True
            request_queue_size = 128

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


class Wrangler(WranglerDev):
    """The e2e launcher (tests/e2e/launcher.py) with the benches' habits: output to the file `log`,
    and `call` for a raw request."""

    def __init__(self, config: Path | str, vars: dict, persist: Path, log: Path, env_file: Path):
        super().__init__(persist=persist, env_file=env_file, vars=vars, config=config, log=log)

    def tail(self, n: int = 4000) -> str:
        return self.text(n)

    def call(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
             timeout: float = 30) -> tuple[int, bytes]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def stop(self):
        super().stop(term_wait_s=15)


def percentile(sorted_ms: list[float], p: float) -> float:
    """`p` in 0..1 of an already sorted list (nearest rank)."""
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round((len(sorted_ms) - 1) * p)))]


def summary(latencies_ms: list[float]) -> str:
    s = sorted(latencies_ms)
    if not s:
        return "n=0"
    return (f"p50={percentile(s, 0.5):.2f}ms p90={percentile(s, 0.9):.2f}ms p99={percentile(s, 0.99):.2f}ms "
            f"max={s[-1]:.2f}ms mean={statistics.fmean(s):.2f}ms n={len(s)}")


def session_cpu(sid: int, include_self: bool = False) -> dict[str, float]:
    """CPU seconds (utime + stime) by command name of every process in session `sid` (a `wrangler
    dev` started in its own session: its node, workerd, esbuild, ...); with `include_self`, this
    Python process too (the client and the stand-ins), as "python (bench)"."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = collections.defaultdict(float)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); session is field 6, utime 14, stime 15
        if int(fields[3]) != sid:
            continue
        out[comm] += (int(fields[11]) + int(fields[12])) / tick
    if include_self:
        t = os.times()
        out["python (bench)"] = t.user + t.system
    return dict(out)

