"""A loopback HTTP server running in a daemon thread, shared by the mocks; and the two process
helpers the e2e launcher and the benchmarks share (`free_port`, `stop_group`)."""
from __future__ import annotations

import copy
import json
import os
import signal
import socket
import struct
import subprocess
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_group(proc: subprocess.Popen, term_wait_s: float = 10, kill_wait_s: float = 5):
    """Stops the process group `proc` leads (started with start_new_session=True): SIGTERM, then
    SIGKILL if the group is still there after `term_wait_s`. Signals the group even when the leader
    has already exited (wrangler's workerd and build children may still run)."""
    pgid = proc.pid
    for sig, wait_s in ((signal.SIGTERM, term_wait_s), (signal.SIGKILL, kill_wait_s)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        t0 = time.monotonic()
        while time.monotonic() - t0 < wait_s:
            proc.poll()
            try:
                os.killpg(pgid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            continue
        break
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hanging handler must never block shutdown
    allow_reuse_address = True
    request_queue_size = 64


class Reply:
    """What a mock handler answers: status, headers, body bytes. `extra_headers` are (name, value)
    pairs sent after `headers`, for a header that must appear more than once (e.g. two `Link`s)."""

    def __init__(self, status: int, body: bytes | str | dict | list = b"", headers: dict | None = None,
                 content_type: str | None = None, abort: bool = False,
                 extra_headers: list[tuple[str, str]] | None = None, stall_s: float = 0.0,
                 stall_after: int | None = None):
        self.abort = abort
        # A stalled body: status, headers (with the full Content-Length) and the first `stall_after`
        # bytes of the body are sent, then nothing for `stall_s` seconds, then the rest.
        self.stall_s = float(stall_s)
        self.stall_after = stall_after
        self.extra_headers = list(extra_headers or [])
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            content_type = content_type or "application/json"
        elif isinstance(body, str):
            body = body.encode()
        self.status = status
        self.body = body
        self.headers = dict(headers or {})
        if content_type:
            self.headers.setdefault("Content-Type", content_type)


class LoopbackServer:
    """Serves `handle(method, path, headers, body) -> Reply` on 127.0.0.1:<random free port>."""

    def __init__(self, handle: Callable[[str, str, dict, bytes, "BaseHTTPRequestHandler"], Reply], name: str):
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = name
            sys_version = ""

            def log_message(self, *args):  # keep pytest output quiet
                pass

            def setup(self):
                super().setup()
                # Headers and body go out as two writes: without this, delayed ACKs stall each answer ~40 ms.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    reply = handle(self.command, self.path, self.headers, body, self)
                except Exception as exc:  # a mock bug must be visible, not a hung connection
                    outer.errors.append(repr(exc))
                    reply = Reply(599, {"mockError": repr(exc)})
                if reply.abort:  # simulate a network failure: RST, no HTTP answer
                    try:
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    except OSError:
                        pass
                    self.close_connection = True
                    return
                try:
                    self.send_response(reply.status)
                    for k, v in [*reply.headers.items(), *reply.extra_headers]:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        if reply.stall_s > 0:
                            cut = len(reply.body) // 2 if reply.stall_after is None else reply.stall_after
                            self.wfile.write(reply.body[:cut])
                            self.wfile.flush()
                            time.sleep(reply.stall_s)
                            self.wfile.write(reply.body[cut:])
                        else:
                            self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (e.g. the Worker's deadline passed)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve

        self.errors: list[str] = []
        self._httpd = _Server(("127.0.0.1", 0), Handler)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name=f"{name}:{self.port}", daemon=True)
        self._thread.start()

    def close(self):
        self._httpd.shutdown()
        self._httpd.server_close()


def hang(entry: dict) -> bool:
    """A `{"hang": s}` entry: sleeps `s` seconds and says so (what follows is the mock's own)."""
    if "hang" not in entry:
        return False
    time.sleep(float(entry["hang"]))
    return True


def fault_reply(entry: dict, error, *, raw_status: int, raw_type: str, label: str = "error") -> tuple["Reply", str] | None:
    """The scripted faults every mock answers the same way: `{"abort": True}` (the connection
    closed without an answer) and `{"raw": body, "status"?, "content_type"?}` (a body as given);
    else, with a `type`, the service's own error shape from `error(entry)`. Returns the reply and
    the outcome recorded (`label` for the last two), or None for an entry that is none of these."""
    if entry.get("abort"):
        return Reply(0, abort=True), "aborted"
    if "raw" in entry:
        return Reply(entry.get("status", raw_status), entry["raw"], content_type=entry.get("content_type", raw_type)), label
    if "type" in entry:
        return error(entry), label
    return None


class RecordingMock:
    """A loopback mock that records every request and answers from a queued script first.
    Subclasses implement `_handle` and append their records to `self._records` under `self._lock`."""

    def __init__(self, name: str):
        self._lock = threading.Lock()
        self._records: list[dict] = []
        self._script: deque = deque()
        self._server = LoopbackServer(self._handle, name)
        self.port = self._server.port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, entries: list[dict]):
        """Queue answers for the next accepted calls, in order."""
        with self._lock:
            self._script.extend(copy.deepcopy(entries))

    def take_script(self, matches=None, queue: deque | None = None) -> dict | None:
        """Takes the first queued entry that `matches` accepts (any entry by default) from the
        script (or from another `queue` of this mock's). Every mock takes its faults this way."""
        q = self._script if queue is None else queue
        with self._lock:
            for entry in q:
                if matches is None or matches(entry):
                    q.remove(entry)
                    return entry
        return None

    def pending_script(self) -> int:
        with self._lock:
            return len(self._script)

    def reset(self):
        with self._lock:
            self._records.clear()
            self._script.clear()

    def requests(self) -> list[dict]:
        with self._lock:
            return list(self._records)

    def close(self):
        self._server.close()
