//! The one retry policy of every outgoing call (End User Messaging sends, DynamoDB scans, Connect,
//! Okta): what a failure says about trying again ([`Verdict`]), how long to wait, and when to give
//! up ([`Policy`]), and the loop that applies them ([`run`]). Callers own only their numbers (a
//! [`Policy`] constant) and the mapping of their answers to a verdict.
//!
//! Two rules hold for every caller: a call refused by the invocation's subrequest budget is never
//! retried (a retry would be refused too), and a call with an effect that cannot be repeated safely
//! ([`Effect::Send`]: an SMS or a voice call) is never repeated after a timeout, since the peer
//! may have acted on it.
#![allow(async_fn_in_trait)]

use crate::edge::{Clock, FetchError};

/// Why a retry may succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The peer asked us to slow down.
    Throttled,
    /// A server-side or transport fault.
    Transient,
}

/// What a failed attempt says about the next one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Try again after the policy's backoff for this kind.
    Retry(Kind),
    /// Try again at this time (epoch milliseconds), e.g. a rate-limit reset.
    RetryAfter(u64),
    /// Trying the same request again would fail the same way, or could act twice.
    NoRetry,
}

/// Whether repeating a call can repeat its effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Reads, and writes the peer de-duplicates (a Connect username is unique).
    Idempotent,
    /// Delivers something to a person (an OTP): never repeated once it may have arrived.
    Send,
}

/// The verdict on a call that got no usable answer.
pub fn after_fetch(e: &FetchError, effect: Effect) -> Verdict {
    match e {
        FetchError::Network(_) => Verdict::Retry(Kind::Transient),
        FetchError::Timeout if effect == Effect::Idempotent => Verdict::Retry(Kind::Transient),
        FetchError::Timeout | FetchError::BodyTooLarge | FetchError::BudgetSpent => Verdict::NoRetry,
    }
}

/// A call that got no usable answer: a short description of why (`timeout`, or the error) and
/// the verdict.
pub fn unanswered(e: &FetchError, effect: Effect) -> (String, Verdict) {
    let why = if *e == FetchError::Timeout { "timeout".into() } else { e.to_string() };
    (why, after_fetch(e, effect))
}

/// Why [`run`] stopped trying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// The last failure was [`Verdict::NoRetry`].
    Final,
    /// The policy's attempts are used up.
    Exhausted,
    /// The next attempt, after its pause, would not fit before the deadline.
    NoTime,
    /// The peer's retry time (epoch ms) is further away than the policy waits.
    TooFar(u64),
}

/// A caller's numbers.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The pause after the n-th failed attempt (the last entry repeats), per kind.
    pub backoff_ms: &'static [u64],
    pub throttled_ms: &'static [u64],
    /// Up to this much is added to each backoff (from the clock), so that concurrent callers do
    /// not retry in step. 0: none.
    pub jitter_ms: u64,
    /// An attempt is not started with less time than this left before the deadline.
    pub min_attempt_ms: u64,
    /// [`Verdict::RetryAfter`] is waited out only when it is at most this far.
    pub max_wait_ms: u64,
}

/// What to do after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Wait(u64),
    Stop(Stop),
}

impl Policy {
    /// After attempt number `made` (from 1) failed with `verdict` at `now_ms`: the pause before
    /// the next attempt, or why there is none. `deadline_ms` is absolute.
    pub fn next(&self, made: u32, verdict: Verdict, now_ms: u64, deadline_ms: Option<u64>) -> Next {
        let pause = match verdict {
            Verdict::NoRetry => return Next::Stop(Stop::Final),
            Verdict::RetryAfter(at) => {
                let wait = at.saturating_sub(now_ms);
                if wait > self.max_wait_ms {
                    return Next::Stop(Stop::TooFar(at));
                }
                wait
            }
            Verdict::Retry(kind) => {
                let table = if kind == Kind::Throttled { self.throttled_ms } else { self.backoff_ms };
                let base = table.get((made as usize).saturating_sub(1)).or(table.last()).copied().unwrap_or(0);
                base + if self.jitter_ms > 0 { now_ms % self.jitter_ms } else { 0 }
            }
        };
        if made >= self.attempts {
            return Next::Stop(Stop::Exhausted);
        }
        match deadline_ms {
            Some(d) if now_ms + pause + self.min_attempt_ms > d => Next::Stop(Stop::NoTime),
            _ => Next::Wait(pause),
        }
    }
}

/// A failed attempt: the caller's error and what it says about the next one.
#[derive(Debug)]
pub struct Failed<E> {
    pub error: E,
    pub verdict: Verdict,
}

impl<E> Failed<E> {
    pub fn new(error: E, verdict: Verdict) -> Self {
        Failed { error, verdict }
    }

    /// A failure no retry can fix.
    pub fn last(error: E) -> Self {
        Failed { error, verdict: Verdict::NoRetry }
    }
}

/// The outcome of [`run`]: the value or the last failure, and how many attempts were made.
#[derive(Debug)]
pub struct Tried<T, E> {
    pub result: Result<T, (E, Stop)>,
    pub attempts: u32,
}

/// Calls `attempt(n)` for n = 1, 2, … until it succeeds or `policy` says stop, sleeping on `clock`
/// between attempts.
pub async fn run<T, E, C: Clock>(
    policy: &Policy,
    clock: &C,
    deadline_ms: Option<u64>,
    mut attempt: impl AsyncFnMut(u32) -> Result<T, Failed<E>>,
) -> Tried<T, E> {
    let mut made = 0;
    loop {
        made += 1;
        let failed = match attempt(made).await {
            Ok(value) => return Tried { result: Ok(value), attempts: made },
            Err(failed) => failed,
        };
        match policy.next(made, failed.verdict, clock.now_ms(), deadline_ms) {
            Next::Wait(ms) => clock.sleep(ms).await,
            Next::Stop(stop) => return Tried { result: Err((failed.error, stop)), attempts: made },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, FakeClock};

    const P: Policy = Policy {
        attempts: 3,
        backoff_ms: &[100, 400],
        throttled_ms: &[500],
        jitter_ms: 0,
        min_attempt_ms: 50,
        max_wait_ms: 2_000,
    };

    #[test]
    fn verdicts_of_fetch_errors() {
        use FetchError::*;
        assert_eq!(after_fetch(&Network("reset".into()), Effect::Send), Verdict::Retry(Kind::Transient));
        assert_eq!(after_fetch(&Timeout, Effect::Idempotent), Verdict::Retry(Kind::Transient));
        assert_eq!(after_fetch(&Timeout, Effect::Send), Verdict::NoRetry, "never resend after a timeout");
        assert_eq!(after_fetch(&BudgetSpent, Effect::Idempotent), Verdict::NoRetry);
        assert_eq!(after_fetch(&BodyTooLarge, Effect::Idempotent), Verdict::NoRetry);
    }

    #[test]
    fn backoff_per_kind_with_the_last_entry_repeating() {
        let t = Verdict::Retry(Kind::Transient);
        assert_eq!(P.next(1, t, 0, None), Next::Wait(100));
        assert_eq!(P.next(2, t, 0, None), Next::Wait(400));
        assert_eq!(P.next(3, t, 0, None), Next::Stop(Stop::Exhausted));
        let long = Policy { attempts: 9, ..P };
        assert_eq!(long.next(7, t, 0, None), Next::Wait(400));
        assert_eq!(P.next(2, Verdict::Retry(Kind::Throttled), 0, None), Next::Wait(500));
        assert_eq!(P.next(1, Verdict::NoRetry, 0, None), Next::Stop(Stop::Final));
    }

    #[test]
    fn jitter_comes_from_the_clock() {
        let j = Policy { jitter_ms: 97, ..P };
        assert_eq!(j.next(1, Verdict::Retry(Kind::Transient), 1_000, None), Next::Wait(100 + 1_000 % 97));
    }

    #[test]
    fn the_deadline_must_hold_the_pause_and_a_whole_attempt() {
        let t = Verdict::Retry(Kind::Transient);
        assert_eq!(P.next(1, t, 1_000, Some(1_150)), Next::Wait(100));
        assert_eq!(P.next(1, t, 1_000, Some(1_149)), Next::Stop(Stop::NoTime));
    }

    #[test]
    fn retry_after_is_waited_out_only_when_near() {
        assert_eq!(P.next(1, Verdict::RetryAfter(3_000), 1_000, None), Next::Wait(2_000));
        assert_eq!(P.next(1, Verdict::RetryAfter(3_001), 1_000, None), Next::Stop(Stop::TooFar(3_001)));
        assert_eq!(P.next(1, Verdict::RetryAfter(500), 1_000, None), Next::Wait(0), "a reset already past");
    }

    #[test]
    fn run_sleeps_between_attempts_and_reports_them() {
        let clock = FakeClock::at(0);
        let tried = block_on(run(&P, &clock, None, async |n| {
            if n < 3 {
                Err(Failed::new(n, Verdict::Retry(Kind::Transient)))
            } else {
                Ok("third")
            }
        }));
        assert_eq!((tried.result.unwrap(), tried.attempts), ("third", 3));
        assert_eq!(clock.now_ms(), 500, "slept 100 then 400");

        let tried =
            block_on(run(&P, &clock, None, async |n| Err::<(), _>(Failed::new(n, Verdict::Retry(Kind::Transient)))));
        assert_eq!((tried.result.unwrap_err(), tried.attempts), ((3, Stop::Exhausted), 3));

        let tried = block_on(run(&P, &clock, None, async |n| Err::<(), _>(Failed::last(n))));
        assert_eq!((tried.result.unwrap_err(), tried.attempts), ((1, Stop::Final), 1));
    }
}
