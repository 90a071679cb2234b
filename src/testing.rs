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
}

/// An HTTP peer answering from a script (FIFO), then from a fallback; records every request.
#[derive(Default)]
pub struct ScriptedHttp {
    pub script: RefCell<VecDeque<Result<HttpResponse, FetchError>>>,
    pub fallback: RefCell<Option<Box<dyn Fn(&HttpRequest) -> Result<HttpResponse, FetchError>>>>,
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
    HttpResponse { status, headers: vec![("content-type".into(), "application/json".into())], body: body.as_bytes().to_vec() }
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
