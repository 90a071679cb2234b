"""Fixtures: the loopback mocks and the built Worker running under `wrangler dev`.

Instances are started lazily, once per distinct set of vars, and stopped at session end. They are
started one at a time: each `wrangler dev` runs the custom build from wrangler.toml first.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import pytest
import requests

from helpers import ORIGINATION_IDENTITIES, ROOT
from launcher import WranglerDev
from mocks.aws import MockMessaging
from mocks.connect import MockConnect
from mocks.okta import MockOkta
from mocks.okta_api import MockOktaOrg

AKID = "AKIDLOCALTEST0000001"
AWS_SECRET = "e2eSecretKey/" + secrets.token_hex(13) + "x"            # 40 characters
SESSION_TOKEN = "IQoJe2eSessionToken" + secrets.token_urlsafe(32)
HOOK_HEADER = "X-Okta-Hook-Secret"
HOOK_SECRET = "hook-" + secrets.token_urlsafe(24)
EVENT_HOOK_SECRET = "evt-" + secrets.token_urlsafe(24)
CONNECT_APP_ID = "0oa1connectapp000x1"
CONNECT_GROUP_ID = "00g1connectgrp000x1"
ADMIN_SECRET = "admin-" + secrets.token_urlsafe(24)
CONNECT_INSTANCE = "0f1e2d3c-4b5a-4697-8877-665544332211"
SERVICE_APP_ID = "0oaSERVICEAPP00000x1"
SECURITY_PROFILES = {"sp-agent", "sp-supervisor", "sp-quality"}
ROUTING_PROFILES = {"rp-basic", "rp-escalations", "rp-sales"}
assert len(AWS_SECRET) == 40

# E2E_SNAPSHOT=1: copy the existing build/ aside (it does not build) and run every instance from that
# copy with a derived config that has no [build] section. Use it while src/ is being edited: with the plain config,
# wrangler rebuilds and reloads every running instance whenever a file under src/ changes.
SNAPSHOT = os.environ.get("E2E_SNAPSHOT") == "1"
START_TIMEOUT_S = float(os.environ.get("E2E_START_TIMEOUT", "120"))
BUILD_TIMEOUT_S = float(os.environ.get("E2E_BUILD_TIMEOUT", "900"))  # while a custom build is running
GUARD_MODE = os.environ.get("E2E_GUARD_MODE", "off")


# ---- what must never appear in the Worker's logs --------------------------------------------------
UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class Sensitive:
    """Values the run used that must not reach the logs. Short values are matched only as whole
    tokens (not inside a longer run of letters/digits) so that they cannot match by chance."""

    def __init__(self):
        self._lock = threading.Lock()
        self.items: dict[str, str] = {}

    def add(self, value, kind: str):
        if not isinstance(value, str):
            return
        value = value.strip()
        if len(value) < 4:
            return
        with self._lock:
            self.items.setdefault(value, kind)

    def add_phone(self, raw):
        if not isinstance(raw, str):
            return
        digits = re.sub(r"\D", "", raw)
        if len(digits) < 7:
            return
        self.add(raw, "phone as sent")
        self.add(digits, "phone digits")
        stripped = digits[2:] if digits.startswith("00") else digits
        self.add("+" + stripped, "phone E.164")
        self.add(stripped, "phone digits")

    def add_request(self, body, headers: dict):
        if isinstance(body, (bytes, bytearray)):
            try:
                body = json.loads(body)
            except ValueError:
                body = None
        m = {}
        if isinstance(body, dict):
            m = ((body.get("data") or {}) if isinstance(body.get("data"), dict) else {}).get("messageProfile") or {}
        if isinstance(m, dict):
            otp = m.get("otpCode")
            if isinstance(otp, str) and re.fullmatch(r"\d{4,10}", otp):
                self.add(otp, "OTP")
            self.add(m.get("msgTemplate"), "msgTemplate")
            self.add_phone(m.get("phoneNumber"))
        for k, v in (headers or {}).items():
            if k.lower() == "authorization" and isinstance(v, str):
                token = v.split(" ", 1)[1] if " " in v else v
                self.add(token, "token")
                parts = token.split(".")
                if len(parts) == 3 and len(parts[2]) >= 20:
                    self.add(parts[2], "token signature")
            elif k.lower() == HOOK_HEADER.lower():
                self.add(v, "hook secret")

    def find_in(self, text: str) -> list[tuple[str, str]]:
        hits = []
        # Short codes are looked for in the text without its UUIDs (event ids, MessageIds, request
        # ids): a 4-digit OTP matches one of their hex groups by chance (`-4829-`) about once in
        # 20,000 UUIDs, and no UUID ever carries an OTP.
        without_uuids = UUID.sub("<uuid>", text)
        for value, kind in list(self.items.items()):
            if len(value) >= 12:
                found = value in text
            elif kind == "OTP" and len(value) < 6:
                # A short code also matches by chance JSON numbers (`"ms":4829`) and the kept prefix of
                # a masked phone number (`+4829•••`); an OTP leaks as text or a JSON string, never right
                # after a `:` or a `+`.
                found = re.search(r"(?<![0-9A-Za-z:.+])" + re.escape(value) + r"(?![0-9A-Za-z])",
                                  without_uuids) is not None
            else:
                found = re.search(r"(?<![0-9A-Za-z])" + re.escape(value) + r"(?![0-9A-Za-z])", text) is not None
            if found:
                hits.append((kind, value))
        return hits


# ---- mocks ---------------------------------------------------------------------------------------
class Provisioning:
    """One Okta org (service app key, Connect group and app) and one Connect instance, for one
    provisioning Worker instance."""

    def __init__(self, sensitive: "Sensitive"):
        self.private_jwk, public_jwk = MockOktaOrg.new_client_key()
        self.org = MockOktaOrg(SERVICE_APP_ID, public_jwk)
        self.connect = MockConnect(AKID, AWS_SECRET, instance_id=CONNECT_INSTANCE,
                                   security_profiles=SECURITY_PROFILES, routing_profiles=ROUTING_PROFILES)
        self.group = self.org.add_group("Amazon Connect agents", id=CONNECT_GROUP_ID)
        self.supervisors = self.org.add_group("Amazon Connect supervisors")
        self.app = self.org.add_app("Amazon Connect", id=CONNECT_APP_ID)
        self.sensitive = sensitive
        sensitive.add(self.private_jwk["d"], "Okta API private key")
        sensitive.add(self.private_jwk["p"], "Okta API private key")

    def mapping(self) -> dict:
        return {"default": {"securityProfileIds": ["sp-agent"], "routingProfileId": "rp-basic"},
                "groups": [{"groupId": self.supervisors, "securityProfileIds": ["sp-supervisor", "sp-agent"],
                            "routingProfileId": "rp-escalations"},
                           {"groupId": self.group, "routingProfileId": "rp-sales"}]}

    def vars(self, key: str | None = None) -> dict:
        return {
            "OKTA_EVENT_HOOK_SECRET": EVENT_HOOK_SECRET,
            "OKTA_CONNECT_APP_IDS": self.app,
            "OKTA_CONNECT_GROUP_IDS": f"{self.group},{self.supervisors}",
            "CONNECT_INSTANCE_ID": CONNECT_INSTANCE,
            "AWS_CONNECT_ENDPOINT": self.connect.endpoint,
            "OKTA_ORG_URL": self.org.org_url,
            "OKTA_API_CLIENT_ID": SERVICE_APP_ID,
            "OKTA_API_PRIVATE_KEY": key or json.dumps(self.private_jwk, separators=(",", ":")),
            "CONNECT_PROFILE_MAPPING": json.dumps(self.mapping(), separators=(",", ":")),
            "PROVISIONING_RETRY_SECONDS": "1",
            "PROVISIONING_MAX_ATTEMPTS": "3",
            # The suite's many removals must not spend one hour's budget (its own tests set it low).
            "PROVISIONING_MAX_DELETES_PER_HOUR": "10000",
            "ADMIN_SECRET": ADMIN_SECRET,
        }

    def note_tokens(self):
        """Access tokens the org issued must never be logged either."""
        for t in self.org.issued_tokens():
            self.sensitive.add(t["access_token"], "Okta API access token")

    def close(self):
        self.org.close()
        self.connect.close()


class Mocks:
    def __init__(self, sensitive: "Sensitive"):
        self.okta = MockOkta("aus_test")            # shared by the default OAuth instance
        self.okta_rotation = MockOkta("aus_test")   # own server: its JWKS fetch counter is exact
        self.aws = MockMessaging(AKID, AWS_SECRET)
        self.aws_token = MockMessaging(AKID, AWS_SECRET, session_token=SESSION_TOKEN)
        self.sensitive = sensitive
        self.provisioning: dict[str, Provisioning] = {}

    def prov(self, name: str) -> Provisioning:
        if name not in self.provisioning:
            self.provisioning[name] = Provisioning(self.sensitive)
        return self.provisioning[name]

    def close(self):
        for m in (self.okta, self.okta_rotation, self.aws, self.aws_token, *self.provisioning.values()):
            m.close()


@pytest.fixture(scope="session")
def sensitive():
    s = Sensitive()
    s.add(AWS_SECRET, "AWS secret")
    s.add(SESSION_TOKEN, "AWS session token")
    s.add(HOOK_SECRET, "hook secret")
    s.add(EVENT_HOOK_SECRET, "event hook secret")
    s.add(ADMIN_SECRET, "admin secret")
    return s


@pytest.fixture(scope="session")
def mocks(sensitive):
    m = Mocks(sensitive)
    yield m
    m.close()


# ---- wrangler dev --------------------------------------------------------------------------------
def wrangler_env() -> dict:
    out = subprocess.run(["bash", "-c", 'source "$1" >/dev/null && env -0', "_", str(ROOT / "scripts" / "env.sh")],
                         capture_output=True, check=True, cwd=ROOT)
    env = {}
    for item in out.stdout.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            env[k.decode()] = v.decode()
    env.pop("CLOUDFLARE_API_TOKEN", None)
    env["NO_COLOR"] = "1"
    env["FORCE_COLOR"] = "0"
    env["CI"] = "1"  # no interactive prompts
    return env


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON strings are valid TOML basic strings
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def toml_dumps(doc: dict) -> str:
    """A TOML document for what tomllib parsed out of wrangler.toml: scalars and arrays first, then
    tables (`[a.b]`) and arrays of tables (`[[a.b]]`), recursively."""
    out: list[str] = []

    def is_table_array(v) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def emit(table: dict, path: list[str]):
        for k, v in table.items():
            if not isinstance(v, dict) and not is_table_array(v):
                out.append(f"{_toml_key(k)} = {_toml_value(v)}")
        for k, v in table.items():
            if isinstance(v, dict):
                name = ".".join(_toml_key(p) for p in path + [k])
                scalars = any(not isinstance(x, dict) and not is_table_array(x) for x in v.values())
                if scalars or not v:
                    out.extend(["", f"[{name}]"])
                emit(v, path + [k])
            elif is_table_array(v):
                name = ".".join(_toml_key(p) for p in path + [k])
                for item in v:
                    out.extend(["", f"[[{name}]]"])
                    emit(item, path + [k])

    emit(doc, [])
    return "\n".join(out) + "\n"


class WorkerInstance:
    def __init__(self, name: str, vars: dict, aws: MockMessaging, okta: MockOkta | None,
                 persist: Path, env: dict, sensitive: Sensitive, env_file: Path, config: str = "wrangler.toml"):
        self.name = name
        self.vars = dict(vars)
        self.aws = aws
        self.okta = okta
        self.persist = persist
        self.sensitive = sensitive
        self.config = config
        self.restarts = 0
        self.dev = WranglerDev(persist=persist, env_file=env_file, vars=self.vars, config=config, capture=True, env=env,
                               name=name)
        self.http = requests.Session()

    @property
    def proc(self):
        return self.dev.proc

    @property
    def port(self) -> int:
        return self.dev.port

    @property
    def url(self) -> str:
        return self.dev.url

    def restart(self) -> float:
        """Stops this wrangler dev and starts a new one with the same vars, config and persistence
        directory (Durable Object storage and KV survive; isolate memory does not). The new process
        listens on a new port (`url` changes); the log keeps both runs. Returns the start time."""
        self.stop()
        self.restarts += 1
        self.dev.note(f"[e2e] ---- restart {self.restarts} (same persist dir) ----")
        self.dev.start()
        self.http = requests.Session()
        return self.wait_ready()

    def logs(self) -> str:
        return self.dev.text()

    def log_lines(self) -> list[str]:
        return self.dev.lines()

    def wait_ready(self):
        return self.dev.wait_ready(START_TIMEOUT_S, BUILD_TIMEOUT_S)

    def wait_for_log(self, needle: str, timeout: float = 3.0) -> list[str]:
        """Lines containing `needle`, waiting briefly for stdout to be flushed."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [l for l in self.log_lines() if needle in l]
            if lines or time.monotonic() > deadline:
                return lines
            time.sleep(0.05)

    # ---- requests --------------------------------------------------------------------------
    def auth_headers(self) -> dict:
        if self.vars.get("OKTA_AUTH_MODE") == "header":
            return {self.vars["OKTA_AUTH_HEADER"]: self.vars["OKTA_HOOK_SECRET"]}
        return {"Authorization": "Bearer " + self.okta.mint()}

    def post_telephony(self, body, headers: dict | None = None, *, auth: bool = True,
                       path: str = "/okta/telephony", timeout: float = 15,
                       session: requests.Session | None = None) -> requests.Response:
        """`session`: another requests.Session (one per thread when sending concurrently)."""
        h = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            h.update(self.auth_headers())
        h.update(headers or {})
        h = {k: v for k, v in h.items() if v is not None}
        data = body if isinstance(body, (bytes, bytearray)) else json.dumps(body).encode()
        self.sensitive.add_request(body, h)
        return (session or self.http).post(self.url + path, data=data, headers=h, timeout=timeout)

    def request(self, method: str, path: str, **kw) -> requests.Response:
        kw.setdefault("timeout", 15)
        return self.http.request(method, self.url + path, **kw)

    def stop(self):
        self.dev.stop()


class WorkerFactory:
    """`get(name, vars, aws=..., okta=...)`: one running instance per distinct vars."""

    def __init__(self, mocks: Mocks, sensitive: Sensitive, tmp: Path):
        self.mocks = mocks
        self.sensitive = sensitive
        self.tmp = tmp
        self.instances: dict[tuple, WorkerInstance] = {}
        self.failed: dict[tuple, str] = {}
        self._lock = threading.Lock()
        self._env = None
        self._seeded: Path | None = None
        self.log_checked = False

    def base_vars(self, okta: MockOkta, aws: MockMessaging) -> dict:
        return {
            "OKTA_AUTH_MODE": "oauth",
            "OKTA_ISSUER": okta.issuer,
            "OKTA_AUDIENCE": "api://okta-edge-hooks",
            "OKTA_ALLOWED_CLIENT_IDS": "0oaTESTCLIENT",
            "OKTA_REQUIRED_SCOPE": "okta.telephony.send",
            "OKTA_ALLOW_INSECURE_ISSUER": "true",
            "AWS_REGION": "us-east-1",
            "AWS_SMS_VOICE_ENDPOINT": aws.endpoint,
            "AWS_ACCESS_KEY_ID": AKID,
            "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "ORIGINATION_IDENTITIES": json.dumps(ORIGINATION_IDENTITIES, separators=(",", ":")),
            "SMS_CONFIGURATION_SET": "otp",
            # The toll-fraud guard's per-number limits (3 per 10 min by default) would refuse the
            # suite's many requests to the fixtures' numbers: off, unless a test's instance turns it
            # on. E2E_GUARD_MODE=<mode> sets it for every instance; E2E_GUARD_MODE= (empty) leaves the
            # Worker's default.
            **({"OTP_GUARD_MODE": GUARD_MODE} if GUARD_MODE else {}),
        }

    def _seed(self) -> Path:
        if self._seeded is None:
            seed = ROOT / "scripts" / "seed-kv"
            if not seed.exists():
                raise RuntimeError(f"{seed} does not exist yet (the lead's KV seeding script)")
            d = self.tmp / "seeded"
            d.mkdir()
            r = subprocess.run([str(seed), "--persist-to", str(d)], cwd=ROOT, env=self._env,
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"scripts/seed-kv failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
            self._seeded = d
        return self._seeded

    def _config(self, ledger: bool = True) -> str:
        """The config for `wrangler dev`: wrangler.toml, or a derived one. In snapshot mode it runs a
        copy of build/ and has no [build] section. `ledger=False` drops the Durable Object bindings
        and migrations (an instance without OTP_LEDGER); outside snapshot mode that derived config
        keeps [build] (its paths made absolute, since it lives in a temporary directory)."""
        if not SNAPSHOT and ledger:
            return "wrangler.toml"
        cache = self.__dict__.setdefault("_configs", {})
        if ledger in cache:
            return cache[ledger]
        cfg = tomllib.loads((ROOT / "wrangler.toml").read_text())
        main = ROOT / cfg["main"]
        derived = {k: v for k, v in cfg.items() if k not in ("env", "build", "main")}
        if SNAPSHOT:
            derived["main"] = str(self._snapshot(main) / main.name)
        else:
            derived["main"] = str(main)
            build = dict(cfg.get("build") or {})
            if build:
                build["cwd"] = str(ROOT / build.get("cwd", "."))
                wd = build.get("watch_dir")
                if isinstance(wd, str):
                    build["watch_dir"] = str(ROOT / wd)
                elif isinstance(wd, list):
                    build["watch_dir"] = [str(ROOT / d) for d in wd]
                derived["build"] = build
        if not ledger:
            derived.pop("durable_objects", None)
            derived.pop("migrations", None)
        path = self.tmp / f"wrangler.{'snapshot' if SNAPSHOT else 'derived'}{'' if ledger else '.no-ledger'}.toml"
        path.write_text(toml_dumps(derived))
        cache[ledger] = str(path)
        return cache[ledger]

    def _snapshot(self, main: Path) -> Path:
        """A copy of the finished build (once per session). Waits while a build is running."""
        snap = self.tmp / "snapshot"
        if snap.exists():
            return snap
        # Use the build as it is; do not race the developer's own builds. Wait while one is running.
        t0 = time.monotonic()
        while (main.parent / ".tmp").exists() or not main.exists():
            if time.monotonic() - t0 > BUILD_TIMEOUT_S:
                raise RuntimeError(f"no finished build in {main.parent} (a build seems to be in progress)")
            time.sleep(1)
        shutil.copytree(main.parent, snap, ignore=shutil.ignore_patterns(".tmp", "dry-run", "bench"))
        return snap

    def get(self, name: str, extra: dict | None = None, *, aws: MockMessaging | None = None,
            okta: MockOkta | None = None, ledger: bool = True) -> WorkerInstance:
        """`ledger=False`: the same build without the OTP_LEDGER Durable Object binding."""
        aws = aws or self.mocks.aws
        okta = okta or self.mocks.okta
        vars = self.base_vars(okta, aws)
        for k, v in (extra or {}).items():
            # None = unset. An empty --var shadows a [vars] entry of wrangler.toml, and the Worker
            # treats an empty setting as absent.
            vars[k] = "" if v is None else str(v)
        key = tuple(sorted(vars.items())) + ((("[no OTP_LEDGER]", ""),) if not ledger else ())
        with self._lock:
            if key in self.instances:
                return self.instances[key]
            if key in self.failed:
                pytest.fail(f"worker {name!r} failed to start earlier:\n{self.failed[key]}", pytrace=False)
            try:
                if not (ROOT / "wrangler.toml").exists():
                    raise RuntimeError(f"{ROOT / 'wrangler.toml'} does not exist yet")
                if self._env is None:
                    self._env = wrangler_env()
                persist = self.tmp / f"state-{len(self.instances) + len(self.failed)}-{name}"
                shutil.copytree(self._seed(), persist)
                env_file = self.tmp / "empty.env"
                env_file.touch()
                inst = WorkerInstance(name, vars, aws, okta, persist, self._env, self.sensitive, env_file,
                                      self._config(ledger))
                try:
                    took = inst.wait_ready()
                except Exception:
                    inst.stop()
                    self.instances[("failed", name, len(self.failed))] = inst  # keep its logs for the leak check
                    raise
                print(f"\n[e2e] worker {name!r} ready on {inst.url} in {took:.1f}s")
            except Exception as e:
                self.failed[key] = str(e)
                pytest.fail(f"worker {name!r} could not start: {e}", pytrace=False)
            self.instances[key] = inst
            return inst

    def __call__(self, extra: dict | None = None, **kw) -> WorkerInstance:
        """`worker_factory({"DEADLINE_MS": "1500"})`: an instance with the base vars plus these."""
        name = "custom-" + "-".join(sorted(k.lower() for k in (extra or {}))) if extra else "oauth"
        return self.get(name, extra, **kw)

    def restart(self, inst: WorkerInstance) -> WorkerInstance:
        """Stops `inst` and starts it again on the same persistence directory (see
        WorkerInstance.restart)."""
        with self._lock:
            took = inst.restart()
        print(f"\n[e2e] worker {inst.name!r} restarted on {inst.url} in {took:.1f}s")
        return inst

    def all(self) -> list[WorkerInstance]:
        return list(self.instances.values())

    def leaks(self) -> dict[str, list[tuple[str, str]]]:
        """Sensitive values found in each instance's logs (see test_zz_logs.py)."""
        self.log_checked = True
        for p in self.mocks.provisioning.values():
            p.note_tokens()
        out = {}
        for inst in self.all():
            found = self.sensitive.find_in(inst.logs())
            if found:
                out[inst.name] = found
        return out

    def close(self):
        dump = os.environ.get("E2E_DUMP_LOGS")  # a directory: keep each instance's wrangler output
        for i, inst in enumerate(self.instances.values()):
            inst.stop()
            if dump:
                Path(dump).mkdir(parents=True, exist_ok=True)
                (Path(dump) / f"{i}-{inst.name}.log").write_text(inst.logs())


@pytest.fixture(scope="session")
def worker_factory(mocks, sensitive):
    tmp = Path(tempfile.mkdtemp(prefix="oeh-e2e-"))
    f = WorkerFactory(mocks, sensitive, tmp)
    yield f
    f.close()
    if f.instances and not f.log_checked:  # test_zz_logs.py did not run (e.g. -k or a single file)
        leaks = f.leaks()
        if leaks:
            pytest.fail("sensitive values in the wrangler logs: " + "; ".join(
                f"{n}: " + ", ".join(kind for kind, _ in v) for n, v in leaks.items()), pytrace=False)
    if os.environ.get("E2E_KEEP_STATE") != "1":
        shutil.rmtree(tmp, ignore_errors=True)


# ---- suite timing ----------------------------------------------------------------------------
_SESSION_T0 = [0.0]


def pytest_sessionstart(session):
    _SESSION_T0[0] = time.monotonic()


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _SESSION_T0[0]:
        terminalreporter.write_line(f"[e2e] wall time {time.monotonic() - _SESSION_T0[0]:.1f}s")


# ---- the instances the tests use ----------------------------------------------------------------
@pytest.fixture(scope="session")
def oauth_worker(worker_factory):
    """Default instance: OAuth mode, default deadline and preview policy, no session token."""
    return worker_factory.get("oauth")


@pytest.fixture(scope="session")
def header_worker(worker_factory, mocks):
    """Header-secret mode, plus the optional settings: short deadline, simulated previews,
    protect configuration, price caps, a session token, no configuration set."""
    return worker_factory.get("header", {
        "OKTA_AUTH_MODE": "header",
        "OKTA_AUTH_HEADER": HOOK_HEADER,
        "OKTA_HOOK_SECRET": HOOK_SECRET,
        "DEADLINE_MS": "1500",
        "PREVIEW_POLICY": "simulate",
        "SMS_PROTECT_CONFIGURATION_ID": "protect-e2e0000000000000000000001",
        "SMS_MAX_PRICE": "0.05000",
        "VOICE_MAX_PRICE_PER_MINUTE": "0.10000",
        "AWS_SESSION_TOKEN": SESSION_TOKEN,
        "SMS_CONFIGURATION_SET": None,
    }, aws=mocks.aws_token)


@pytest.fixture
def w(oauth_worker):
    """The default instance, its messaging stand-in's records cleared."""
    oauth_worker.aws.reset()
    return oauth_worker


@pytest.fixture
def hw(header_worker):
    """The header-secret instance, its messaging stand-in's records cleared."""
    header_worker.aws.reset()
    return header_worker


@pytest.fixture(scope="session")
def events_worker(worker_factory):
    """The event hook configured (default auth header `Authorization`), with the fixtures' app and
    group as the Connect app and group."""
    return worker_factory.get("events", {
        "OKTA_EVENT_HOOK_SECRET": EVENT_HOOK_SECRET,
        "OKTA_CONNECT_APP_IDS": CONNECT_APP_ID,
        "OKTA_CONNECT_GROUP_IDS": CONNECT_GROUP_ID,
    })


@pytest.fixture(scope="session")
def rotation_worker(worker_factory, mocks):
    """OAuth mode against its own Okta mock, so that JWKS fetches can be counted exactly; a short
    refetch cooldown and the maximum clock leeway."""
    return worker_factory.get("rotation", {"OKTA_JWKS_REFETCH_COOLDOWN_SECONDS": "3", "OKTA_CLOCK_SKEW_SECONDS": "120"},
                              okta=mocks.okta_rotation)


@pytest.fixture(scope="session")
def provisioning(worker_factory, mocks):
    """The provisioning instance and its own Okta org and Connect mocks: `(worker, Provisioning)`."""
    p = mocks.prov("provisioning")
    return worker_factory.get("provisioning", p.vars()), p


@pytest.fixture(scope="session")
def reconciling(worker_factory, mocks):
    """A second provisioning instance (own org and Connect) for the reconciliation tests, whose
    full comparisons must not see the other tests' users. Its service-app key is a PKCS#8 PEM and
    the reconciliation is unpaced."""
    p = mocks.prov("reconcile")
    pem = MockOktaOrg.private_pem(p.private_jwk)
    mocks.sensitive.add(pem, "Okta API private key (PEM)")
    extra = p.vars(key=pem.replace("\n", "\\n"))  # as pasted into a one-line secret
    extra["RECONCILE_CONNECT_RPS"] = "100"
    return worker_factory.get("reconcile", extra), p
