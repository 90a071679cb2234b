"""Bundle size: build/index_bg.wasm (raw, gzip -9), build/index.js, and the production dry-run bundle
(`wrangler deploy --dry-run --env production --outdir DIR`): every file, the total, and wrangler's own
"Total Upload ... / gzip ..." line. Prints `BENCH ...` lines.

Usage (after `source scripts/env.sh` and `bash scripts/build`): .venv/bin/python bench/bundle_size.py
"""
from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DRY_RUN_TIMEOUT_S = 900  # wrangler runs the [build] command first (a no-op when the build is current)


def gzip9(data: bytes) -> int:
    """Bytes of `gzip -9` output (the gzip tool when present, else zlib level 9)."""
    if shutil.which("gzip"):
        return len(subprocess.run(["gzip", "-9", "-c", "-n"], input=data, capture_output=True, check=True).stdout)
    return len(gzip.compress(data, compresslevel=9, mtime=0))


def kib(n: int) -> str:
    return f"{n} B ({n / 1024:.1f} KiB)"


def main() -> int:
    wasm = ROOT / "build" / "index_bg.wasm"
    js = ROOT / "build" / "index.js"
    for f in (wasm, js):
        if not f.exists():
            print(f"{f.relative_to(ROOT)} is missing: run `bash scripts/build` first", file=sys.stderr)
            return 1
    w = wasm.read_bytes()
    print(f"BENCH size_wasm: build/index_bg.wasm raw={kib(len(w))} gzip-9={kib(gzip9(w))}")
    j = js.read_bytes()
    print(f"BENCH size_js: build/index.js raw={kib(len(j))} gzip-9={kib(gzip9(j))}")

    out = Path(tempfile.mkdtemp(prefix="oeh-dry-run-"))
    try:
        env = dict(os.environ, NO_COLOR="1", FORCE_COLOR="0", CI="1")
        env.pop("CLOUDFLARE_API_TOKEN", None)
        r = subprocess.run([str(ROOT / "node_modules" / ".bin" / "wrangler"), "deploy", "--dry-run", "--env",
                            "production", "--outdir", str(out)], cwd=ROOT, env=env, capture_output=True, text=True,
                           timeout=DRY_RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
        text = r.stdout + r.stderr
        if r.returncode != 0:
            print(f"wrangler deploy --dry-run failed ({r.returncode}):\n{text[-4000:]}", file=sys.stderr)
            return 1
        files = sorted(p for p in out.rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in files)
        uploaded = [p for p in files if p.suffix in (".js", ".mjs", ".wasm")]
        up_total = sum(p.stat().st_size for p in uploaded)
        up_gzip = sum(gzip9(p.read_bytes()) for p in uploaded)
        for p in files:
            print(f"BENCH size_dry_run_file: {p.relative_to(out)} {kib(p.stat().st_size)}")
        print(f"BENCH size_dry_run_total: all files={kib(total)}; modules (.js/.wasm, no source map)={kib(up_total)} "
              f"gzip-9 each, summed={kib(up_gzip)}")
        m = re.search(r"Total Upload:\s*([^\n]+)", text)
        print(f"BENCH size_wrangler_reported: Total Upload: {m.group(1).strip() if m else '(line not found)'}")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
