//! The small traits through which the pure core reaches the outside world: outgoing HTTP, the
//! key-value store, the clock, queues and Durable Objects. The Worker shell (`shell`, wasm only)
//! implements them with `fetch`, Workers KV, `Date.now()`, Queues and Durable Object stubs; native
//! tests implement them with in-memory fakes.
//!
//! Deliberately absent: anything that knows about `worker`, `wasm-bindgen` or JavaScript.
#![allow(async_fn_in_trait)] // single-threaded isolate: no `Send` bounds wanted

use std::fmt;

/// An outgoing HTTP request, fully formed (and, for AWS, already signed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpRequest {
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: "GET", url: url.into(), headers: Vec::new(), body: Vec::new() }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

/// A response as received; the body is bounded by the sender (see [`Http::send`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// Why an HTTP exchange produced no response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchError {
    /// The timeout passed before a response arrived. The peer may have acted on the request.
    Timeout,
    /// The connection failed before any response (refused, reset, DNS, TLS).
    Network(String),
    /// The response body was larger than the caller's bound.
    BodyTooLarge,
    /// Refused before it left: the invocation's subrequest budget is spent
    /// ([`crate::budget`]). A retry in this invocation would be refused too.
    BudgetSpent,
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("no response before the timeout"),
            FetchError::Network(e) => write!(f, "network error: {e}"),
            FetchError::BodyTooLarge => f.write_str("response body too large"),
            FetchError::BudgetSpent => f.write_str(crate::budget::SPENT),
        }
    }
}

/// Outgoing HTTP. Implementations must not follow redirects and must cap the response body.
pub trait Http {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError>;
}

/// A failure of the key-value store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key-value store: {}", self.0)
    }
}

/// A key-value store with Workers KV semantics: eventually consistent, per-key TTLs.
pub trait Kv {
    /// `cache_ttl_s`: how long the edge may serve this read from cache (KV minimum is 60 s).
    async fn get(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError>;
    /// `ttl_s`: expire the key after this many seconds (KV minimum is 60 s).
    async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), KvError>;
    async fn delete(&self, key: &str) -> Result<(), KvError>;
}

/// One key of a [`KvList::list`] page, with its metadata (JSON text) when it was stored with some.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KvKey {
    pub name: String,
    pub metadata: Option<String>,
}

/// A page of keys in key order; `cursor` is `None` on the last page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvPage {
    pub keys: Vec<KvKey>,
    pub cursor: Option<String>,
}

/// Listing by prefix and per-key metadata (Workers KV `list` and `put(…, {metadata})`): listing is
/// eventually consistent too, and metadata (at most 1024 bytes) comes back with the listing, so a
/// summary can be read without a `get` per key.
pub trait KvList: Kv {
    async fn put_with_metadata(
        &self,
        key: &str,
        value: &str,
        ttl_s: Option<u64>,
        metadata: &str,
    ) -> Result<(), KvError>;
    /// At most 1000 keys starting with `prefix`, after `cursor`.
    async fn list(&self, prefix: &str, cursor: Option<&str>) -> Result<KvPage, KvError>;
}

/// Wall-clock time in milliseconds since the Unix epoch. In wasm this is `Date.now()`:
/// `SystemTime::now()` panics there.
pub trait Clock {
    fn now_ms(&self) -> u64;
    /// Waits (used for retry back-off).
    async fn sleep(&self, ms: u64);
}

/// A failure to enqueue: nothing of the batch may be assumed delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueError(pub String);

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "queue: {}", self.0)
    }
}

/// A message queue producer (Cloudflare Queues): each message is a JSON text.
pub trait Queue {
    async fn send_batch(&self, messages: &[String]) -> Result<(), QueueError>;
}

/// Cloudflare Queues take at most 100 messages per `sendBatch`...
pub const QUEUE_BATCH: usize = 100;
/// ... and at most 256 KB per `sendBatch`; this leaves room for the queue's own framing.
pub const QUEUE_BATCH_BYTES: usize = 200 * 1024;

/// `texts` cut into `sendBatch` calls of at most [`QUEUE_BATCH`] messages and [`QUEUE_BATCH_BYTES`]
/// (a single larger text goes alone).
pub fn queue_batches(texts: &[String]) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, t) in texts.iter().enumerate() {
        if i > start && (i - start == QUEUE_BATCH || bytes + t.len() > QUEUE_BATCH_BYTES) {
            out.push(&texts[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += t.len();
    }
    if start < texts.len() {
        out.push(&texts[start..]);
    }
    out
}

/// Why a Durable Object call produced no reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DurableError {
    /// No reply within the caller's slice of time. The object may still act on the request.
    Timeout,
    /// The binding is missing, the object failed, or its reply was not what was asked for.
    Unavailable(String),
    /// Refused before it left: the invocation's subrequest budget is spent.
    BudgetSpent,
}

impl fmt::Display for DurableError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DurableError::Timeout => f.write_str("no reply before the timeout"),
            DurableError::Unavailable(e) => write!(f, "unavailable: {e}"),
            DurableError::BudgetSpent => f.write_str(crate::budget::SPENT),
        }
    }
}

/// Strongly consistent objects addressed by name (one Durable Object namespace): a JSON request
/// in, a JSON reply out.
pub trait Durable {
    async fn call(&self, object: &str, body: String, timeout_ms: u64) -> Result<String, DurableError>;
}
