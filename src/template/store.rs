//! Where templates live at the edge, and the isolate's copy of them.
//!
//! KV layout (written by `kv-seed` and the sync job, read by the hook):
//! - `templates/set/<version>`: one immutable [`TemplateSet`] document (`TemplateSet::to_json`);
//! - `templates/current`: a small [`Pointer`] naming the version in service.
//!
//! Publishing writes the new set first and flips the pointer last, so a reader sees either the
//! old set or the new one, never a mix. A warm request reads neither: the isolate keeps the
//! parsed set for `TEMPLATE_CACHE_SECONDS` and then only re-reads the small pointer.
//! With no set in KV at all the hook still works, with the built-in English templates.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::{LocaleTemplates, Template, TemplateSet};
use crate::edge::Kv;

pub const CURRENT_KEY: &str = "templates/current";
const SET_PREFIX: &str = "templates/set/";

pub fn set_key(version: &str) -> String {
    format!("{SET_PREFIX}{version}")
}

/// The value at [`CURRENT_KEY`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pointer {
    pub version: String,
    pub key: String,
    #[serde(rename = "publishedAtMs", default)]
    pub published_at_ms: u64,
    #[serde(default)]
    pub templates: usize,
}

impl Pointer {
    pub fn for_set(set: &TemplateSet, now_ms: u64) -> Pointer {
        Pointer {
            version: set.version().to_string(),
            key: set_key(set.version()),
            published_at_ms: now_ms,
            templates: set.len(),
        }
    }
}

/// Where the set in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Kv,
    Builtin,
}

#[derive(Clone, Debug)]
pub struct Loaded {
    pub set: Rc<TemplateSet>,
    pub origin: Origin,
    /// Something an operator must hear about (logged by the caller as an alert).
    pub alert: Option<String>,
}

struct Cached {
    set: Rc<TemplateSet>,
    origin: Origin,
    checked_at_ms: u64,
}

/// The isolate's copy of the template set.
#[derive(Default)]
pub struct TemplateCache {
    state: RefCell<Option<Cached>>,
}

impl TemplateCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The set to use now: the cached one while fresh; otherwise the one KV names, falling back
    /// to the previous set on KV trouble, and to the built-in English set when KV has none.
    pub async fn current<K: Kv>(&self, kv: &K, now_ms: u64, ttl_ms: u64) -> Loaded {
        if let Some(c) = self.state.borrow().as_ref() {
            if now_ms.saturating_sub(c.checked_at_ms) < ttl_ms {
                return Loaded { set: c.set.clone(), origin: c.origin, alert: None };
            }
        }
        let cached_version =
            self.state.borrow().as_ref().filter(|c| c.origin == Origin::Kv).map(|c| c.set.version().to_string());
        let (fresh, alert) = match load(kv, cached_version.as_deref()).await {
            Ok(Some(Fetched::Same)) => (None, None),
            Ok(Some(Fetched::New(set, rejected))) => {
                let alert = (!rejected.is_empty()).then(|| {
                    format!(
                        "template set {} has {} invalid templates (not served): {}",
                        set.version(),
                        rejected.len(),
                        join(&rejected)
                    )
                });
                (Some((Rc::new(set), Origin::Kv)), alert)
            }
            Ok(None) => (
                Some((builtin(), Origin::Builtin)),
                Some(
                    "no template set in KV: serving the built-in English templates (run the template sync or kv-seed)"
                        .into(),
                ),
            ),
            Err(e) => (None, Some(format!("could not read templates from KV ({e}); keeping the templates in use"))),
        };
        let mut state = self.state.borrow_mut();
        match (fresh, state.as_mut()) {
            (Some((set, origin)), _) => *state = Some(Cached { set, origin, checked_at_ms: now_ms }),
            (None, Some(c)) => c.checked_at_ms = now_ms,
            (None, None) => *state = Some(Cached { set: builtin(), origin: Origin::Builtin, checked_at_ms: now_ms }),
        }
        let c = state.as_ref().expect("set just above");
        Loaded { set: c.set.clone(), origin: c.origin, alert }
    }
}

enum Fetched {
    Same,
    New(TemplateSet, Vec<super::Rejected>),
}

async fn load<K: Kv>(kv: &K, cached_version: Option<&str>) -> Result<Option<Fetched>, String> {
    let Some(raw) = kv.get(CURRENT_KEY, Some(60)).await.map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let pointer: Pointer = serde_json::from_str(&raw).map_err(|e| format!("{CURRENT_KEY} is not a pointer: {e}"))?;
    if Some(pointer.version.as_str()) == cached_version {
        return Ok(Some(Fetched::Same));
    }
    if !pointer.key.starts_with(SET_PREFIX) {
        return Err(format!("{CURRENT_KEY} points outside {SET_PREFIX}"));
    }
    // Sets are immutable: the edge may cache them for long.
    let doc = kv
        .get(&pointer.key, Some(3600))
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} is missing", pointer.key))?;
    let (set, rejected) =
        TemplateSet::from_json(&doc).map_err(|e| format!("{} is not a template set: {e}", pointer.key))?;
    if set.is_empty() {
        return Err(format!("{} holds no valid template", pointer.key));
    }
    Ok(Some(Fetched::New(set, rejected)))
}

fn join(rejected: &[super::Rejected]) -> String {
    rejected.iter().take(5).map(|r| r.to_string()).collect::<Vec<_>>().join("; ")
}

/// Built-in US English templates: the floor the hook stands on when KV has nothing.
pub fn builtin() -> Rc<TemplateSet> {
    let en = LocaleTemplates {
        sms: Some(Template {
            body: "Your verification code is {{otp}}. Do not share it with anyone.".into(),
            voice_id: None,
        }),
        voice: Some(Template {
            body: concat!(
                r#"<speak><prosody rate="90%">Hello. Your verification code is <break time="300ms"/>{{otp}}."#,
                r#"<break time="700ms"/> Again, your code is <break time="300ms"/>{{otp}}.<break time="500ms"/> Goodbye.</prosody></speak>"#
            )
            .into(),
            voice_id: Some("JOANNA".into()),
        }),
    };
    let (set, rejected) = TemplateSet::build([("en-US".to_string(), en)]);
    debug_assert!(rejected.is_empty(), "built-in templates are valid: {rejected:?}");
    Rc::new(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{block_on, MemKv};

    fn publish(kv: &MemKv, set: &TemplateSet) {
        kv.insert(&set_key(set.version()), &set.to_json());
        kv.insert(CURRENT_KEY, &serde_json::to_string(&Pointer::for_set(set, 0)).unwrap());
    }

    #[test]
    fn builtin_templates_are_valid() {
        let set = builtin();
        assert_eq!(set.len(), 2);
    }

    #[test]
    fn serves_builtin_and_alerts_when_kv_is_empty() {
        let kv = MemKv::default();
        let cache = TemplateCache::new();
        let loaded = block_on(cache.current(&kv, 0, 60_000));
        assert_eq!(loaded.origin, Origin::Builtin);
        assert!(loaded.alert.unwrap().contains("built-in"));
    }

    #[test]
    fn warm_requests_do_not_touch_kv() {
        let kv = MemKv::default();
        publish(&kv, &crate::template::tests::sample_set());
        let cache = TemplateCache::new();
        let first = block_on(cache.current(&kv, 1_000, 60_000));
        assert_eq!(first.origin, Origin::Kv);
        let reads = kv.reads();
        let again = block_on(cache.current(&kv, 30_000, 60_000));
        assert_eq!(kv.reads(), reads, "no KV read while the cache is fresh");
        assert!(Rc::ptr_eq(&first.set, &again.set));
        // After the TTL only the small pointer is read while the version is unchanged.
        block_on(cache.current(&kv, 70_000, 60_000));
        assert_eq!(kv.reads(), reads + 1);
    }

    #[test]
    fn picks_up_a_new_publication_atomically() {
        let kv = MemKv::default();
        let old = crate::template::tests::sample_set();
        publish(&kv, &old);
        let cache = TemplateCache::new();
        block_on(cache.current(&kv, 0, 1_000));
        let (new, _) = TemplateSet::build([(
            "en-US".to_string(),
            LocaleTemplates { sms: Some(crate::template::tests::sms("New {{otp}}")), voice: None },
        )]);
        // The set is written but the pointer not yet flipped: still the old set.
        kv.insert(&set_key(new.version()), &new.to_json());
        assert_eq!(block_on(cache.current(&kv, 2_000, 1_000)).set.version(), old.version());
        publish(&kv, &new);
        assert_eq!(block_on(cache.current(&kv, 4_000, 1_000)).set.version(), new.version());
    }

    #[test]
    fn keeps_the_previous_set_when_kv_fails_or_holds_garbage() {
        let kv = MemKv::default();
        let old = crate::template::tests::sample_set();
        publish(&kv, &old);
        let cache = TemplateCache::new();
        block_on(cache.current(&kv, 0, 1_000));
        kv.insert(CURRENT_KEY, "not json");
        let l = block_on(cache.current(&kv, 2_000, 1_000));
        assert_eq!((l.set.version(), l.origin), (old.version(), Origin::Kv));
        assert!(l.alert.is_some());
        kv.insert(CURRENT_KEY, r#"{"version":"v2","key":"templates/set/v2"}"#);
        kv.insert("templates/set/v2", r#"{"version":"v2","templates":{}}"#);
        assert_eq!(block_on(cache.current(&kv, 4_000, 1_000)).set.version(), old.version());
        kv.fail_all(true);
        assert_eq!(block_on(cache.current(&kv, 6_000, 1_000)).set.version(), old.version());
    }
}
