//! Benchmark (not a test: it asserts nothing about time): CPU per telephony request in wasm on V8.
//!
//! The core `telephony::handle`, compiled to wasm with the release profile, runs in Node's V8 with
//! in-memory fakes (`testing::MemKv` holding the kv-seed template set, an instant HTTP peer that
//! serves the JWKS and answers SendTextMessage, a `Date.now()` clock whose sleep is a no-op) and
//! WebCrypto as the RS256 verifier, like the Worker. It prints:
//!
//! - (a) warm: one access token for every request (verified-token cache hit), unique eventIds;
//! - (b) a fresh token on every request (signature verified each time), unique eventIds; and the
//!   same with a verifier that does no cryptography (what (b) costs besides RSA);
//! - (c) RS256 verify alone: WebCrypto vs jwt-compact's pure-Rust RSA, same token and key, with
//!   Node's synchronous native `crypto.verify` as a reference;
//! - the cost of one `await` of an already-resolved JS promise (the async hop WebCrypto adds).
//!
//! Wall time of a tight single-threaded loop approximates CPU time; `process.cpuUsage()` (whole
//! Node process, all threads) is printed next to it. Needs bench/tokens.txt (bench/gen_tokens.py).
//! Run with scripts/bench (which builds it in target/bench, see the note there), or:
//! `cargo test --release --target wasm32-unknown-unknown --no-default-features
//!  --features bench,pure-rust-rsa --test wasm_bench -- --nocapture`
#![cfg(all(target_arch = "wasm32", feature = "bench"))]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test};

use okta_edge_hooks::auth::rs256::{PureRust, Rs256, RsaJwk};
use okta_edge_hooks::edge::{Clock, FetchError, Http, HttpRequest, HttpResponse};
use okta_edge_hooks::telephony::config::Config;
use okta_edge_hooks::telephony::{handle, Edge, Isolate, Outcome};
use okta_edge_hooks::template::store::{set_key, Pointer, CURRENT_KEY};
use okta_edge_hooks::template::{LocaleTemplates, TemplateSet};
use okta_edge_hooks::testing::issuer;
use okta_edge_hooks::testing::MemKv;
use okta_edge_hooks::webcrypto::WebCrypto;

/// Distinct RS256 tokens signed with tests/fixtures/keys/rsa-a.json, one per line.
const TOKENS: &str = include_str!("../bench/tokens.txt");
const RESET: &str = include_str!("fixtures/okta/telephony-sms-password-reset.json");
const FIXTURE_EVENT_ID: &str = "Zp0cE3nR8tYw2xQa6vBd4g";

const WARMUP: usize = 500;
const ITERATIONS: usize = 2000;
const VERIFY_ITERATIONS: usize = 1000;
const IN_FLIGHT: usize = 64;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn perf_now() -> f64;
}

// Node's own crypto module: a synchronous native RS256 verify (OpenSSL), no thread pool, no
// promise. The closest Node gets to workerd, which runs crypto.subtle on the isolate's thread.
#[wasm_bindgen(module = "node:crypto")]
extern "C" {
    #[wasm_bindgen(js_name = createPublicKey)]
    fn node_create_public_key(options: &JsValue) -> JsValue;
    #[wasm_bindgen(js_name = verify)]
    fn node_verify(algorithm: &str, data: &[u8], key: &JsValue, signature: &[u8]) -> bool;
}

/// Process CPU time (user + system, µs) from Node's `process.cpuUsage()`, when there is one.
fn cpu_us() -> Option<f64> {
    let process = Reflect::get(&js_sys::global(), &"process".into()).ok().filter(|p| p.is_object())?;
    let f: Function = Reflect::get(&process, &"cpuUsage".into()).ok()?.dyn_into().ok()?;
    let usage = f.call0(&process).ok()?;
    let get = |k: &str| Reflect::get(&usage, &k.into()).ok().and_then(|v| v.as_f64());
    Some(get("user")? + get("system")?)
}

// ---- the edge, in memory -------------------------------------------------------------------------

/// `Date.now()`, and back-off that does not wait (nothing here ever fails).
struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> u64 {
        js_sys::Date::now() as u64
    }
    async fn sleep(&self, _ms: u64) {}
}

/// Answers at once: the JWKS (key A) and SendTextMessage/SendVoiceMessage with a fresh MessageId.
#[derive(Clone)]
struct InstantHttp {
    jwks: Rc<str>,
    sent: Rc<Cell<u64>>,
}

impl InstantHttp {
    fn new() -> Self {
        let jwks = serde_json::json!({ "keys": [issuer::public_jwk("a")] }).to_string();
        InstantHttp { jwks: jwks.into(), sent: Rc::new(Cell::new(0)) }
    }
}

fn json(body: String, extra: Option<(&str, &str)>) -> HttpResponse {
    let mut headers = vec![("content-type".to_string(), "application/json".to_string())];
    headers.extend(extra.map(|(k, v)| (k.to_string(), v.to_string())));
    HttpResponse { status: 200, headers, body: body.into_bytes() }
}

impl Http for InstantHttp {
    async fn send(&self, req: HttpRequest, _timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        if req.url == issuer::JWKS_URL {
            return Ok(json(self.jwks.to_string(), Some(("cache-control", "max-age=3600"))));
        }
        if req.header("x-amz-target").is_some() {
            let n = self.sent.get() + 1;
            self.sent.set(n);
            return Ok(json(format!(r#"{{"MessageId":"bench-{n:010}"}}"#), None));
        }
        Err(FetchError::Network(format!("unexpected request to {}", req.url)))
    }
}

macro_rules! seed_templates {
    ($($locale:literal),* $(,)?) => {
        [$(($locale, include_str!(concat!("../kv-seed/templates/", $locale, ".json")))),*]
    };
}

/// The kv-seed template set, published in a `TEMPLATES` KV the way `scripts/seed-kv` does.
fn templates_kv() -> MemKv {
    let files = seed_templates!(
        "arb", "cmn-CN", "cy-GB", "da-DK", "de-DE", "en-AU", "en-GB", "en-IN", "en-US", "es-ES", "es-MX", "es-US",
        "fr-CA", "fr-FR", "is-IS", "it-IT", "ja-JP", "ko-KR", "nb-NO", "nl-NL", "pl-PL", "pt-BR", "pt-PT", "ro-RO",
        "ru-RU", "sv-SE", "tr-TR",
    );
    let entries = files.iter().map(|(l, text)| {
        let t: LocaleTemplates = serde_json::from_str(text).expect("kv-seed template JSON");
        (l.to_string(), t)
    });
    let (set, rejected) = TemplateSet::build(entries);
    assert!(rejected.is_empty(), "kv-seed templates rejected: {}", rejected.len());
    let kv = MemKv::default();
    kv.insert(&set_key(set.version()), &set.to_json());
    kv.insert(CURRENT_KEY, &serde_json::to_string(&Pointer::for_set(&set, 0)).unwrap());
    kv
}

fn config() -> Config {
    let settings: BTreeMap<String, String> = [
        ("OKTA_ISSUER", issuer::ISSUER),
        ("OKTA_AUDIENCE", issuer::AUDIENCE),
        ("OKTA_ALLOWED_CLIENT_IDS", issuer::CLIENT),
        ("OKTA_REQUIRED_SCOPE", issuer::SCOPE),
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
        ("ORIGINATION_IDENTITIES", r#"{"US":"pool-us","default":"pool-any"}"#),
        ("SMS_CONFIGURATION_SET", "okta-otp"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Config::from_source(&settings).expect("bench config")
}

/// Accepts every signature without any cryptography: mode (b) minus RSA, to split its cost.
#[derive(Clone, Copy)]
struct NoRsa;

impl Rs256 for NoRsa {
    type Key = ();
    async fn import(&self, _jwk: &RsaJwk) -> Result<(), String> {
        Ok(())
    }
    async fn verify(&self, _key: &(), _signing_input: &[u8], _signature: &[u8]) -> bool {
        true
    }
}

struct World<V: Rs256> {
    iso: Isolate<V::Key>,
    rs256: V,
    http: InstantHttp,
    templates: MemKv,
    state: MemKv,
}

impl<V: Rs256 + Clone + 'static> World<V> {
    fn new(rs256: V) -> Self {
        World {
            iso: Isolate::new(config()),
            rs256,
            http: InstantHttp::new(),
            templates: templates_kv(),
            state: MemKv::default(),
        }
    }

    async fn call(&self, authorization: &str, body: Vec<u8>) -> Outcome {
        let edge = Edge {
            http: &self.http,
            templates_kv: &self.templates,
            state_kv: &self.state,
            clock: &JsClock,
            rs256: &self.rs256,
        };
        let header = |name: &str| name.eq_ignore_ascii_case("authorization").then(|| authorization.to_string());
        handle(&self.iso, &edge, header, || async move { Ok(body) }, JsClock.now_ms()).await
    }
}

fn successful(o: &Outcome) -> bool {
    o.answer.status == 200 && o.answer.body.contains("\"SUCCESSFUL\"")
}

/// Request bodies with unique eventIds, built before timing.
fn bodies(tag: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| RESET.replace(FIXTURE_EVENT_ID, &format!("bench-{tag}-{i:08}")).into_bytes()).collect()
}

// ---- statistics ----------------------------------------------------------------------------------

struct Timing {
    per_iter_ms: Vec<f64>,
    total_ms: f64,
    cpu_us: Option<f64>,
}

impl Timing {
    fn mean(&self) -> f64 {
        self.total_ms / self.per_iter_ms.len() as f64
    }

    fn p50(&self) -> f64 {
        let mut v = self.per_iter_ms.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    }

    fn line(&self, name: &str, unit: &str) -> String {
        let n = self.per_iter_ms.len();
        let mut v = self.per_iter_ms.clone();
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let q = |p: f64| v[((n as f64 - 1.0) * p).round() as usize] * 1000.0;
        let mean = self.total_ms * 1000.0 / n as f64;
        let cpu = match self.cpu_us {
            Some(c) => format!(" process_cpu={:.1}µs/{unit}", c / n as f64),
            None => String::new(),
        };
        format!(
            "BENCH {name}: mean={mean:.1}µs/{unit} p50={:.1}µs p90={:.1}µs p99={:.1}µs max={:.1}µs n={n} \
             total={:.1}ms{cpu}",
            q(0.5),
            q(0.9),
            q(0.99),
            q(1.0),
            self.total_ms
        )
    }
}

/// Times `n` awaits of `f(i)`; each iteration is timed on its own too (performance.now()).
async fn time<F, Fut>(n: usize, mut f: F) -> Timing
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut per_iter_ms = Vec::with_capacity(n);
    let cpu0 = cpu_us();
    let start = perf_now();
    for i in 0..n {
        let t0 = perf_now();
        f(i).await;
        per_iter_ms.push(perf_now() - t0);
    }
    let total_ms = perf_now() - start;
    let cpu_us = cpu_us().zip(cpu0).map(|(b, a)| b - a);
    Timing { per_iter_ms, total_ms, cpu_us }
}

fn jwk_a() -> RsaJwk {
    let v = issuer::key_json("a");
    let s = |k: &str| v[k].as_str().unwrap().to_string();
    RsaJwk {
        kid: s("kid"),
        n: URL_SAFE_NO_PAD.decode(s("n")).unwrap(),
        e: URL_SAFE_NO_PAD.decode(s("e")).unwrap(),
        n_b64: s("n"),
        e_b64: s("e"),
    }
}

// ---- the benchmark -------------------------------------------------------------------------------

#[wasm_bindgen_test]
async fn bench_telephony_cpu_per_request() {
    let tokens: Vec<&str> = TOKENS.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    assert!(tokens.len() >= 300, "bench/tokens.txt has {} tokens: run bench/gen_tokens.py", tokens.len());
    console_log!(
        "BENCH setup: wasm (cargo test --release: opt-level=z, lto; no wasm-opt) in Node {} V8 {}; \
         {} tokens; warm-up {WARMUP}, {ITERATIONS} timed requests per mode",
        node_version("node"),
        node_version("v8"),
        tokens.len()
    );

    // A resolved promise, awaited: the floor of any async JS call (one microtask hop).
    let _ = time(WARMUP, |_| async {
        JsFuture::from(Promise::resolve(&JsValue::NULL)).await.unwrap();
    })
    .await;
    let hop = time(ITERATIONS * 5, |_| async {
        JsFuture::from(Promise::resolve(&JsValue::NULL)).await.unwrap();
    })
    .await;
    console_log!("{}", hop.line("await_resolved_promise", "await"));

    // (a) warm: one token, cached after the first request; unique eventIds.
    let world = World::new(WebCrypto);
    let auth = format!("Bearer {}", tokens[0]);
    let first = world.call(&auth, RESET.as_bytes().to_vec()).await;
    assert!(successful(&first), "the bench world does not answer SUCCESSFUL: {} {}", first.answer.status, first.log);
    let cached = world.iso.tokens.len();
    let mut warm_bodies = bodies("warm", WARMUP + ITERATIONS).into_iter();
    for _ in 0..WARMUP {
        let o = world.call(&auth, warm_bodies.next().unwrap()).await;
        assert!(successful(&o), "{}", o.log);
    }
    let failed = Cell::new(0usize);
    let warm = time(ITERATIONS, |_| {
        let body = warm_bodies.next().unwrap();
        let (w, a, failed) = (&world, &auth, &failed);
        async move {
            if !successful(&w.call(a, body).await) {
                failed.set(failed.get() + 1);
            }
        }
    })
    .await;
    assert_eq!(world.iso.tokens.len(), cached, "the warm token was not served from the cache");
    console_log!("{} not_successful={}", warm.line("a_warm_cached_token", "request"), failed.get());
    console_log!("BENCH a_warm_cached_token: last log line: {}", world_log(&world, &auth).await);

    // (b) a fresh token every request: 2000 requests cycling through the tokens. The verified-token
    // cache holds 256 entries, so with >= 300 distinct tokens in rotation every request misses it
    // (checked: the cache grows by one, or restarts at one, on each request).
    let fresh = fresh_tokens(World::new(WebCrypto), &tokens, "fresh").await;
    console_log!("{}", fresh.replacen("BENCH :", "BENCH b_fresh_token:", 1));
    // The same with a verifier that does no cryptography: what (b) costs besides RSA.
    let no_rsa = fresh_tokens(World::new(NoRsa), &tokens, "norsa").await;
    console_log!("{}", no_rsa.replacen("BENCH :", "BENCH b_fresh_token_without_rsa:", 1));

    // (c) RS256 verify alone, same token and key: WebCrypto vs jwt-compact pure-Rust RSA.
    let (input, sig) = {
        let (input, sig) = tokens[0].rsplit_once('.').unwrap();
        (input.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(sig).unwrap())
    };
    let jwk = jwk_a();
    let wc_key = WebCrypto.import(&jwk).await.expect("WebCrypto import");
    let pr_key = PureRust.import(&jwk).await.expect("pure-Rust import");
    assert!(WebCrypto.verify(&wc_key, &input, &sig).await && PureRust.verify(&pr_key, &input, &sig).await);

    for _ in 0..WARMUP {
        assert!(WebCrypto.verify(&wc_key, &input, &sig).await);
    }
    let wc = time(VERIFY_ITERATIONS, |_| async {
        assert!(WebCrypto.verify(&wc_key, &input, &sig).await);
    })
    .await;
    console_log!("{}", wc.line("c_verify_webcrypto_sequential", "verify"));

    // WebCrypto with many verifies in flight: separates the per-call round trip from the crypto.
    let start = perf_now();
    let cpu0 = cpu_us();
    let rounds = VERIFY_ITERATIONS / IN_FLIGHT;
    for _ in 0..rounds {
        let all = (0..IN_FLIGHT).map(|_| WebCrypto.verify(&wc_key, &input, &sig));
        assert!(futures_util::future::join_all(all).await.into_iter().all(|ok| ok));
    }
    let total = perf_now() - start;
    let n = rounds * IN_FLIGHT;
    let cpu = cpu_us().zip(cpu0).map(|(b, a)| format!(" process_cpu={:.1}µs/verify", (b - a) / n as f64));
    console_log!(
        "BENCH c_verify_webcrypto_{IN_FLIGHT}_in_flight: mean={:.1}µs/verify n={n} total={total:.1}ms{}",
        total * 1000.0 / n as f64,
        cpu.unwrap_or_default()
    );

    // Reference: the same verify, native and synchronous (node:crypto.verify).
    let node_key = {
        let jwk_obj = js_sys::JSON::parse(&issuer::public_jwk("a").to_string()).unwrap();
        let opts = js_sys::Object::new();
        Reflect::set(&opts, &"key".into(), &jwk_obj).unwrap();
        Reflect::set(&opts, &"format".into(), &"jwk".into()).unwrap();
        node_create_public_key(&opts)
    };
    for _ in 0..WARMUP {
        assert!(node_verify("sha256", &input, &node_key, &sig));
    }
    let native = time(VERIFY_ITERATIONS, |_| {
        let ok = node_verify("sha256", &input, &node_key, &sig);
        async move { assert!(ok) }
    })
    .await;
    console_log!("{}", native.line("c_verify_node_crypto_sync_reference", "verify"));

    for _ in 0..WARMUP / 4 {
        assert!(PureRust.verify(&pr_key, &input, &sig).await);
    }
    let pr = time(VERIFY_ITERATIONS, |_| async {
        assert!(PureRust.verify(&pr_key, &input, &sig).await);
    })
    .await;
    console_log!("{}", pr.line("c_verify_pure_rust_wasm", "verify"));
    console_log!(
        "BENCH c_ratio: pure-Rust wasm vs WebCrypto sequential: {:.1}x (mean) {:.1}x (p50); \
         vs native synchronous: {:.1}x (mean) {:.1}x (p50)",
        pr.mean() / wc.mean(),
        pr.p50() / wc.p50(),
        pr.mean() / native.mean(),
        pr.p50() / native.p50()
    );
}

/// Mode (b) on `world`: the figures line (named "BENCH :").
async fn fresh_tokens<V: Rs256 + Clone + 'static>(world: World<V>, tokens: &[&str], tag: &str) -> String {
    let first = world.call(&format!("Bearer {}", tokens[tokens.len() - 1]), RESET.as_bytes().to_vec()).await;
    assert!(successful(&first), "{}", first.log); // JWKS fetched and key imported before timing
    let auths: Vec<String> = tokens.iter().map(|t| format!("Bearer {t}")).collect();
    let mut fresh_bodies = bodies(tag, WARMUP + ITERATIONS).into_iter();
    for i in 0..WARMUP {
        let o = world.call(&auths[i % auths.len()], fresh_bodies.next().unwrap()).await;
        assert!(successful(&o), "{}", o.log);
    }
    let (failed, cache_hits) = (Cell::new(0usize), Cell::new(0usize));
    let timing = time(ITERATIONS, |i| {
        let body = fresh_bodies.next().unwrap();
        let a = &auths[(WARMUP + i) % auths.len()];
        let (w, failed, hits) = (&world, &failed, &cache_hits);
        async move {
            let before = w.iso.tokens.len();
            if !successful(&w.call(a, body).await) {
                failed.set(failed.get() + 1);
            }
            let after = w.iso.tokens.len();
            if after != before + 1 && after != 1 {
                hits.set(hits.get() + 1);
            }
        }
    })
    .await;
    format!("{} not_successful={} token_cache_hits={}", timing.line("", "request"), failed.get(), cache_hits.get())
}

/// The core's log line for one more warm request (shows what a request did).
async fn world_log<V: Rs256 + Clone + 'static>(world: &World<V>, auth: &str) -> String {
    world.call(auth, bodies("log", 1).remove(0)).await.log
}

fn node_version(which: &str) -> String {
    let get = |o: &JsValue, k: &str| Reflect::get(o, &k.into()).ok().filter(|v| !v.is_undefined());
    get(&js_sys::global(), "process")
        .and_then(|p| get(&p, "versions"))
        .and_then(|v| get(&v, which))
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "?".into())
}
