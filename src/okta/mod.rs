//! The Okta Management API, as the provisioning reads it: an OAuth service app's access token
//! (client credentials with a `private_key_jwt` assertion, cached for the isolate until shortly
//! before it expires), then users, their groups and app assignments.
//!
//! Rate limits: a 429 carries `X-Rate-Limit-Reset` (epoch seconds). When the reset is within the
//! caller's `max_wait_ms` the client sleeps until then and retries; otherwise it returns
//! [`OktaError::RateLimited`] so the caller can come back later (the queue consumer retries the
//! message with that delay). Pagination follows `Link: <…>; rel="next"`, only to the org's own
//! origin (a token is never sent elsewhere), and is bounded.
//!
//! Deliberately absent: any write to Okta. The app only needs `okta.users.read`,
//! `okta.groups.read` and `okta.apps.read`.

pub mod assertion;

use std::cell::{Cell, RefCell};
use std::fmt;

use crate::inflight::InFlight;
use serde::Deserialize;
use serde_json::Value;

use crate::edge::{Clock, FetchError, Http, HttpRequest, HttpResponse};
use crate::retry::{self, Failed, Verdict};
use assertion::{ClientKey, RsaSigner};

/// Default scopes of the service app.
pub const DEFAULT_SCOPES: &str = "okta.users.read okta.groups.read okta.apps.read";
/// A token is replaced this long before Okta says it expires.
pub const TOKEN_REFRESH_MARGIN_MS: u64 = 120_000;
/// Each Okta call's timeout.
pub const CALL_TIMEOUT_MS: u64 = 10_000;
/// Pages followed per listing, at most (a group of 1,000 pages of 1,000 members is beyond any org
/// this Worker is meant for).
pub const MAX_PAGES: usize = 1000;
/// Retries of each call: 5xx, network errors and timeouts after 400 and 800 ms, and a 429 at its
/// reset when that is within the client's `max_wait_ms`; three attempts in all.
const RETRY: retry::Policy = retry::Policy {
    attempts: 3,
    backoff_ms: &[400, 800],
    throttled_ms: &[400, 800],
    jitter_ms: 0,
    min_attempt_ms: 0,
    max_wait_ms: 0,
};

/// How the Worker reaches the org's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OktaApiConfig {
    /// `https://{org}.okta.com` (no path).
    pub org_url: String,
    /// The service app's client id.
    pub client_id: String,
    pub key: ClientKey,
    /// Space-separated scopes requested with each token.
    pub scopes: String,
}

impl OktaApiConfig {
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/v1/token", self.org_url)
    }
}

/// Why an Okta read failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OktaError {
    /// 429 with a reset further away than the caller would wait: try again at `reset_ms`.
    RateLimited { reset_ms: u64 },
    /// 5xx, a network error or a timeout, after retries.
    Unavailable(String),
    /// The token endpoint refused the service app (`invalid_client`, `invalid_scope`, …): a
    /// configuration problem that retrying will not fix.
    TokenRefused(String),
    /// 401 with a fresh token, or 403: the app lacks a scope or an admin role.
    Denied(u16),
    /// A 2xx answer that is not what the API documents.
    Malformed(&'static str),
    /// An id that is not an Okta id ([`is_okta_id`]), refused before it reaches a URL path;
    /// nothing was sent. Names which id, never its value.
    InvalidId(&'static str),
    /// Not sent: the invocation's subrequest budget is spent. A later invocation may succeed.
    BudgetSpent,
}

impl crate::budget::Spent for OktaError {
    fn budget_spent(&self) -> bool {
        *self == OktaError::BudgetSpent
    }
}

impl OktaError {
    pub fn reason(&self) -> &'static str {
        match self {
            OktaError::RateLimited { .. } => "OKTA_RATE_LIMITED",
            OktaError::Unavailable(_) => "OKTA_UNAVAILABLE",
            OktaError::TokenRefused(_) => "OKTA_TOKEN_REFUSED",
            OktaError::Denied(_) => "OKTA_ACCESS_DENIED",
            OktaError::Malformed(_) => "OKTA_MALFORMED_RESPONSE",
            OktaError::InvalidId(_) => "OKTA_INVALID_ID",
            OktaError::BudgetSpent => "SUBREQUEST_BUDGET_SPENT",
        }
    }

    /// Whether a later try may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            OktaError::RateLimited { .. }
                | OktaError::Unavailable(_)
                | OktaError::Malformed(_)
                | OktaError::BudgetSpent
        )
    }
}

impl fmt::Display for OktaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OktaError::RateLimited { reset_ms } => write!(f, "Okta rate limit until {reset_ms} ms"),
            OktaError::Unavailable(why) => write!(f, "Okta unavailable: {why}"),
            OktaError::TokenRefused(why) => write!(f, "Okta token endpoint refused the service app: {why}"),
            OktaError::Denied(status) => {
                write!(f, "Okta answered {status}: the service app lacks a scope or admin role")
            }
            OktaError::Malformed(what) => write!(f, "unexpected Okta answer: {what}"),
            OktaError::InvalidId(what) => write!(f, "Okta request not sent: the {what} is not an Okta id"),
            OktaError::BudgetSpent => write!(f, "Okta request not sent: {}", crate::budget::SPENT),
        }
    }
}

/// The parts of an Okta user the provisioning uses.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct OktaUser {
    pub id: String,
    pub status: String,
    pub login: String,
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserJson {
    id: String,
    status: String,
    profile: ProfileJson,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProfileJson {
    login: String,
    email: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
}

impl From<UserJson> for OktaUser {
    fn from(u: UserJson) -> Self {
        OktaUser {
            id: u.id,
            status: u.status,
            login: u.profile.login,
            email: u.profile.email,
            first_name: u.profile.first_name,
            last_name: u.profile.last_name,
        }
    }
}

/// Okta object ids are short alphanumeric strings; anything else never reaches a URL.
pub fn is_okta_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// An Okta id that may go into a URL path as it is: only made by [`OktaId::new`] (or
/// [`OktaId::of`]), which refuse anything but [`is_okta_id`]. Every URL this client builds takes
/// one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OktaId<'a>(&'a str);

impl<'a> OktaId<'a> {
    pub fn new(id: &'a str) -> Option<Self> {
        is_okta_id(id).then_some(OktaId(id))
    }

    /// The id, or [`OktaError::InvalidId`] naming `what` (never the value): nothing is sent.
    pub fn of(id: &'a str, what: &'static str) -> Result<Self, OktaError> {
        Self::new(id).ok_or(OktaError::InvalidId(what))
    }
}

impl fmt::Display for OktaId<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// What outlives a request: the imported key and the access token (one isolate, many requests).
pub struct Session<K> {
    key: RefCell<Option<K>>,
    token: RefCell<Option<(String, u64)>>,
    /// A token request some unit of work has under way; the others wait for its result on
    /// their own timers (never on its I/O), then ask for themselves.
    refreshing: InFlight,
}

impl<K> Default for Session<K> {
    fn default() -> Self {
        Session { key: RefCell::new(None), token: RefCell::new(None), refreshing: InFlight::default() }
    }
}

impl<K: Clone> Session<K> {
    fn cached_token(&self, now_ms: u64) -> Option<String> {
        self.token.borrow().as_ref().filter(|(_, refresh_at)| now_ms < *refresh_at).map(|(t, _)| t.clone())
    }

    fn forget_token(&self, token: &str) {
        let mut slot = self.token.borrow_mut();
        if slot.as_ref().is_some_and(|(t, _)| t == token) {
            *slot = None;
        }
    }
}

/// A client for one unit of work (a queue batch, a reconciliation), counting its calls.
pub struct OktaApi<'a, H, C, S: RsaSigner> {
    pub cfg: &'a OktaApiConfig,
    pub http: &'a H,
    pub clock: &'a C,
    pub signer: &'a S,
    pub session: &'a Session<S::PrivateKey>,
    /// Longest wait for a rate-limit reset before giving up with [`OktaError::RateLimited`].
    pub max_wait_ms: u64,
    /// API calls made (token requests included).
    pub calls: Cell<u32>,
    /// The rate-limit headers of the latest answer that carried them.
    pub rate: Cell<Option<RateLimit>>,
}

/// What Okta's `X-Rate-Limit-Limit`, `-Remaining` and `-Reset` headers said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    pub limit: u64,
    pub remaining: u64,
    /// Epoch ms.
    pub reset_ms: u64,
}

impl RateLimit {
    fn of(resp: &HttpResponse) -> Option<RateLimit> {
        let n = |name: &str| resp.header(name).and_then(|v| v.trim().parse::<u64>().ok());
        Some(RateLimit {
            limit: n("x-rate-limit-limit")?,
            remaining: n("x-rate-limit-remaining")?,
            reset_ms: n("x-rate-limit-reset")?.saturating_mul(1000),
        })
    }

    /// Under a tenth of the window left: a long job leaves the rest to the org's other clients
    /// (Okta's rate-limit warning fires at 90 % by default) and waits for the reset.
    pub fn nearly_spent(&self) -> bool {
        self.remaining.saturating_mul(10) < self.limit
    }
}

/// One page of a listing and the URL of the next (`Link: rel="next"`, on the org's own API).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub users: Vec<OktaUser>,
    pub next: Option<String>,
}

#[derive(Deserialize)]
struct TokenJson {
    access_token: String,
    expires_in: Option<u64>,
}

/// `rel="next"` of a `Link` header (Okta sends one header with comma-separated links, or several).
pub fn next_link(resp: &HttpResponse) -> Option<String> {
    resp.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("link"))
        .flat_map(|(_, v)| v.split(','))
        .find(|part| part.split(';').skip(1).any(|p| matches!(p.trim(), "rel=\"next\"" | "rel=next")))
        .and_then(|part| part.trim().strip_prefix('<').and_then(|s| s.split_once('>')).map(|(u, _)| u.to_string()))
}

fn form_escape(s: &str) -> String {
    crate::http::percent_encode(s, true)
}

impl<H: Http, C: Clock, S: RsaSigner> OktaApi<'_, H, C, S> {
    fn count(&self) {
        self.calls.set(self.calls.get() + 1);
    }

    /// The rate-limit reset of a 429, in ms (now + 1 s when the header is missing or bad).
    fn reset_ms(&self, resp: &HttpResponse) -> u64 {
        let now = self.clock.now_ms();
        resp.header("x-rate-limit-reset")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| s.saturating_mul(1000))
            .filter(|&r| r > now)
            .unwrap_or(now + 1000)
    }

    /// Sends with retries on 5xx, network errors and timeouts, and waits for a rate-limit reset
    /// within `max_wait_ms` ([`retry::run`]). Any other answer (2xx, 4xx) is returned as is.
    async fn send(&self, make: impl Fn() -> HttpRequest) -> Result<HttpResponse, OktaError> {
        // The wait includes the 100 ms past the reset: a reset up to `max_wait_ms` away is waited out.
        let policy = retry::Policy { max_wait_ms: self.max_wait_ms.saturating_add(100), ..RETRY };
        let tried = retry::run(&policy, self.clock, None, async |_| {
            self.count();
            let answer = self.http.send(make(), CALL_TIMEOUT_MS).await;
            if let Some(rate) = answer.as_ref().ok().and_then(RateLimit::of) {
                self.rate.set(Some(rate));
            }
            match answer {
                // 100 ms past the reset, so that Okta's window has turned.
                Ok(r) if r.status == 429 => {
                    let reset = self.reset_ms(&r);
                    Err(Failed::new(OktaError::RateLimited { reset_ms: reset }, Verdict::RetryAfter(reset + 100)))
                }
                Ok(r) if r.status >= 500 => Err(Failed::new(
                    OktaError::Unavailable(format!("HTTP {}", r.status)),
                    Verdict::Retry(retry::Kind::Transient),
                )),
                Ok(r) => Ok(r),
                Err(FetchError::BudgetSpent) => Err(Failed::last(OktaError::BudgetSpent)),
                Err(e) => {
                    let (why, verdict) = retry::unanswered(&e, retry::Effect::Idempotent);
                    Err(Failed::new(OktaError::Unavailable(why), verdict))
                }
            }
        })
        .await;
        tried.result.map_err(|(e, _)| e)
    }

    /// A valid access token: the cached one, or a new one from the token endpoint.
    pub async fn token(&self) -> Result<String, OktaError> {
        if let Some(t) = self.session.cached_token(self.clock.now_ms()) {
            return Ok(t);
        }
        if self.session.refreshing.busy(self.clock.now_ms()) {
            self.session.refreshing.wait(self.clock, self.clock.now_ms() + CALL_TIMEOUT_MS).await;
            if let Some(t) = self.session.cached_token(self.clock.now_ms()) {
                return Ok(t);
            }
        }
        let _working = self.session.refreshing.start(self.clock.now_ms(), CALL_TIMEOUT_MS);
        let cached = self.session.key.borrow().clone();
        let key = match cached {
            Some(k) => k,
            None => {
                let k = self
                    .signer
                    .import_private(&self.cfg.key)
                    .await
                    .map_err(|e| OktaError::TokenRefused(format!("the private key could not be imported: {e}")))?;
                *self.session.key.borrow_mut() = Some(k.clone());
                k
            }
        };
        let token_url = self.cfg.token_url();
        let now_s = self.clock.now_ms() / 1000;
        let jwt = assertion::assertion(
            self.signer,
            &key,
            self.cfg.key.kid.as_deref(),
            &self.cfg.client_id,
            &token_url,
            now_s,
        )
        .await
        .map_err(|e| OktaError::TokenRefused(format!("could not sign the client assertion: {e}")))?;
        let body = format!(
            "grant_type=client_credentials&scope={}&client_assertion_type={}&client_assertion={}",
            form_escape(&self.cfg.scopes),
            form_escape("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
            jwt
        );
        let request = || HttpRequest {
            method: "POST",
            url: token_url.clone(),
            headers: vec![
                ("content-type".into(), "application/x-www-form-urlencoded".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: body.clone().into_bytes(),
        };
        // One assertion per request: a retry re-sends the same jti, which Okta refuses, so
        // transient failures are not retried here.
        self.count();
        let resp = match self.http.send(request(), CALL_TIMEOUT_MS).await {
            Ok(r) => r,
            Err(FetchError::BudgetSpent) => return Err(OktaError::BudgetSpent),
            Err(e) => return Err(OktaError::Unavailable(format!("token endpoint: {e}"))),
        };
        match resp.status {
            200 => {
                let t: TokenJson =
                    serde_json::from_slice(&resp.body).map_err(|_| OktaError::Malformed("token response"))?;
                if t.access_token.is_empty() || t.access_token.len() > 8192 {
                    return Err(OktaError::Malformed("token response"));
                }
                let lifetime_ms = t.expires_in.unwrap_or(3600).min(24 * 3600) * 1000;
                let refresh_at = self.clock.now_ms() + lifetime_ms.saturating_sub(TOKEN_REFRESH_MARGIN_MS);
                *self.session.token.borrow_mut() = Some((t.access_token.clone(), refresh_at));
                Ok(t.access_token)
            }
            429 => Err(OktaError::RateLimited { reset_ms: self.reset_ms(&resp) }),
            s if s >= 500 => Err(OktaError::Unavailable(format!("token endpoint answered {s}"))),
            s => {
                let code = serde_json::from_slice::<Value>(&resp.body)
                    .ok()
                    .and_then(|v| v.get("error").and_then(Value::as_str).map(String::from))
                    .filter(|c| c.len() <= 64 && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
                    .unwrap_or_else(|| format!("HTTP {s}"));
                Err(OktaError::TokenRefused(code))
            }
        }
    }

    /// GET `url` with the access token. `Ok(None)` on 404. A 401 drops the token and retries once
    /// with a new one.
    async fn get(&self, url: &str) -> Result<Option<HttpResponse>, OktaError> {
        for fresh in [false, true] {
            let token = self.token().await?;
            let auth = format!("Bearer {token}");
            let resp = self
                .send(|| HttpRequest {
                    method: "GET",
                    url: url.to_string(),
                    headers: vec![("authorization".into(), auth.clone()), ("accept".into(), "application/json".into())],
                    body: Vec::new(),
                })
                .await?;
            match resp.status {
                200..=299 => return Ok(Some(resp)),
                404 => return Ok(None),
                401 if !fresh => self.session.forget_token(&token),
                s => return Err(OktaError::Denied(s)),
            }
        }
        Err(OktaError::Denied(401))
    }

    /// `GET /api/v1/users/{id}`; `None` when Okta does not know the user (deleted).
    pub async fn user(&self, id: &str) -> Result<Option<OktaUser>, OktaError> {
        let id = OktaId::of(id, "user id")?;
        let Some(resp) = self.get(&format!("{}/api/v1/users/{id}", self.cfg.org_url)).await? else {
            return Ok(None);
        };
        let u: UserJson = serde_json::from_slice(&resp.body).map_err(|_| OktaError::Malformed("user"))?;
        Ok(Some(u.into()))
    }

    /// `GET /api/v1/apps/{app}/users/{id}`: whether the user is assigned to the app.
    pub async fn is_assigned(&self, app_id: &str, user_id: &str) -> Result<bool, OktaError> {
        let (app_id, user_id) = (OktaId::of(app_id, "app id")?, OktaId::of(user_id, "user id")?);
        let url = format!("{}/api/v1/apps/{app_id}/users/{user_id}", self.cfg.org_url);
        Ok(self.get(&url).await?.is_some())
    }

    /// `GET /api/v1/groups/{id}`: whether the group exists. Checked before any deletion, because
    /// a member listing or a membership check cannot tell a missing group from a non-member.
    pub async fn group_exists(&self, group_id: &str) -> Result<bool, OktaError> {
        let group_id = OktaId::of(group_id, "group id")?;
        Ok(self.get(&format!("{}/api/v1/groups/{group_id}", self.cfg.org_url)).await?.is_some())
    }

    /// `GET /api/v1/apps/{id}`: whether the app exists. Okta answers 404 for a missing app as for a
    /// missing assignment, so [`Self::is_assigned`] alone never proves "not assigned".
    pub async fn app_exists(&self, app_id: &str) -> Result<bool, OktaError> {
        let app_id = OktaId::of(app_id, "app id")?;
        Ok(self.get(&format!("{}/api/v1/apps/{app_id}", self.cfg.org_url)).await?.is_some())
    }

    /// One page of a listing at `url` and the next page's URL; `None` when it is a 404.
    async fn page(&self, url: &str) -> Result<Option<(Vec<Value>, Option<String>)>, OktaError> {
        let Some(resp) = self.get(url).await? else { return Ok(None) };
        let page: Vec<Value> = serde_json::from_slice(&resp.body).map_err(|_| OktaError::Malformed("list page"))?;
        // Only the org's own API: a Link to anywhere else would carry the token away.
        let next = match next_link(&resp) {
            Some(n) if n.starts_with(&format!("{}/api/v1/", self.cfg.org_url)) && !page.is_empty() => Some(n),
            Some(_) if !page.is_empty() => return Err(OktaError::Malformed("a next link outside the org")),
            _ => None,
        };
        Ok(Some((page, next)))
    }

    /// Every page of a listing, from `first`; `None` when the first page is a 404.
    async fn pages(&self, first: String) -> Result<Option<Vec<Value>>, OktaError> {
        let mut items = Vec::new();
        let mut url = Some(first);
        let mut pages = 0;
        while let Some(u) = url.take() {
            pages += 1;
            if pages > MAX_PAGES {
                return Err(OktaError::Malformed("more pages than the bound"));
            }
            let Some((page, next)) = self.page(&u).await? else {
                return if pages == 1 { Ok(None) } else { Err(OktaError::Malformed("a later page is missing")) };
            };
            url = next;
            items.extend(page);
        }
        Ok(Some(items))
    }

    /// The ids of the user's groups (`GET /api/v1/users/{id}/groups`); `None` when the user is
    /// unknown.
    pub async fn group_ids(&self, user_id: &str) -> Result<Option<Vec<String>>, OktaError> {
        let user_id = OktaId::of(user_id, "user id")?;
        let url = format!("{}/api/v1/users/{user_id}/groups", self.cfg.org_url);
        let Some(items) = self.pages(url).await? else { return Ok(None) };
        items
            .iter()
            .map(|g| g.get("id").and_then(Value::as_str).map(String::from).ok_or(OktaError::Malformed("group")))
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// The first page of a group's members (`GET /api/v1/groups/{id}/users`, 200 a page as the
    /// Management API recommends).
    pub fn members_url(&self, group_id: OktaId<'_>) -> String {
        format!("{}/api/v1/groups/{group_id}/users?limit=200", self.cfg.org_url)
    }

    /// The first page of an app's users (`GET /api/v1/apps/{id}/users?expand=user`).
    pub fn app_users_url(&self, app_id: OktaId<'_>) -> String {
        format!("{}/api/v1/apps/{app_id}/users?limit=500&expand=user", self.cfg.org_url)
    }

    /// One page of group members from `url` ([`Self::members_url`] or a page's `next`). A 404
    /// is an error: a configured group must exist.
    pub async fn members_page(&self, url: &str) -> Result<Page, OktaError> {
        let (items, next) = self.page(url).await?.ok_or(OktaError::Malformed("a configured group does not exist"))?;
        let users = items.into_iter().map(|v| user_from(v).ok_or(OktaError::Malformed("group member")));
        Ok(Page { users: users.collect::<Result<_, _>>()?, next })
    }

    /// One page of an app's users from `url` ([`Self::app_users_url`] or a page's `next`). A 404
    /// is an error: a configured app must exist.
    pub async fn app_users_page(&self, url: &str) -> Result<Page, OktaError> {
        let (items, next) = self.page(url).await?.ok_or(OktaError::Malformed("a configured app does not exist"))?;
        let mut users = Vec::with_capacity(items.len());
        for mut item in items {
            if let Some(u) = item.pointer_mut("/_embedded/user").map(Value::take).and_then(user_from) {
                users.push(u);
                continue;
            }
            // Without the embedded user (older orgs), read it.
            let id = item
                .get("id")
                .and_then(Value::as_str)
                .filter(|id| is_okta_id(id))
                .ok_or(OktaError::Malformed("app user"))?;
            if let Some(u) = self.user(id).await? {
                users.push(u);
            }
        }
        Ok(Page { users, next })
    }

    /// Every member of a group (all pages).
    #[cfg(test)]
    pub async fn group_members(&self, group_id: &str) -> Result<Vec<OktaUser>, OktaError> {
        let (mut users, mut url) = (Vec::new(), Some(self.members_url(OktaId::of(group_id, "group id")?)));
        while let Some(u) = url {
            let page = self.members_page(&u).await?;
            users.extend(page.users);
            url = page.next;
        }
        Ok(users)
    }

    /// Every user assigned to an app (all pages).
    #[cfg(test)]
    pub async fn app_users(&self, app_id: &str) -> Result<Vec<OktaUser>, OktaError> {
        let (mut users, mut url) = (Vec::new(), Some(self.app_users_url(OktaId::of(app_id, "app id")?)));
        while let Some(u) = url {
            let page = self.app_users_page(&u).await?;
            users.extend(page.users);
            url = page.next;
        }
        Ok(users)
    }
}

fn user_from(v: Value) -> Option<OktaUser> {
    serde_json::from_value::<UserJson>(v).ok().filter(|u| is_okta_id(&u.id)).map(Into::into)
}

#[cfg(test)]
mod tests;
