//! The `edge` traits over the Workers runtime: `fetch` (no redirects, a timeout through
//! `AbortController`, a bounded body), Workers KV, Cloudflare Queues, and the JavaScript clock.

use std::time::Duration;

use futures_util::future::{select, Either};
use wasm_bindgen::JsValue;
use worker::{
    AbortController, Date, Delay, Fetch, Headers, KvStore, Method, QueueContentType, RawMessageBuilder, Request,
    RequestInit, RequestRedirect,
};

use crate::edge::{Clock, FetchError, Http, HttpRequest, HttpResponse, Kv, KvError, Queue, QueueError};

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
    let fetch = Fetch::Request(request);
    let sending = Box::pin(fetch.send_with_signal(&signal));
    let timer = Delay::from(Duration::from_millis(timeout_ms));
    let mut resp = match select(sending, timer).await {
        Either::Left((Ok(r), _)) => r,
        Either::Left((Err(e), _)) => return Err(FetchError::Network(e.to_string())),
        Either::Right(_) => {
            controller.abort();
            return Err(FetchError::Timeout);
        }
    };
    if resp
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > max_bytes)
    {
        return Err(FetchError::BodyTooLarge);
    }
    let status = resp.status_code();
    let headers: Vec<(String, String)> = resp.headers().entries().collect();
    let body = resp.bytes().await.map_err(|e| FetchError::Network(e.to_string()))?;
    if body.len() > max_bytes {
        return Err(FetchError::BodyTooLarge);
    }
    Ok(HttpResponse { status, headers, body })
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
