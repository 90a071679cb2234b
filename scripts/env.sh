# Sourced by every script: where the pinned tools live and the offline switches for wrangler.
# shellcheck shell=bash
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export ROOT
export OEH_TOOLS="${OEH_TOOLS:-$HOME/.cache/okta-edge-hooks/tools}"
export PATH="$OEH_TOOLS/bin:$ROOT/node_modules/.bin:$ROOT/.venv/bin:$HOME/.cargo/bin:$PATH"
export WASM_BINDGEN_BIN="$OEH_TOOLS/bin/wasm-bindgen"
export WASM_OPT_BIN="$ROOT/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$ROOT/node_modules/@esbuild/linux-x64/bin/esbuild"
export WRANGLER_SEND_METRICS=false
export WRANGLER_SEND_ERROR_REPORTS=false
export CLOUDFLARE_CF_FETCH_ENABLED=false
export DO_NOT_TRACK=1
# Pinned versions. WASM_BINDGEN_VERSION must equal the wasm-bindgen version in Cargo.lock.
export WASM_BINDGEN_VERSION="0.2.130"
export WORKER_BUILD_VERSION="0.8.7"
