//! In-memory implementations of the edge traits for native tests: a KV that counts reads and
//! can be told to fail, a scripted HTTP peer, a settable clock, and a tiny executor.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;

use crate::edge::{Clock, FetchError, Http, HttpRequest, HttpResponse, Kv, KvError};

pub fn block_on<F: Future>(f: F) -> F::Output {
    futures_executor::block_on(f)
}

#[derive(Default)]
pub struct MemKv {
    map: RefCell<BTreeMap<String, (String, Option<u64>)>>,
    reads: Cell<usize>,
    writes: Cell<usize>,
    fail: Cell<bool>,
}

impl MemKv {
    pub fn insert(&self, key: &str, value: &str) {
        self.map.borrow_mut().insert(key.into(), (value.into(), None));
    }
    pub fn value(&self, key: &str) -> Option<String> {
        self.map.borrow().get(key).map(|(v, _)| v.clone())
    }
    pub fn ttl(&self, key: &str) -> Option<u64> {
        self.map.borrow().get(key).and_then(|(_, t)| *t)
    }
    pub fn reads(&self) -> usize {
        self.reads.get()
    }
    pub fn writes(&self) -> usize {
        self.writes.get()
    }
    pub fn fail_all(&self, fail: bool) {
        self.fail.set(fail);
    }
    fn check(&self) -> Result<(), KvError> {
        if self.fail.get() {
            Err(KvError("injected failure".into()))
        } else {
            Ok(())
        }
    }
}

impl Kv for MemKv {
    async fn get(&self, key: &str, _cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        self.check()?;
        self.reads.set(self.reads.get() + 1);
        Ok(self.value(key))
    }
    async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), KvError> {
        self.check()?;
        self.writes.set(self.writes.get() + 1);
        self.map.borrow_mut().insert(key.into(), (value.into(), ttl_s));
        Ok(())
    }
    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.check()?;
        self.writes.set(self.writes.get() + 1);
        self.map.borrow_mut().remove(key);
        Ok(())
    }
}

/// A clock the test moves by hand.
pub struct FakeClock(pub Cell<u64>);

impl FakeClock {
    pub fn at(ms: u64) -> Self {
        FakeClock(Cell::new(ms))
    }
    pub fn advance(&self, ms: u64) {
        self.0.set(self.0.get() + ms);
    }
}

impl Clock for FakeClock {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
    /// Advances the clock, then yields once, so that concurrent futures of one test interleave
    /// as requests of one isolate do.
    async fn sleep(&self, ms: u64) {
        self.advance(ms);
        yield_now().await;
    }
}

impl Clock for std::rc::Rc<FakeClock> {
    fn now_ms(&self) -> u64 {
        self.0.get()
    }
    async fn sleep(&self, ms: u64) {
        (**self).sleep(ms).await;
    }
}

/// Durable Objects in memory: one [`crate::ledger::MemStore`] per object name, served by the
/// real [`crate::ledger::serve`] through its JSON protocol. `fail` makes every call unavailable.
pub struct MemDurable {
    pub clock: std::rc::Rc<FakeClock>,
    pub objects: RefCell<BTreeMap<String, std::rc::Rc<crate::ledger::MemStore>>>,
    pub calls: Cell<usize>,
    pub fail: Cell<bool>,
    /// Objects whose name starts with one of these are unavailable.
    pub fail_objects: RefCell<Vec<&'static str>>,
}

impl MemDurable {
    pub fn new(clock: std::rc::Rc<FakeClock>) -> Self {
        MemDurable {
            clock,
            objects: RefCell::default(),
            calls: Cell::new(0),
            fail: Cell::new(false),
            fail_objects: RefCell::default(),
        }
    }
}

impl crate::edge::Durable for MemDurable {
    async fn call(&self, object: &str, body: String, _timeout_ms: u64) -> Result<String, crate::edge::DurableError> {
        self.calls.set(self.calls.get() + 1);
        if self.fail.get() || self.fail_objects.borrow().iter().any(|p| object.starts_with(p)) {
            return Err(crate::edge::DurableError::Unavailable("failing".into()));
        }
        let store = self.objects.borrow_mut().entry(object.to_string()).or_default().clone();
        Ok(crate::ledger::serve(&*store, &self.clock, &body).await)
    }
}

/// Pending once, then ready: a point where other futures of the same executor run.
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

/// An [`Http`] that yields once before answering, like a real network round trip.
pub struct Yielding<T>(pub T);

impl<T: Http> Http for Yielding<T> {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        yield_now().await;
        self.0.send(req, timeout_ms).await
    }
}

impl<T: Http> Http for std::rc::Rc<T> {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        (**self).send(req, timeout_ms).await
    }
}

type Responder = Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, FetchError>>;

/// An HTTP peer answering from a script (FIFO), then from a fallback; records every request.
#[derive(Default)]
pub struct ScriptedHttp {
    pub script: RefCell<VecDeque<Result<HttpResponse, FetchError>>>,
    pub fallback: RefCell<Option<Responder>>,
    pub requests: RefCell<Vec<(HttpRequest, u64)>>,
}

impl ScriptedHttp {
    pub fn push(&self, r: Result<HttpResponse, FetchError>) {
        self.script.borrow_mut().push_back(r);
    }
    pub fn answer_with(&self, f: impl Fn(&HttpRequest) -> Result<HttpResponse, FetchError> + 'static) {
        *self.fallback.borrow_mut() = Some(Box::new(f));
    }
    pub fn count(&self) -> usize {
        self.requests.borrow().len()
    }
}

pub fn json_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

impl Http for ScriptedHttp {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        self.requests.borrow_mut().push((req.clone(), timeout_ms));
        if let Some(r) = self.script.borrow_mut().pop_front() {
            return r;
        }
        match self.fallback.borrow().as_ref() {
            Some(f) => f(&req),
            None => Err(FetchError::Network("no scripted answer".into())),
        }
    }
}

/// A test authorization server: two RSA keys (A published, B held back for rotation), a JWKS
/// endpoint served through [`ScriptedHttp`], and token minting.
pub mod issuer {
    use std::cell::RefCell;
    use std::rc::Rc;

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jwt_compact::alg::{Rsa, RsaPrivateKey};
    use jwt_compact::jwk::JsonWebKey;
    use jwt_compact::{Algorithm, AlgorithmExt, Claims, Header};
    use serde_json::{json, Value};

    use super::{json_response, ScriptedHttp};
    use crate::telephony::config::OAuthConfig;

    pub const ISSUER: &str = "https://example.okta.com/oauth2/aus1";
    pub const JWKS_URL: &str = "https://example.okta.com/oauth2/aus1/v1/keys";
    pub const AUDIENCE: &str = "api://okta-edge-hooks";
    pub const CLIENT: &str = "0oaTESTCLIENT";
    pub const SCOPE: &str = "okta.telephony.send";

    pub fn key_json(name: &str) -> Value {
        let text = match name {
            "a" => include_str!("../tests/fixtures/keys/rsa-a.json"),
            _ => include_str!("../tests/fixtures/keys/rsa-b.json"),
        };
        serde_json::from_str(text).unwrap()
    }

    pub fn private_key(name: &str) -> RsaPrivateKey {
        let v = key_json(name);
        let jwk: JsonWebKey<'_> = serde_json::from_value(v).unwrap();
        RsaPrivateKey::try_from(&jwk).unwrap()
    }

    pub fn public_jwk(name: &str) -> Value {
        let v = key_json(name);
        json!({"kty":"RSA","use":"sig","alg":"RS256","kid":v["kid"],"n":v["n"],"e":v["e"]})
    }

    pub fn oauth_config() -> OAuthConfig {
        OAuthConfig {
            issuer: ISSUER.into(),
            jwks_url: JWKS_URL.into(),
            audience: AUDIENCE.into(),
            allowed_client_ids: vec![CLIENT.into()],
            required_scope: SCOPE.into(),
            leeway_s: 60,
            refetch_cooldown_s: 60,
            max_stale_s: 1800,
        }
    }

    /// Serves the JWKS from `published` (kid names "a"/"b"), counting fetches.
    pub struct Jwks {
        pub published: Rc<RefCell<Vec<&'static str>>>,
        pub fetches: Rc<RefCell<u32>>,
    }

    pub fn serve(
        http: &ScriptedHttp,
        other: impl Fn(&crate::edge::HttpRequest) -> Option<crate::edge::HttpResponse> + 'static,
    ) -> Jwks {
        let published = Rc::new(RefCell::new(vec!["a"]));
        let fetches = Rc::new(RefCell::new(0));
        let (p, f) = (published.clone(), fetches.clone());
        http.answer_with(move |req| {
            if req.url == JWKS_URL {
                *f.borrow_mut() += 1;
                let keys: Vec<Value> = p.borrow().iter().map(|n| public_jwk(n)).collect();
                let mut r = json_response(200, &json!({ "keys": keys }).to_string());
                r.headers.push(("cache-control".into(), "max-age=3600".into()));
                return Ok(r);
            }
            other(req).ok_or(crate::edge::FetchError::Network("unexpected request".into()))
        });
        Jwks { published, fetches }
    }

    pub fn claims(now_s: i64) -> Value {
        json!({"ver":1,"jti":"AT.test","iss":ISSUER,"aud":AUDIENCE,"iat":now_s,"exp":now_s+3600,"cid":CLIENT,"scp":[SCOPE],"sub":CLIENT})
    }

    /// An RS256 token signed with key `name`, with `claims` as given.
    pub fn mint(name: &str, claims: &Value) -> String {
        mint_with(Rsa::rs256(), name, claims)
    }

    pub fn mint_with(alg: Rsa, name: &str, claims: &Value) -> String {
        let kid = key_json(name)["kid"].as_str().unwrap().to_string();
        let header = Header::empty().with_key_id(kid);
        let claims = Claims::new(claims.clone());
        alg.token(&header, &claims, &private_key(name)).unwrap()
    }

    /// A token assembled from raw header and claims JSON and a signature over them.
    pub fn raw(header: &Value, claims: &Value, sign: impl Fn(&[u8]) -> Vec<u8>) -> String {
        let h = URL_SAFE_NO_PAD.encode(header.to_string());
        let c = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{h}.{c}");
        let sig = URL_SAFE_NO_PAD.encode(sign(input.as_bytes()));
        format!("{input}.{sig}")
    }

    pub fn rs256_sign(name: &str) -> impl Fn(&[u8]) -> Vec<u8> {
        let key = private_key(name);
        move |msg| {
            let sig = Rsa::rs256().sign(&key, msg);
            jwt_compact::AlgorithmSignature::as_bytes(&sig).to_vec()
        }
    }
}
