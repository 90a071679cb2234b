//! The subrequest budget of one invocation (`WORKER_SUBREQUEST_BUDGET`): Workers allow 50
//! subrequests per invocation on the Free plan and 10,000 on Paid, and an invocation that passes
//! the limit fails mid-way. Work is admitted against a [`Budget`] before it starts
//! ([`Budget::reserve`]), and every outgoing call goes through [`Metered`], which refuses calls
//! past the limit instead of letting the runtime fail: such a call is a transient error, retried
//! in a later invocation.
//!
//! Counted: `fetch` calls (Okta, AWS), Durable Object calls and queue sends. Not counted: Workers KV
//! operations, which have their own per-invocation limit (1,000).
#![allow(async_fn_in_trait)]

use std::cell::Cell;

use crate::edge::{Durable, DurableError, FetchError, Http, HttpRequest, HttpResponse, Queue, QueueError};

/// The Free plan's limit, and the default.
pub const DEFAULT_SUBREQUESTS: u32 = 50;
/// What a refused call says.
pub const SPENT: &str = "the invocation's subrequest budget (WORKER_SUBREQUEST_BUDGET) is spent";

/// `WORKER_SUBREQUEST_BUDGET`: 10–10,000, default [`DEFAULT_SUBREQUESTS`] (the Free plan's limit;
/// on Paid, 10,000 lets a batch do more per invocation).
pub fn setting(get: &impl Fn(&str) -> Option<String>) -> Result<u32, crate::settings::ConfigError> {
    crate::settings::number(get, "WORKER_SUBREQUEST_BUDGET", DEFAULT_SUBREQUESTS.into(), 10, 10_000).map(|n| n as u32)
}

/// Subrequests of one invocation: used, reserved for admitted work, and the limit.
#[derive(Debug)]
pub struct Budget {
    limit: u32,
    used: Cell<u32>,
    reserved: Cell<u32>,
}

impl Budget {
    pub fn new(limit: u32) -> Self {
        Budget { limit, used: Cell::new(0), reserved: Cell::new(0) }
    }

    pub fn used(&self) -> u32 {
        self.used.get()
    }

    /// Admits work that may need `n` subrequests, if that many are neither used nor reserved.
    /// The reservation is released when dropped; calls made meanwhile count as used.
    pub fn reserve(&self, n: u32) -> Option<Reservation<'_>> {
        let taken = self.used.get() + self.reserved.get();
        (taken + n <= self.limit).then(|| {
            self.reserved.set(self.reserved.get() + n);
            Reservation { budget: self, n }
        })
    }

    /// Takes one subrequest: from a reservation of its caller, or from what is left.
    fn take(&self) -> bool {
        if self.used.get() >= self.limit {
            return false;
        }
        self.used.set(self.used.get() + 1);
        // A call made under a reservation uses it up first.
        if self.reserved.get() > 0 && self.used.get() + self.reserved.get() > self.limit {
            self.reserved.set(self.reserved.get() - 1);
        }
        true
    }
}

/// Admitted work; releases what it did not use when dropped.
pub struct Reservation<'a> {
    budget: &'a Budget,
    n: u32,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let r = &self.budget.reserved;
        r.set(r.get().saturating_sub(self.n));
    }
}

/// An error that may be a refusal by the budget: nothing was sent, and the work goes on in the next
/// invocation rather than failing.
pub trait Spent {
    fn budget_spent(&self) -> bool;
}

impl Spent for FetchError {
    fn budget_spent(&self) -> bool {
        *self == FetchError::BudgetSpent
    }
}

impl Spent for DurableError {
    fn budget_spent(&self) -> bool {
        *self == DurableError::BudgetSpent
    }
}

/// An edge service whose calls are counted against a [`Budget`].
pub struct Metered<'a, T> {
    pub inner: &'a T,
    pub budget: &'a Budget,
}

impl<H: Http> Http for Metered<'_, H> {
    async fn send(&self, req: HttpRequest, timeout_ms: u64) -> Result<HttpResponse, FetchError> {
        if !self.budget.take() {
            return Err(FetchError::BudgetSpent);
        }
        self.inner.send(req, timeout_ms).await
    }
}

impl<D: Durable> Durable for Metered<'_, D> {
    async fn call(&self, object: &str, body: String, timeout_ms: u64) -> Result<String, DurableError> {
        if !self.budget.take() {
            return Err(DurableError::BudgetSpent);
        }
        self.inner.call(object, body, timeout_ms).await
    }
}

impl<Q: Queue> Queue for Metered<'_, Q> {
    async fn send_batch(&self, messages: &[String]) -> Result<(), QueueError> {
        if !self.budget.take() {
            return Err(QueueError(SPENT.into()));
        }
        self.inner.send_batch(messages).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, json_response, ScriptedHttp};

    #[test]
    fn calls_past_the_limit_are_refused_without_being_made() {
        let http = ScriptedHttp::default();
        http.answer_with(|_| Ok(json_response(200, "{}")));
        let budget = Budget::new(2);
        let m = Metered { inner: &http, budget: &budget };
        for _ in 0..2 {
            assert!(block_on(m.send(HttpRequest::get("https://a.example/"), 100)).is_ok());
        }
        assert_eq!(block_on(m.send(HttpRequest::get("https://a.example/"), 100)), Err(FetchError::BudgetSpent));
        assert_eq!(http.count(), 2, "the third call never left");
        assert_eq!(budget.used(), 2);
    }

    #[test]
    fn reservations_admit_work_only_while_it_fits() {
        let budget = Budget::new(10);
        let a = budget.reserve(6).expect("fits");
        assert!(budget.reserve(5).is_none(), "6 + 5 > 10");
        let b = budget.reserve(4).expect("fits");
        // Calls under a reservation use it up, they do not take from what is left.
        assert!(budget.take() && budget.take());
        assert!(budget.reserve(1).is_none());
        drop(a);
        assert!(budget.reserve(6).is_some(), "a's 6 are free again; 2 used, b holds 4 less the 2 used");
        drop(b);
        assert_eq!(budget.used(), 2);
        assert!(budget.reserve(8).is_some() && budget.reserve(9).is_none());
    }
}
