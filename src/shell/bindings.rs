//! The `edge` traits over the Workers runtime: `fetch` (no redirects; one timeout, through
//! `AbortController`, over the headers and the body; a body bound counted while streaming),
//! Workers KV, Cloudflare Queues, Durable Object stubs, and the JavaScript clock.

use std::time::Duration;

use futures_util::future::{select, Either};
use futures_util::StreamExt;
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use worker::{
    AbortController, ByteStream, Date, Delay, Fetch, Headers, KvStore, Method, ObjectNamespace, QueueContentType,
    RawMessageBuilder, Request, RequestInit, RequestRedirect, Response, ResponseBody,
};

use crate::edge::{
    Clock, Durable, DurableError, FetchError, Http, HttpRequest, HttpResponse, Kv, KvError, Queue, QueueError,
};

/// A body past its bound, or one that broke off.
pub enum ReadError {
    TooLarge,
    Broken(String),
}

/// Reads a body stream, counting bytes as they arrive: past `max` it stops at once, without
/// buffering (or waiting for) the rest. `None` is an absent body.
pub async fn read_capped(stream: Option<ByteStream>, max: usize) -> Result<Vec<u8>, ReadError> {
    let Some(mut stream) = stream else { return Ok(Vec::new()) };
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ReadError::Broken(e.to_string()))?;
        if out.len() + chunk.len() > max {
            return Err(ReadError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Whether a body can be read whole (`arrayBuffer()`, one call) rather than streamed: its length is
/// declared, within the bound, and no content coding can make it larger once decoded. Reading the
/// stream chunk by chunk (reader, read, releaseLock through wasm-bindgen) cost about a fifth of a
/// warm telephony request's CPU in the bare-workerd profile (bench/README.md).
fn read_whole(headers: &Headers, max: usize) -> Result<bool, ReadError> {
    let declared = headers.get("content-length").ok().flatten().and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(ReadError::TooLarge);
    }
    let coded = headers.get("content-encoding").ok().flatten().is_some_and(|e| !e.eq_ignore_ascii_case("identity"));
    Ok(declared.is_some() && !coded)
}

/// A response body read whole by the runtime: one `arrayBuffer()` on a native `Response` over
/// the body's stream. (worker's `Response::bytes` and `text` read the stream chunk by chunk
/// through wasm-bindgen — reader, read, releaseLock — which cost about a tenth of a warm
/// telephony request's CPU in the bare-workerd profile, bench/README.md.)
async fn read_native(resp: &Response) -> worker::Result<Vec<u8>> {
    let stream = match resp.body() {
        ResponseBody::Stream(stream) => stream,
        ResponseBody::Body(bytes) => return Ok(bytes.clone()),
        ResponseBody::Empty => return Ok(Vec::new()),
    };
    let native = web_sys::Response::new_with_opt_readable_stream(Some(stream))?;
    let buffer = JsFuture::from(native.array_buffer()?).await?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

/// A whole body, checked against its bound once more.
fn bounded(body: worker::Result<Vec<u8>>, max: usize) -> Result<Vec<u8>, ReadError> {
    match body {
        Ok(b) if b.len() > max => Err(ReadError::TooLarge),
        Ok(b) => Ok(b),
        Err(e) => Err(ReadError::Broken(e.to_string())),
    }
}

/// An incoming request's body, at most `max` bytes (a larger `Content-Length` is refused unread).
pub async fn request_body(req: &mut Request, max: usize) -> Result<Vec<u8>, ReadError> {
    if read_whole(req.headers(), max)? {
        return bounded(req.bytes().await, max);
    }
    read_capped(req.stream().ok(), max).await
}

/// Larger responses from AWS or Okta are refused.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy)]
pub struct FetchHttp;

impl Http for FetchHttp {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        fetch_bounded(req, timeout_ms, MAX_RESPONSE_BYTES).await
    }
}

/// `fetch` with another bound on the response body (DynamoDB Scan pages can exceed
/// [`MAX_RESPONSE_BYTES`]).
#[derive(Clone, Copy)]
pub struct BoundedFetch(pub usize);

impl Http for BoundedFetch {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        fetch_bounded(req, timeout_ms, self.0).await
    }
}

async fn fetch_bounded(req: HttpRequest, timeout_ms: u64, max_bytes: usize) -> Result<HttpResponse, FetchError> {
    let headers = Headers::new();
    for (k, v) in &req.headers {
        headers.set(k, v).map_err(|e| FetchError::Network(format!("header {k}: {e}")))?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::from(req.method.to_string())).with_headers(headers).with_redirect(RequestRedirect::Manual);
    if !req.body.is_empty() {
        let bytes = js_sys::Uint8Array::from(req.body.as_slice());
        init.with_body(Some(JsValue::from(bytes)));
    }
    let request = Request::new_with_init(&req.url, &init).map_err(|e| FetchError::Network(e.to_string()))?;
    let controller = AbortController::default();
    let signal = controller.signal();
    // Headers and body under one timer: a peer that stalls mid-body times out like one that
    // never answers.
    let exchange = async move {
        let mut resp =
            Fetch::Request(request).send_with_signal(&signal).await.map_err(|e| FetchError::Network(e.to_string()))?;
        let whole = read_whole(resp.headers(), max_bytes);
        let status = resp.status_code();
        let headers: Vec<(String, String)> = resp.headers().entries().collect();
        let body = match whole {
            Ok(true) => bounded(read_native(&resp).await, max_bytes),
            Ok(false) => read_capped(resp.stream().ok(), max_bytes).await,
            Err(e) => Err(e),
        };
        let body = body.map_err(|e| match e {
            ReadError::TooLarge => FetchError::BodyTooLarge,
            ReadError::Broken(e) => FetchError::Network(e),
        })?;
        Ok(HttpResponse { status, headers, body })
    };
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    match select(Box::pin(exchange), timer).await {
        Either::Left((result, _)) => result,
        Either::Right(_) => {
            controller.abort();
            Err(FetchError::Timeout)
        }
    }
}

/// The `OTP_LEDGER` Durable Object namespace; a missing binding makes every call unavailable.
pub struct WorkerDurable(pub Result<ObjectNamespace, String>);

impl Durable for WorkerDurable {
    async fn call(&self, object: &str, body: String, timeout_ms: u64) -> Result<String, DurableError> {
        let ns = self.0.as_ref().map_err(|e| DurableError::Unavailable(e.clone()))?;
        let stub = ns.get_by_name(object).map_err(|e| DurableError::Unavailable(e.to_string()))?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(JsValue::from_str(&body)));
        let request = Request::new_with_init("https://ledger.internal/", &init)
            .map_err(|e| DurableError::Unavailable(e.to_string()))?;
        // The object's replies are ours and bounded by it (ledger::Reply), read whole.
        let exchange = async move {
            let resp = stub.fetch_with_request(request).await?;
            String::from_utf8(read_native(&resp).await?)
                .map_err(|_| worker::Error::RustError("reply is not UTF-8".into()))
        };
        let timer = Delay::from(Duration::from_millis(timeout_ms));
        match select(Box::pin(exchange), timer).await {
            Either::Left((Ok(text), _)) => Ok(text),
            Either::Left((Err(e), _)) => Err(DurableError::Unavailable(e.to_string())),
            Either::Right(_) => Err(DurableError::Timeout),
        }
    }
}

pub struct WorkerKv(pub KvStore);

impl Kv for WorkerKv {
    async fn get(&self, key: &str, cache_ttl_s: Option<u64>) -> Result<Option<String>, KvError> {
        let mut get = self.0.get(key);
        if let Some(ttl) = cache_ttl_s {
            get = get.cache_ttl(ttl.max(60));
        }
        get.text().await.map_err(|e| KvError(e.to_string()))
    }

    async fn put(&self, key: &str, value: &str, ttl_s: Option<u64>) -> Result<(), KvError> {
        let mut put = self.0.put(key, value).map_err(|e| KvError(e.to_string()))?;
        if let Some(ttl) = ttl_s {
            put = put.expiration_ttl(ttl.max(60));
        }
        put.execute().await.map_err(|e| KvError(e.to_string()))
    }

    async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.0.delete(key).await.map_err(|e| KvError(e.to_string()))
    }
}

pub struct JsClock;

impl Clock for JsClock {
    fn now_ms(&self) -> u64 {
        Date::now().as_millis()
    }

    async fn sleep(&self, ms: u64) {
        Delay::from(Duration::from_millis(ms)).await;
    }
}

/// A Cloudflare Queue producer binding; a missing binding fails every send (the hook answers 503).
pub struct WorkerQueue(pub Result<worker::Queue, String>);

impl Queue for WorkerQueue {
    async fn send_batch(&self, messages: &[String]) -> Result<(), QueueError> {
        let queue = self.0.as_ref().map_err(|e| QueueError(e.clone()))?;
        // Parsed into plain JS objects so the consumer receives JSON objects, not strings.
        let batch = messages
            .iter()
            .map(|m| {
                js_sys::JSON::parse(m)
                    .map(|v| RawMessageBuilder::new(v).build_with_content_type(QueueContentType::Json))
                    .map_err(|_| QueueError("message is not JSON".into()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        queue.send_raw_batch(batch).await.map_err(|e| QueueError(e.to_string()))
    }
}
