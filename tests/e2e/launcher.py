"""The one `wrangler dev` launcher of the repository: the e2e suite (conftest's WorkerInstance), the
benchmarks (bench/_common.Wrangler) and `scripts/dev` (scripts/local_stack.py) all start the Worker
through `WranglerDev`.

It runs `wrangler dev` of this checkout on 127.0.0.1 (a free port unless one is given, a free
inspector port), with `--persist-to` (local KV, Queues, Durable Object storage) and an explicit
`--env-file` (so a developer's `.dev.vars` never leaks in, and secrets never go on the command
line: wrangler prints every `--var` value in its banner), in its own process group, stopped with
the whole group. Output goes to a file (`log=`), into memory (`capture=True`: `lines()`), or to this
terminal."""
from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
from pathlib import Path

from mocks._server import free_port, stop_group

ROOT = Path(__file__).resolve().parents[2]
WRANGLER = ROOT / "node_modules" / ".bin" / "wrangler"


def clean_env() -> dict:
    """The environment wrangler runs in: no colours, no prompts, no account token."""
    env = dict(os.environ, NO_COLOR="1", FORCE_COLOR="0", CI="1")
    env.pop("CLOUDFLARE_API_TOKEN", None)
    return env


def write_env_file(path: Path, secrets: dict) -> Path:
    """A `.dev.vars`-style file of `secrets`, created readable by its owner only. Values are
    single-quoted, which dotenv (wrangler's reader) takes literally: a JSON value such as a JWK
    arrives as written. A value with a quote or a line break is refused."""
    lines = []
    for k, v in secrets.items():
        v = str(v)
        if "'" in v or "\n" in v or "\r" in v:
            raise ValueError(f"{k}: a value for an env file may hold no single quote or line break")
        lines.append(f"{k}='{v}'\n")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("".join(lines))
    return path


class WranglerDev:
    def __init__(self, *, persist: Path, env_file: Path, vars: dict | None = None, config: str | Path = "wrangler.toml",
                 port: int | None = None, log: Path | None = None, capture: bool = False, env: dict | None = None,
                 name: str = "worker"):
        self.name = name
        self.config = str(config)
        self.vars = vars if vars is not None else {}
        self.persist = persist
        self.env_file = env_file
        self._fixed_port = port
        self.log_path = log
        self._capture = capture
        self._env = env if env is not None else clean_env()
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._readers: list[threading.Thread] = []
        self._log_file = None
        self.proc: subprocess.Popen | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        """Starts wrangler dev (again, after `stop`: a new port unless fixed; captured lines are kept)."""
        self.port = self._fixed_port or free_port()
        cmd = [str(WRANGLER), "dev", "--config", self.config, "--ip", "127.0.0.1", "--port", str(self.port),
               "--inspector-port", str(free_port()), "--persist-to", str(self.persist),
               "--show-interactive-dev-session=false", "--env-file", str(self.env_file)]
        for k, v in self.vars.items():
            cmd += ["--var", f"{k}:{v}"]
        if self._capture:
            out = err = subprocess.PIPE
        elif self.log_path is not None:
            self._log_file = open(self.log_path, "ab")
            out, err = self._log_file, subprocess.STDOUT
        else:
            out = err = None
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self._env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                     start_new_session=True)
        if self._capture:
            self._readers = [threading.Thread(target=self._pump, args=(s, tag), daemon=True)
                             for s, tag in ((self.proc.stdout, ""), (self.proc.stderr, "[stderr] "))]
            for t in self._readers:
                t.start()

    def _pump(self, stream, tag: str):
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._lock:
                self._lines.append(tag + line)

    def note(self, line: str):
        """Adds a line of our own to the captured output (e.g. a restart marker)."""
        with self._lock:
            self._lines.append(line)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self, last: int | None = None) -> str:
        """The output so far (captured, or the log file's), the last `last` characters."""
        if self._capture:
            with self._lock:
                text = "\n".join(self._lines)
        elif self.log_path is not None and self.log_path.exists():
            if self._log_file:
                self._log_file.flush()
            text = self.log_path.read_bytes().decode("utf-8", "replace")
        else:
            text = ""
        return text if last is None else text[-last:]

    def health(self, timeout: float = 2) -> int | None:
        """The status of GET /healthz, or None when nothing answers."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", "/healthz")
            return c.getresponse().status
        except (OSError, http.client.HTTPException):
            return None
        finally:
            c.close()

    def wait_ready(self, start_timeout_s: float, build_timeout_s: float) -> float:
        """Seconds until /healthz answers 200; `build_timeout_s` applies while a custom build runs."""
        t0 = time.monotonic()
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"wrangler dev ({self.name}) exited with {self.proc.returncode}:\n{self.text(6000)}")
            if self.health() == 200:
                return time.monotonic() - t0
            elapsed = time.monotonic() - t0
            text = self.text(20_000).lower()
            building = "custom build" in text and "ready on" not in text
            if elapsed > (build_timeout_s if building else start_timeout_s):
                raise RuntimeError(f"wrangler dev ({self.name}) not healthy after {elapsed:.0f}s:\n{self.text(6000)}")
            time.sleep(0.25)

    def stop(self, term_wait_s: float = 10):
        if self.proc is not None:
            stop_group(self.proc, term_wait_s=term_wait_s)
        for t in self._readers:
            t.join(2)
        if self._log_file:
            self._log_file.close()
            self._log_file = None
