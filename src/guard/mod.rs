//! The toll-fraud guard, enforced before any send (see `telephony::handle`):
//!
//! 1. [`static_check`]: always-refused number ranges ([`ranges`]) and the country allow-lists
//!    (SMS, voice). No state, no I/O: a pumping flood to a blocked range costs no object call.
//! 2. Velocity windows ([`window`]) per key, in Durable Objects (strongly consistent across
//!    isolates and locations): `number` in the number's own ledger object, together with the
//!    exactly-once claim; `prefix`, `country` and `user` in objects of their own ([`checks`]).
//!
//! Prefix and country objects are sharded: a key whose largest window allows more than
//! [`SHARD_UNIT`] requests is split over up to [`MAX_SHARDS`] objects, each with an equal share
//! of every window, and a number always lands in the same shard (a digest of it). The trade:
//! the total admitted is within `shards` of the limit, and traffic concentrated on few numbers
//! trips its shard at about `max / shards`. A key that tripped is remembered by the isolate for
//! a few seconds ([`Tripped`]), so a flood against it stops reaching its objects at all.
//!
//! Ceiling, at about 1,000 requests/s per object: a number 1,000/s (its own object), a prefix or
//! country `1,000 × shards`/s before it trips (16,000/s at most), and after it trips each isolate
//! asks each of its objects at most once per [`TRIP_MEMORY_MS`].

pub mod admin;
pub mod config;
pub mod ranges;
pub mod window;

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use self::config::{windows, GuardConfig, KindRates};
use self::window::Window;
use crate::phone::E164;
use crate::template::Channel;

/// A largest window above this many requests gets another shard.
pub const SHARD_UNIT: u64 = 250;
pub const MAX_SHARDS: u64 = 16;
/// How long an isolate answers for a tripped key itself.
pub const TRIP_MEMORY_MS: u64 = 5_000;
/// The request type of self-service enrolment, where the stricter windows apply too.
pub const ENROLLMENT: &str = "com.okta.user.telephony.pre-enrollment";

/// Why the guard refuses: a stable reason for Okta's answer, logs and the admin status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Refusal {
    CountryNotAllowed,
    NumberRangeBlocked,
    RateLimited,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::CountryNotAllowed => "COUNTRY_NOT_ALLOWED",
            Refusal::NumberRangeBlocked => "NUMBER_RANGE_BLOCKED",
            Refusal::RateLimited => "RATE_LIMITED",
        }
    }
}

/// The kind of key a velocity window counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Number,
    Prefix,
    Country,
    User,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Number => "number",
            KeyKind::Prefix => "prefix",
            KeyKind::Country => "country",
            KeyKind::User => "user",
        }
    }
}

/// The checks that need no state: ranges first (whatever the lists say), then the allow-list of
/// the channel. `Some((refusal, what))` refuses.
pub fn static_check(cfg: &GuardConfig, phone: &E164, channel: Channel) -> Option<(Refusal, &'static str)> {
    if let Some(b) = ranges::blocked(phone.as_str(), channel) {
        return Some((Refusal::NumberRangeBlocked, b.what));
    }
    let list = match channel {
        Channel::Sms => &cfg.sms_countries,
        Channel::Voice => &cfg.voice_countries,
    };
    (!list.allows(phone.country())).then_some((Refusal::CountryNotAllowed, "outside the allow-list"))
}

/// The number without its last 4 digits: the block pumping walks through.
pub fn prefix_of(e164: &str) -> &str {
    &e164[..e164.len().saturating_sub(4).max(1)]
}

/// One velocity check in an object of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    pub kind: KeyKind,
    pub object: String,
    pub windows: Vec<Window>,
    /// What logs and the admin status show: never a full number or a user id.
    pub label: String,
}

fn rates_of(r: &KindRates, kind: KeyKind) -> &[config::Rate] {
    match kind {
        KeyKind::Number => &r.number,
        KeyKind::Prefix => &r.prefix,
        KeyKind::Country => &r.country,
        KeyKind::User => &r.user,
    }
}

/// The windows of `kind` for a request of `request_type`.
pub fn windows_for(cfg: &GuardConfig, kind: KeyKind, request_type: &str) -> Vec<Window> {
    let enrollment = (request_type == ENROLLMENT).then(|| rates_of(&cfg.limits.enrollment, kind));
    windows(rates_of(&cfg.limits.all, kind), enrollment)
}

fn digest_hex(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u32).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finalize()[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// How many shards a key with these windows gets.
pub fn shards_for(windows: &[Window]) -> u64 {
    let largest = windows.iter().map(|w| w.max).max().unwrap_or(0);
    largest.div_ceil(SHARD_UNIT).clamp(1, MAX_SHARDS)
}

/// The windows each of `shards` shards enforces: an equal share, rounded up.
fn share(windows: Vec<Window>, shards: u64) -> Vec<Window> {
    windows.into_iter().map(|w| Window { max: w.max.div_ceil(shards), ..w }).collect()
}

/// The prefix object names of a prefix, one per shard (the admin release clears them all); the
/// same names [`checks`] uses.
pub fn prefix_objects(prefix: &str, shards: u64) -> Vec<String> {
    (0..shards).map(|i| format!("pfx:{prefix}:{i}")).collect()
}

/// The prefix, country and user checks of a request (the number's windows go with its claim).
/// Keys without windows are left out.
pub fn checks(cfg: &GuardConfig, phone: &E164, user_id: Option<&str>, request_type: &str) -> Vec<Check> {
    let number = phone.as_str();
    // A sharded key: shards are counted from every window the key may have (enrolment's too),
    // so that every request type lands on the same objects; a number always in the same shard.
    let sharded = |kind: KeyKind, tag: &str, label: &str| {
        let w = windows_for(cfg, kind, request_type);
        (!w.is_empty()).then(|| {
            let shards = shards_for(&windows_for(cfg, kind, ENROLLMENT));
            let i = u64::from(Sha256::digest(number.as_bytes())[0]) % shards;
            Check { kind, object: format!("{tag}:{label}:{i}"), windows: share(w, shards), label: label.to_string() }
        })
    };
    let user = user_id.and_then(|user| {
        let w = windows_for(cfg, KeyKind::User, request_type);
        (!w.is_empty()).then(|| {
            let id = digest_hex(&["otp-user/v1", user]);
            Check { kind: KeyKind::User, object: format!("user:{id}"), windows: w, label: id[..8].to_string() }
        })
    });
    [
        sharded(KeyKind::Prefix, "pfx", prefix_of(number)),
        sharded(KeyKind::Country, "cc", phone.country().unwrap_or("ZZ")),
        user,
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Which requests a tripped window refuses: all of them, or only enrolments (`e:` windows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    All,
    Enrollment,
}

impl Scope {
    /// The scope of a window by its name (`w:600`, `e:3600`).
    pub fn of(window_name: &str) -> Scope {
        if window_name.starts_with("e:") {
            Scope::Enrollment
        } else {
            Scope::All
        }
    }
}

/// Keys this isolate saw trip, until when it refuses them itself: data only (timestamps).
#[derive(Default)]
pub struct Tripped {
    until: RefCell<HashMap<(String, Scope), u64>>,
}

impl Tripped {
    const MAX: usize = 4096;

    /// Whether `object` is refused here for a request (an enrolment when `enrollment`).
    pub fn is_tripped(&self, object: &str, enrollment: bool, now_ms: u64) -> bool {
        let until = self.until.borrow();
        let hit = |scope| until.get(&(object.to_string(), scope)).is_some_and(|&t| t > now_ms);
        hit(Scope::All) || (enrollment && hit(Scope::Enrollment))
    }

    pub fn remember(&self, object: &str, scope: Scope, now_ms: u64, retry_after_ms: u64) {
        let mut m = self.until.borrow_mut();
        if m.len() >= Self::MAX {
            m.retain(|_, t| *t > now_ms);
            if m.len() >= Self::MAX {
                m.clear();
            }
        }
        m.insert((object.to_string(), scope), now_ms + retry_after_ms.min(TRIP_MEMORY_MS));
    }

    pub fn forget(&self, object: &str) {
        self.until.borrow_mut().retain(|(o, _), _| o != object);
    }
}

/// The status object: tallies of refusals and trips, for `GET /admin/guard/status`.
pub const STATUS_OBJECT: &str = "guard:status";
/// An isolate sends its tallies to the status object at most this often.
pub const TALLY_EVERY_MS: u64 = 5_000;
const MAX_PENDING_TALLIES: usize = 256;

/// Tallies this isolate has not sent yet: the status object hears from each isolate at most
/// once per [`TALLY_EVERY_MS`], so a flood of refusals is not a flood of object calls.
#[derive(Default)]
pub struct Tallies {
    pending: RefCell<BTreeMap<String, u64>>,
    last_sent_ms: Cell<u64>,
}

impl Tallies {
    pub fn add(&self, name: String) {
        let mut p = self.pending.borrow_mut();
        if p.len() < MAX_PENDING_TALLIES || p.contains_key(&name) {
            *p.entry(name).or_default() += 1;
        }
    }

    /// The tallies to send now, if it is time.
    pub fn take_due(&self, now_ms: u64) -> Option<Vec<(String, u64)>> {
        if self.pending.borrow().is_empty() || now_ms < self.last_sent_ms.get() + TALLY_EVERY_MS {
            return None;
        }
        self.last_sent_ms.set(now_ms);
        Some(std::mem::take(&mut *self.pending.borrow_mut()).into_iter().collect())
    }

    /// What is still pending (the admin status adds it to the object's).
    pub fn pending(&self) -> Vec<(String, u64)> {
        self.pending.borrow().iter().map(|(k, v)| (k.clone(), *v)).collect()
    }
}

/// The tally of a refusal: `t:refused:<REASON>:<COUNTRY>`.
pub fn refusal_tally(refusal: Refusal, country: Option<&str>) -> String {
    format!("t:refused:{}:{}", refusal.reason(), country.unwrap_or("ZZ"))
}

/// The tally of a key over its limit: `t:limited:<kind>:<label>`.
pub fn limited_tally(kind: KeyKind, label: &str) -> String {
    format!("t:limited:{}:{label}", kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::config::{default_limits, Countries, Mode};
    use super::*;

    fn cfg() -> GuardConfig {
        GuardConfig {
            mode: Mode::Enforce,
            sms_countries: Countries::Only(["US".to_string(), "CA".to_string(), "GB".to_string()].into()),
            voice_countries: Countries::Only(["US".to_string()].into()),
            limits: default_limits(),
        }
    }

    fn phone(s: &str) -> E164 {
        E164::parse(s).unwrap()
    }

    #[test]
    fn ranges_are_refused_whatever_the_lists_say() {
        let mut all = cfg();
        all.sms_countries = Countries::All;
        all.voice_countries = Countries::All;
        for n in [
            "+80012345678",
            "+80812345678",
            "+8707712345678",
            "+881612345678",
            "+882161234567",
            "+88301234567",
            "+97901234567",
            "+99112345678",
        ] {
            assert_eq!(
                static_check(&all, &phone(n), Channel::Sms).map(|r| r.0),
                Some(Refusal::NumberRangeBlocked),
                "{n}"
            );
        }
        // NANP premium 900 on both channels; the 976 exchange in any area code.
        for n in ["+19005550123", "+14159761234", "+12129760000"] {
            assert_eq!(
                static_check(&all, &phone(n), Channel::Voice).map(|r| r.0),
                Some(Refusal::NumberRangeBlocked),
                "{n}"
            );
        }
        // Toll-free: SMS only.
        assert_eq!(
            static_check(&all, &phone("+18005550123"), Channel::Sms).map(|r| r.0),
            Some(Refusal::NumberRangeBlocked)
        );
        assert_eq!(static_check(&all, &phone("+18005550123"), Channel::Voice), None);
        // National premium and shared cost.
        for n in ["+37190123456", "+37181123456", "+449012345678", "+4990012345678"] {
            assert_eq!(
                static_check(&all, &phone(n), Channel::Sms).map(|r| r.0),
                Some(Refusal::NumberRangeBlocked),
                "{n}"
            );
        }
        // Ordinary mobiles are not.
        for n in ["+14155550123", "+447911123456", "+37120123456", "+4915112345678", "+14159751234"] {
            assert_eq!(static_check(&all, &phone(n), Channel::Sms), None, "{n}");
        }
    }

    #[test]
    fn allow_lists_per_channel_with_nanp_regions() {
        let c = cfg();
        assert_eq!(static_check(&c, &phone("+14155550123"), Channel::Sms), None);
        assert_eq!(static_check(&c, &phone("+16135550123"), Channel::Sms), None, "Ottawa is CA");
        assert_eq!(
            static_check(&c, &phone("+16135550123"), Channel::Voice).map(|r| r.0),
            Some(Refusal::CountryNotAllowed)
        );
        // +1 876 is Jamaica, not the US.
        assert_eq!(
            static_check(&c, &phone("+18765550123"), Channel::Sms).map(|r| r.0),
            Some(Refusal::CountryNotAllowed)
        );
        assert_eq!(
            static_check(&c, &phone("+37120123456"), Channel::Sms).map(|r| r.0),
            Some(Refusal::CountryNotAllowed)
        );
    }

    #[test]
    fn prefix_is_the_number_without_its_last_four_digits() {
        assert_eq!(prefix_of("+14155550123"), "+1415555");
        assert_eq!(prefix_of("+3712012"), "+371");
    }

    #[test]
    fn keys_shard_large_budgets_and_keep_small_ones_exact() {
        let c = cfg();
        let ks = checks(&c, &phone("+14155550123"), Some("00uABC"), "com.okta.user.telephony.mfa-verification");
        let kinds: Vec<KeyKind> = ks.iter().map(|k| k.kind).collect();
        assert_eq!(kinds, [KeyKind::Prefix, KeyKind::Country, KeyKind::User]);
        assert_eq!(ks[0].object, "pfx:+1415555:0", "20 per hour: one shard, exact");
        assert_eq!(ks[0].windows[0].max, 20);
        // 1,000 per hour: 4 shards of 250.
        assert!(ks[1].object.starts_with("cc:US:"));
        assert_eq!(ks[1].windows[0].max, 250);
        assert!(!ks[2].label.contains("00uABC") && !ks[2].object.contains("00uABC"));
        // Same number, same shard; enrolment adds its windows.
        let again = checks(&c, &phone("+14155550123"), None, ENROLLMENT);
        assert_eq!(again[1].object, ks[1].object);
        assert_eq!(again.len(), 2, "no user id, no user key");
        assert!(again[0].windows.iter().any(|w| w.name == "e:3600" && w.max == 5));
        assert_eq!(shards_for(&[Window { name: "w:1".into(), max: 1_000_000, per_s: 1 }]), MAX_SHARDS);
    }

    #[test]
    fn tripped_keys_are_remembered_briefly() {
        let t = Tripped::default();
        t.remember("cc:LV:0", Scope::All, 1_000, 600_000);
        assert!(t.is_tripped("cc:LV:0", false, 1_000 + TRIP_MEMORY_MS - 1));
        assert!(!t.is_tripped("cc:LV:0", false, 1_000 + TRIP_MEMORY_MS));
        t.remember("cc:LV:0", Scope::All, 1_000, 600_000);
        t.forget("cc:LV:0");
        assert!(!t.is_tripped("cc:LV:0", true, 1_001));
        // An enrolment window that tripped refuses enrolments only.
        t.remember("pfx:+3247012:0", Scope::of("e:3600"), 1_000, 600_000);
        assert!(t.is_tripped("pfx:+3247012:0", true, 1_001));
        assert!(!t.is_tripped("pfx:+3247012:0", false, 1_001));
    }
}
