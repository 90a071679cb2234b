//! Work that one request of the isolate has under way (a JWKS fetch, an Okta token refresh), as
//! the other requests see it: a deadline and a generation counter, never a shared future.
//!
//! workerd forbids a request to await I/O another request started ("Cannot perform I/O on behalf
//! of a different request"), and a request cancelled mid-fetch would leave its waiters hanging.
//! So a request that finds the work under way waits on its own timer, for a bounded time, for the
//! result to appear in the isolate's plain-data cache; then it does the work itself.

use std::cell::Cell;

use crate::edge::Clock;

/// How often a waiting request looks again.
const POLL_MS: u64 = 10;

#[derive(Default)]
pub struct InFlight {
    until_ms: Cell<Option<u64>>,
    generation: Cell<u64>,
}

/// Held by the request doing the work; dropping it (done, failed or cancelled) ends the mark.
pub struct Working<'a> {
    flight: &'a InFlight,
    until_ms: u64,
}

impl Drop for Working<'_> {
    fn drop(&mut self) {
        if self.flight.until_ms.get() == Some(self.until_ms) {
            self.flight.until_ms.set(None);
        }
        self.flight.generation.set(self.flight.generation.get() + 1);
    }
}

impl InFlight {
    /// Whether some request is doing the work now (and has not outlived its own timeout).
    pub fn busy(&self, now_ms: u64) -> bool {
        self.until_ms.get().is_some_and(|until| until > now_ms)
    }

    /// Marks the work as under way until `now_ms + timeout_ms`.
    pub fn start(&self, now_ms: u64, timeout_ms: u64) -> Working<'_> {
        let until_ms = now_ms + timeout_ms;
        self.until_ms.set(Some(until_ms));
        Working { flight: self, until_ms }
    }

    /// Waits on `clock` until the work under way ends or `give_up_ms` passes.
    pub async fn wait<C: Clock>(&self, clock: &C, give_up_ms: u64) {
        let generation = self.generation.get();
        while self.generation.get() == generation && self.busy(clock.now_ms()) && clock.now_ms() < give_up_ms {
            clock.sleep(POLL_MS).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeClock};

    #[test]
    fn waiting_ends_when_the_work_ends_or_at_the_give_up_time() {
        let (flight, clock) = (InFlight::default(), FakeClock::at(1_000));
        let working = flight.start(1_000, 500);
        assert!(flight.busy(1_000));
        block_on(flight.wait(&clock, 1_100));
        assert_eq!(clock.now_ms(), 1_100, "gave up at its own time");
        let done = async {
            clock.sleep(30).await;
            drop(working);
        };
        block_on(futures_util::future::join(flight.wait(&clock, 2_000), done));
        assert!(clock.now_ms() < 1_200, "woke when the work ended");
        assert!(!flight.busy(clock.now_ms()));
    }

    #[test]
    fn a_mark_outlived_by_its_timeout_is_not_busy() {
        let flight = InFlight::default();
        let _forgotten = flight.start(0, 100);
        assert!(!flight.busy(100));
    }
}
