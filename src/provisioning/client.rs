//! The Connect side of provisioning: signed calls with bounded retries and optional pacing, and
//! the user operations built on them (find by username or tag, create, converge, delete). Every
//! user this Worker creates carries [`MANAGED_TAG`] = [`MANAGED_VALUE`] and [`OKTA_USER_TAG`] =
//! the Okta user id; only such users are ever updated or deleted.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;

use super::config::ConnectConfig;
use super::mapping::Desired;
use crate::aws::connect::{self as api, ConnectUser, NewUser, PathId, Search, UserSummary};
use crate::aws::error::AwsError;
use crate::aws::sign::sign;
use crate::edge::{Clock, FetchError, Http, HttpRequest, HttpResponse};
use crate::retry::{self, Failed, Kind, Verdict};

pub const MANAGED_TAG: &str = "managedBy";
pub const MANAGED_VALUE: &str = "okta-edge-hooks";
pub const OKTA_USER_TAG: &str = "oktaUserId";
/// Each Connect call's timeout.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// Retries of each call: throttling after 0.5, 1, 2 s, 5xx, network errors and timeouts after
/// 0.2, 0.4, 0.8 s (each plus up to 97 ms of jitter); four attempts in all. A repeated
/// `CreateUser` cannot create a second user: Connect usernames are unique.
const RETRY: retry::Policy = retry::Policy {
    attempts: 4,
    backoff_ms: &[200, 400, 800],
    throttled_ms: &[500, 1000, 2000],
    jitter_ms: 97,
    min_attempt_ms: 0,
    max_wait_ms: 0,
};
/// Pages of a tag search, at most.
const MAX_SEARCH_PAGES: usize = 400;

/// A failed Connect call, after retries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CallError {
    Aws(AwsError),
    /// No answer (network error or timeout).
    Network(String),
    /// The request could not be signed (a credentials problem).
    Sign(String),
    /// An instance or user id that is not a plain identifier ([`api::is_resource_id`]), refused
    /// before it reaches a URL path; nothing was sent. Names which id (`instance id`, `user id`),
    /// never its value.
    InvalidId(&'static str),
    /// A listing (this operation's) that did not end within [`MAX_SEARCH_PAGES`] pages.
    TooManyPages(&'static str),
    /// Not sent: the invocation's subrequest budget is spent. A later invocation may succeed.
    BudgetSpent,
}

impl crate::budget::Spent for CallError {
    fn budget_spent(&self) -> bool {
        *self == CallError::BudgetSpent
    }
}

impl CallError {
    pub fn is_transient(&self) -> bool {
        match self {
            CallError::Aws(e) => e.verdict() != Verdict::NoRetry,
            CallError::Network(_) | CallError::BudgetSpent => true,
            CallError::Sign(_) | CallError::InvalidId(_) | CallError::TooManyPages(_) => false,
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            CallError::Aws(e) if e.verdict() == Verdict::Retry(Kind::Throttled) => "CONNECT_THROTTLED",
            CallError::Aws(e) if e.verdict() != Verdict::NoRetry => "CONNECT_UNAVAILABLE",
            CallError::Aws(_) => "CONNECT_REJECTED",
            CallError::Network(_) => "CONNECT_UNREACHABLE",
            CallError::Sign(_) => "CONNECT_SIGNING_FAILED",
            CallError::InvalidId(_) => "CONNECT_INVALID_ID",
            CallError::TooManyPages(_) => "CONNECT_LISTING_TOO_LONG",
            CallError::BudgetSpent => "SUBREQUEST_BUDGET_SPENT",
        }
    }

    fn status(&self) -> Option<u16> {
        match self {
            CallError::Aws(e) => Some(e.status),
            _ => None,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Aws(e) => write!(f, "Connect: {e}"),
            CallError::Network(e) => write!(f, "Connect unreachable: {e}"),
            CallError::Sign(e) => write!(f, "Connect request not signed: {e}"),
            CallError::InvalidId(what) => write!(f, "Connect request not sent: the {what} is not a plain identifier"),
            CallError::TooManyPages(op) => write!(f, "Connect: more {op} pages than the bound ({MAX_SEARCH_PAGES})"),
            CallError::BudgetSpent => write!(f, "Connect request not sent: {}", crate::budget::SPENT),
        }
    }
}

/// The tags of a user this Worker creates for Okta user `okta_user_id`.
pub fn managed_tags(okta_user_id: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_TAG.to_string(), MANAGED_VALUE.to_string()),
        (OKTA_USER_TAG.to_string(), okta_user_id.to_string()),
    ])
}

pub fn is_managed(u: &ConnectUser) -> bool {
    u.tags.get(MANAGED_TAG).map(String::as_str) == Some(MANAGED_VALUE)
}

/// The Okta user a managed user belongs to (its `oktaUserId` tag).
pub fn owner(u: &ConnectUser) -> Option<&str> {
    u.tags.get(OKTA_USER_TAG).map(String::as_str)
}

/// One difference between a Connect user and its desired state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Change {
    SecurityProfiles,
    RoutingProfile,
    IdentityInfo,
}

impl Change {
    pub fn as_str(&self) -> &'static str {
        match self {
            Change::SecurityProfiles => "securityProfiles",
            Change::RoutingProfile => "routingProfile",
            Change::IdentityInfo => "identityInfo",
        }
    }
}

/// What must change for `existing` to match `desired` (security profiles compared as sets).
pub fn diff(desired: &Desired, existing: &ConnectUser) -> Vec<Change> {
    let mut out = Vec::new();
    let mut have = existing.security_profile_ids.clone();
    have.sort();
    have.dedup();
    if have != desired.profiles.security_profile_ids {
        out.push(Change::SecurityProfiles);
    }
    if existing.routing_profile_id.as_deref() != Some(desired.profiles.routing_profile_id.as_str()) {
        out.push(Change::RoutingProfile);
    }
    let names = |a: &Option<String>, b: &Option<String>| a.as_deref().unwrap_or("") == b.as_deref().unwrap_or("");
    if !names(&existing.identity_info.first_name, &desired.identity.first_name)
        || !names(&existing.identity_info.last_name, &desired.identity.last_name)
    {
        out.push(Change::IdentityInfo);
    }
    out
}

/// Instance and user ids go into Connect's URL paths as they are: anything but a plain identifier
/// is refused here, before a request is built, in release builds too.
fn instance(instance_id: &str) -> Result<PathId<'_>, CallError> {
    PathId::new(instance_id).ok_or(CallError::InvalidId("instance id"))
}

fn user(user_id: &str) -> Result<PathId<'_>, CallError> {
    PathId::new(user_id).ok_or(CallError::InvalidId("user id"))
}

/// Signed calls to one Connect instance, counted, optionally paced.
pub struct Connect<'a, H, C> {
    pub cfg: &'a ConnectConfig,
    pub http: &'a H,
    pub clock: &'a C,
    /// Minimum gap between two calls (0: none).
    pub min_interval_ms: u64,
    pub calls: Cell<u32>,
    last_call_ms: Cell<u64>,
}

/// The outcome of [`Connect::create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Created {
    New(String),
    /// 409: a user with this username exists already.
    Exists,
}

impl<'a, H: Http, C: Clock> Connect<'a, H, C> {
    pub fn new(cfg: &'a ConnectConfig, http: &'a H, clock: &'a C, min_interval_ms: u64) -> Self {
        Connect { cfg, http, clock, min_interval_ms, calls: Cell::new(0), last_call_ms: Cell::new(0) }
    }

    async fn pace(&self) {
        if self.min_interval_ms == 0 {
            return;
        }
        let next = self.last_call_ms.get() + self.min_interval_ms;
        let now = self.clock.now_ms();
        if now < next {
            self.clock.sleep(next - now).await;
        }
        self.last_call_ms.set(self.clock.now_ms());
    }

    /// Signs and sends `req`, retrying throttling, 5xx and network errors ([`RETRY`]). Returns
    /// any 2xx; a non-retryable error (or the last one) as `CallError`.
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, CallError> {
        let tried = retry::run(&RETRY, self.clock, None, async |_| {
            self.pace().await;
            let mut signed = req.clone();
            sign(&mut signed, &self.cfg.aws, &self.cfg.region, api::SIGNING_NAME, self.clock.now_ms())
                .map_err(|e| Failed::last(CallError::Sign(e.to_string())))?;
            self.calls.set(self.calls.get() + 1);
            match self.http.send(signed, CALL_TIMEOUT_MS).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(r),
                Ok(r) => {
                    let e = crate::aws::error::parse_error(&r);
                    let verdict = e.verdict();
                    Err(Failed::new(CallError::Aws(e), verdict))
                }
                Err(FetchError::BudgetSpent) => Err(Failed::last(CallError::BudgetSpent)),
                Err(e) => {
                    let (why, verdict) = retry::unanswered(&e, retry::Effect::Idempotent);
                    Err(Failed::new(CallError::Network(why), verdict))
                }
            }
        })
        .await;
        tried.result.map_err(|(e, _)| e)
    }

    /// Users with exactly this username (compared case-sensitively here).
    pub async fn find_by_username(&self, username: &str) -> Result<Vec<ConnectUser>, CallError> {
        let req = api::search_users(&self.cfg.endpoint, &self.cfg.instance_id, Search::Username(username), 100, None);
        let page = api::parse_search(&self.call(req).await?).map_err(CallError::Aws)?;
        Ok(page.users.into_iter().filter(|u| u.username == username).collect())
    }

    /// One page of the users carrying tag `key` = `value` (compared exactly here), and the next
    /// page's token.
    pub async fn tagged_page(
        &self,
        key: &str,
        value: &str,
        token: Option<&str>,
    ) -> Result<(Vec<ConnectUser>, Option<String>), CallError> {
        let req = api::search_users(
            &self.cfg.endpoint,
            &self.cfg.instance_id,
            Search::Tag(key, value),
            api::MAX_SEARCH_RESULTS,
            token,
        );
        let page = api::parse_search(&self.call(req).await?).map_err(CallError::Aws)?;
        let users = page.users.into_iter().filter(|u| u.tags.get(key).map(String::as_str) == Some(value)).collect();
        Ok((users, page.next_token))
    }

    /// Every user carrying tag `key` = `value` (all pages).
    pub async fn find_by_tag(&self, key: &str, value: &str) -> Result<Vec<ConnectUser>, CallError> {
        let mut users = Vec::new();
        let mut next: Option<String> = None;
        for _ in 0..MAX_SEARCH_PAGES {
            let (page, token) = self.tagged_page(key, value, next.as_deref()).await?;
            users.extend(page);
            next = token;
            if next.is_none() {
                return Ok(users);
            }
        }
        Err(CallError::TooManyPages("SearchUsers"))
    }

    /// One page of every user of the instance, managed or not: id and username (`ListUsers`),
    /// and the next page's token.
    pub async fn list_page(&self, token: Option<&str>) -> Result<(Vec<UserSummary>, Option<String>), CallError> {
        let req = api::list_users(&self.cfg.endpoint, instance(&self.cfg.instance_id)?, api::MAX_LIST_RESULTS, token);
        api::parse_list(&self.call(req).await?).map_err(CallError::Aws)
    }

    pub async fn create(&self, d: &Desired) -> Result<Created, CallError> {
        let instance_id = instance(&self.cfg.instance_id)?;
        let tags = managed_tags(&d.okta_user_id);
        let new = NewUser {
            username: &d.username,
            identity: &d.identity,
            security_profile_ids: &d.profiles.security_profile_ids,
            routing_profile_id: &d.profiles.routing_profile_id,
            tags: &tags,
        };
        match self.call(api::create_user(&self.cfg.endpoint, instance_id, &new)).await {
            Ok(r) => api::parse_create(&r).map(Created::New).map_err(CallError::Aws),
            Err(e) if e.status() == Some(409) => Ok(Created::Exists),
            Err(e) => Err(e),
        }
    }

    /// Applies `changes` to `user` so that it matches `d`.
    pub async fn update(&self, user_id: &str, d: &Desired, changes: &[Change]) -> Result<(), CallError> {
        let (e, i, user_id) = (&self.cfg.endpoint, instance(&self.cfg.instance_id)?, user(user_id)?);
        for c in changes {
            let req = match c {
                Change::SecurityProfiles => {
                    api::update_security_profiles(e, i, user_id, &d.profiles.security_profile_ids)
                }
                Change::RoutingProfile => api::update_routing_profile(e, i, user_id, &d.profiles.routing_profile_id),
                Change::IdentityInfo => api::update_identity_info(e, i, user_id, &d.identity),
            };
            api::parse_empty(&self.call(req).await?).map_err(CallError::Aws)?;
        }
        Ok(())
    }

    /// Tags an existing user (its `arn`) as `okta_user_id`'s managed user: adoption only.
    pub async fn adopt(&self, arn: &str, okta_user_id: &str) -> Result<(), CallError> {
        let req = api::tag_resource(&self.cfg.endpoint, arn, &managed_tags(okta_user_id));
        api::parse_empty(&self.call(req).await?).map_err(CallError::Aws)
    }

    /// Deletes a user; one that is already gone (404) counts as deleted.
    pub async fn delete(&self, user_id: &str) -> Result<(), CallError> {
        let req = api::delete_user(&self.cfg.endpoint, instance(&self.cfg.instance_id)?, user(user_id)?);
        match self.call(req).await {
            Ok(_) => Ok(()),
            Err(e) if e.status() == Some(404) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::Credentials;
    use crate::testing::{block_on, json_response, FakeClock, ScriptedHttp};

    fn cfg(instance_id: &str) -> ConnectConfig {
        ConnectConfig {
            instance_id: instance_id.into(),
            region: "us-east-1".into(),
            endpoint: "https://connect.us-east-1.amazonaws.com".into(),
            aws: Credentials {
                access_key_id: "AKIDEXAMPLE".into(),
                secret_access_key: "secret".into(),
                session_token: None,
            },
        }
    }

    #[test]
    fn ids_that_are_not_plain_identifiers_never_reach_a_url() {
        let (http, clock) = (ScriptedHttp::default(), FakeClock::at(1_700_000_000_000));
        let good = cfg("11111111-2222-3333-4444-555555555555");
        let c = Connect::new(&good, &http, &clock, 0);
        let d = Desired {
            okta_user_id: "00uANA".into(),
            username: "ana".into(),
            identity: Default::default(),
            profiles: super::super::mapping::Profiles {
                security_profile_ids: vec!["sp-1".into()],
                routing_profile_id: "rp-1".into(),
            },
        };
        for bad_user in ["../x", "u 1", "u/1", "", "u?x=1"] {
            assert_eq!(block_on(c.delete(bad_user)), Err(CallError::InvalidId("user id")), "{bad_user:?}");
            let e = block_on(c.update(bad_user, &d, &[Change::RoutingProfile])).unwrap_err();
            assert_eq!(e, CallError::InvalidId("user id"));
            assert!(!e.is_transient());
            assert_eq!(e.reason(), "CONNECT_INVALID_ID");
        }
        let bad = cfg("inst/../x");
        let c = Connect::new(&bad, &http, &clock, 0);
        assert_eq!(block_on(c.list_page(None)), Err(CallError::InvalidId("instance id")));
        assert_eq!(block_on(c.delete("u-1")), Err(CallError::InvalidId("instance id")));
        assert_eq!(http.count(), 0, "nothing was sent");

        // A plain id goes out as before.
        http.push(Ok(json_response(200, "{}")));
        let c = Connect::new(&good, &http, &clock, 0);
        assert_eq!(block_on(c.delete("u-1")), Ok(()));
        assert_eq!(http.count(), 1);
    }
}
