use std::rc::Rc;

use serde_json::json;

use super::assertion::{ClientKey, PureRustSigner};
use super::*;
use crate::edge::HttpResponse;
use crate::testing::{block_on, issuer, json_response, FakeClock, ScriptedHttp};

const ORG: &str = "https://example.okta.com";

fn cfg() -> OktaApiConfig {
    OktaApiConfig {
        org_url: ORG.into(),
        client_id: "0oaSERVICE".into(),
        key: ClientKey::parse(&issuer::key_json("a").to_string(), None).unwrap(),
        scopes: DEFAULT_SCOPES.into(),
    }
}

struct Rig {
    cfg: OktaApiConfig,
    http: Rc<ScriptedHttp>,
    clock: Rc<FakeClock>,
    session: Session<<PureRustSigner as RsaSigner>::PrivateKey>,
}

impl Rig {
    fn new() -> Rig {
        Rig {
            cfg: cfg(),
            http: Rc::new(ScriptedHttp::default()),
            clock: Rc::new(FakeClock::at(1_700_000_000_000)),
            session: Session::default(),
        }
    }

    fn api(&self, max_wait_ms: u64) -> OktaApi<'_, Rc<ScriptedHttp>, Rc<FakeClock>, PureRustSigner> {
        self.api_over(&self.http, max_wait_ms)
    }

    /// The client over another `Http` (a metered or yielding wrapper of the rig's).
    fn api_over<'a, H: Http>(&'a self, http: &'a H, max_wait_ms: u64) -> OktaApi<'a, H, Rc<FakeClock>, PureRustSigner> {
        OktaApi {
            cfg: &self.cfg,
            http,
            clock: &self.clock,
            signer: &PureRustSigner,
            session: &self.session,
            max_wait_ms,
            calls: Cell::new(0),
            rate: Cell::new(None),
        }
    }

    fn urls(&self) -> Vec<String> {
        self.http.requests.borrow().iter().map(|(r, _)| r.url.clone()).collect()
    }
}

fn token_ok(expires_in: u64) -> HttpResponse {
    json_response(
        200,
        &json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": "at-1", "scope": DEFAULT_SCOPES})
            .to_string(),
    )
}

fn user_json(id: &str, status: &str) -> String {
    json!({"id": id, "status": status, "profile": {"login": "ana@example.com", "email": "ana@example.com", "firstName": "Ana", "lastName": "García", "mobilePhone": null}}).to_string()
}

fn with_header(mut r: HttpResponse, k: &str, v: &str) -> HttpResponse {
    r.headers.push((k.into(), v.into()));
    r
}

#[test]
fn token_request_is_a_client_credentials_grant_with_a_signed_assertion() {
    let rig = Rig::new();
    rig.http.push(Ok(token_ok(3600)));
    rig.http.push(Ok(json_response(200, &user_json("00uANA", "ACTIVE"))));
    let user = block_on(rig.api(0).user("00uANA")).unwrap().unwrap();
    assert_eq!((user.login.as_str(), user.last_name.as_deref()), ("ana@example.com", Some("García")));
    let reqs = rig.http.requests.borrow();
    let (tok, _) = &reqs[0];
    assert_eq!((tok.method, tok.url.as_str()), ("POST", "https://example.okta.com/oauth2/v1/token"));
    assert_eq!(tok.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = String::from_utf8(tok.body.clone()).unwrap();
    let fields: Vec<(&str, &str)> = form.split('&').map(|kv| kv.split_once('=').unwrap()).collect();
    assert_eq!(fields[0], ("grant_type", "client_credentials"));
    assert_eq!(fields[1], ("scope", "okta.users.read+okta.groups.read+okta.apps.read"));
    assert_eq!(
        fields[2],
        ("client_assertion_type", "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer")
    );
    assert_eq!(fields[3].0, "client_assertion");
    assert_eq!(fields[3].1.split('.').count(), 3);
    let (get, _) = &reqs[1];
    assert_eq!(get.url, "https://example.okta.com/api/v1/users/00uANA");
    assert_eq!(get.header("authorization"), Some("Bearer at-1"));
}

#[test]
fn token_is_cached_until_shortly_before_expiry() {
    let rig = Rig::new();
    rig.http.answer_with(|r| {
        Ok(if r.url.ends_with("/token") { token_ok(3600) } else { json_response(200, &user_json("00uANA", "ACTIVE")) })
    });
    let api = rig.api(0);
    for _ in 0..3 {
        block_on(api.user("00uANA")).unwrap();
    }
    rig.clock.advance(3_600_000 - TOKEN_REFRESH_MARGIN_MS - 1);
    block_on(api.user("00uANA")).unwrap();
    assert_eq!(rig.urls().iter().filter(|u| u.ends_with("/token")).count(), 1);
    rig.clock.advance(2);
    block_on(api.user("00uANA")).unwrap();
    assert_eq!(rig.urls().iter().filter(|u| u.ends_with("/token")).count(), 2, "refreshed before expiry");
    assert_eq!(api.calls.get(), 7);
}

#[test]
fn a_401_fetches_one_new_token_then_gives_up() {
    let rig = Rig::new();
    rig.http.answer_with(|r| Ok(if r.url.ends_with("/token") { token_ok(3600) } else { json_response(401, "{}") }));
    assert_eq!(block_on(rig.api(0).user("00uANA")), Err(OktaError::Denied(401)));
    assert_eq!(rig.urls().iter().filter(|u| u.ends_with("/token")).count(), 2);
}

#[test]
fn token_refusals_are_permanent_and_named() {
    let rig = Rig::new();
    rig.http.push(Ok(json_response(
        401,
        r#"{"error":"invalid_client","error_description":"The client_assertion signature is invalid."}"#,
    )));
    let e = block_on(rig.api(0).user("00uANA")).unwrap_err();
    assert_eq!(e, OktaError::TokenRefused("invalid_client".into()));
    assert!(!e.is_transient());
    rig.http.push(Ok(json_response(400, "<html>")));
    assert_eq!(block_on(rig.api(0).user("00uANA")).unwrap_err(), OktaError::TokenRefused("HTTP 400".into()));
    rig.http.push(Ok(json_response(503, "")));
    assert!(block_on(rig.api(0).user("00uANA")).unwrap_err().is_transient());
}

#[test]
fn rate_limit_waits_for_a_near_reset_and_reports_a_far_one() {
    let rig = Rig::new();
    let now_s = 1_700_000_000;
    rig.http.push(Ok(token_ok(3600)));
    rig.http.push(Ok(with_header(json_response(429, "{}"), "X-Rate-Limit-Reset", &(now_s + 3).to_string())));
    rig.http.push(Ok(json_response(200, &user_json("00uANA", "ACTIVE"))));
    block_on(rig.api(5_000).user("00uANA")).unwrap();
    assert!(rig.clock.now_ms() >= (now_s + 3) * 1000, "slept until the reset");

    let reset = rig.clock.now_ms() / 1000 + 120;
    rig.http.push(Ok(with_header(json_response(429, "{}"), "x-rate-limit-reset", &reset.to_string())));
    assert_eq!(block_on(rig.api(5_000).user("00uANA")), Err(OktaError::RateLimited { reset_ms: reset * 1000 }));
}

#[test]
fn server_errors_are_retried_then_reported() {
    let rig = Rig::new();
    rig.http.push(Ok(token_ok(3600)));
    rig.http.push(Ok(json_response(502, "")));
    rig.http.push(Err(FetchError::Timeout));
    rig.http.push(Ok(json_response(200, &user_json("00uANA", "SUSPENDED"))));
    assert_eq!(block_on(rig.api(0).user("00uANA")).unwrap().unwrap().status, "SUSPENDED");
    for _ in 0..3 {
        rig.http.push(Ok(json_response(500, "")));
    }
    assert_eq!(block_on(rig.api(0).user("00uANA")), Err(OktaError::Unavailable("HTTP 500".into())));
}

#[test]
fn not_found_is_a_value_and_garbage_is_malformed() {
    let rig = Rig::new();
    rig.http.push(Ok(token_ok(3600)));
    rig.http.push(Ok(json_response(404, r#"{"errorCode":"E0000007"}"#)));
    rig.http.push(Ok(json_response(404, r#"{"errorCode":"E0000007"}"#)));
    rig.http.push(Ok(json_response(200, "[]")));
    rig.http.push(Ok(json_response(200, r#"{"id":"00u"}"#)));
    let api = rig.api(0);
    assert_eq!(block_on(api.user("00uGONE")), Ok(None));
    assert_eq!(block_on(api.is_assigned("0oaAPP", "00uANA")), Ok(false));
    assert_eq!(block_on(api.is_assigned("0oaAPP", "00uANA")), Ok(true));
    assert_eq!(block_on(api.user("00uANA")), Err(OktaError::Malformed("user")));
}

#[test]
fn listings_follow_next_links_on_the_org_only() {
    let rig = Rig::new();
    rig.http.push(Ok(token_ok(3600)));
    let page = |ids: &[&str], next: Option<&str>| {
        let users: Vec<serde_json::Value> =
            ids.iter().map(|id| serde_json::from_str(&user_json(id, "ACTIVE")).unwrap()).collect();
        let mut r = json_response(200, &serde_json::Value::Array(users).to_string());
        let mut link = format!("<{ORG}/api/v1/groups/00gA/users?limit=1000>; rel=\"self\"");
        if let Some(n) = next {
            link.push_str(&format!(", <{n}>; rel=\"next\""));
        }
        r.headers.push(("link".into(), link));
        r
    };
    rig.http.push(Ok(page(&["00u1", "00u2"], Some(&format!("{ORG}/api/v1/groups/00gA/users?after=00u2&limit=1000")))));
    rig.http.push(Ok(page(&["00u3"], None)));
    let members = block_on(rig.api(0).group_members("00gA")).unwrap();
    assert_eq!(members.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(), ["00u1", "00u2", "00u3"]);
    assert_eq!(rig.urls()[2], format!("{ORG}/api/v1/groups/00gA/users?after=00u2&limit=1000"));

    rig.http.push(Ok(page(&["00u1"], Some("https://evil.example/api/v1/groups/00gA/users?after=x"))));
    assert_eq!(block_on(rig.api(0).group_members("00gA")), Err(OktaError::Malformed("a next link outside the org")));
    assert!(rig.urls().iter().all(|u| !u.contains("evil")), "the token never goes elsewhere");

    rig.http.push(Ok(json_response(404, "{}")));
    assert!(
        block_on(rig.api(0).group_members("00gMISSING")).is_err(),
        "a configured group that does not exist is an error"
    );
}

#[test]
fn app_users_use_the_embedded_user_or_read_it() {
    let rig = Rig::new();
    rig.http.push(Ok(token_ok(3600)));
    let embedded: serde_json::Value = serde_json::from_str(&user_json("00u1", "ACTIVE")).unwrap();
    rig.http.push(Ok(json_response(
        200,
        &json!([{"id": "00u1", "scope": "USER", "_embedded": {"user": embedded}}, {"id": "00u2", "scope": "GROUP"}])
            .to_string(),
    )));
    rig.http.push(Ok(json_response(200, &user_json("00u2", "SUSPENDED"))));
    let users = block_on(rig.api(0).app_users("0oaAPP")).unwrap();
    assert_eq!(
        users.iter().map(|u| (u.id.as_str(), u.status.as_str())).collect::<Vec<_>>(),
        [("00u1", "ACTIVE"), ("00u2", "SUSPENDED")]
    );
    assert!(rig.urls()[1].ends_with("/api/v1/apps/0oaAPP/users?limit=500&expand=user"));
}

#[test]
fn link_header_parsing() {
    let mut r = json_response(200, "[]");
    r.headers.push(("Link".into(), "<https://o/api/v1/x?a=1>; rel=\"self\"".into()));
    assert_eq!(next_link(&r), None);
    r.headers.push(("Link".into(), "<https://o/api/v1/x?after=2>; rel=\"next\"".into()));
    assert_eq!(next_link(&r).as_deref(), Some("https://o/api/v1/x?after=2"));
}

#[test]
fn okta_ids() {
    assert!(is_okta_id("00u1a2b3c4d5e6f7g8h9"));
    for bad in ["", "00u/../x", "00u?x", "00u x", &"a".repeat(65)] {
        assert!(!is_okta_id(bad));
    }
}

#[test]
fn concurrent_units_of_work_share_the_token_not_the_refresh() {
    // Two queue batches at a cold start: the second waits on its own timer while the first asks
    // for a token, then uses it. Neither awaits the other's request.
    let rig = Rig::new();
    rig.http.answer_with(|r| {
        Ok(if r.url.ends_with("/token") { token_ok(3600) } else { json_response(200, &user_json("00uANA", "ACTIVE")) })
    });
    let http = crate::testing::Yielding(rig.http.clone());
    let (a, b) = (rig.api_over(&http, 0), rig.api_over(&http, 0));
    let (ra, rb) = block_on(futures_util::future::join(a.user("00uANA"), b.user("00uANA")));
    assert!(ra.is_ok() && rb.is_ok());
    assert_eq!(rig.urls().iter().filter(|u| u.ends_with("/token")).count(), 1);
}

#[test]
fn a_unit_dropped_mid_refresh_does_not_hold_up_the_next() {
    use futures_util::FutureExt;
    let rig = Rig::new();
    rig.http.answer_with(|r| {
        Ok(if r.url.ends_with("/token") { token_ok(3600) } else { json_response(200, &user_json("00uANA", "ACTIVE")) })
    });
    let http = crate::testing::Yielding(rig.http.clone());
    let api = OktaApi {
        cfg: &rig.cfg,
        http: &http,
        clock: &rig.clock,
        signer: &PureRustSigner,
        session: &rig.session,
        max_wait_ms: 0,
        calls: Cell::new(0),
        rate: Cell::new(None),
    };
    assert!(api.user("00uANA").now_or_never().is_none(), "polled once, then cancelled mid-refresh");
    let started = rig.clock.now_ms();
    assert!(block_on(api.user("00uANA")).is_ok());
    assert!(rig.clock.now_ms() - started < 100, "no wait for the cancelled refresh");
}

#[test]
fn a_user_id_that_is_not_an_okta_id_is_refused_before_any_request() {
    let rig = Rig::new();
    for bad in ["00u/../apps", "00u ANA", "", "00u?x=1"] {
        let e = block_on(rig.api(0).user(bad)).unwrap_err();
        assert_eq!(e, OktaError::InvalidId("user id"), "{bad:?}");
        assert!(!e.is_transient());
        assert_eq!(e.reason(), "OKTA_INVALID_ID");
    }
    assert!(rig.urls().is_empty(), "nothing was sent, not even a token request");
}

#[test]
fn every_id_in_a_url_path_is_checked_before_any_request() {
    let rig = Rig::new();
    let api = rig.api(0);
    let bad = "00g/../users";
    assert_eq!(block_on(api.group_exists(bad)).unwrap_err(), OktaError::InvalidId("group id"));
    assert_eq!(block_on(api.app_exists(bad)).unwrap_err(), OktaError::InvalidId("app id"));
    assert_eq!(block_on(api.group_ids(bad)).unwrap_err(), OktaError::InvalidId("user id"));
    assert_eq!(block_on(api.is_assigned("0oa1app", bad)).unwrap_err(), OktaError::InvalidId("user id"));
    assert_eq!(block_on(api.is_assigned(bad, "00u1ana")).unwrap_err(), OktaError::InvalidId("app id"));
    assert_eq!(block_on(api.group_members(bad)).unwrap_err(), OktaError::InvalidId("group id"));
    assert_eq!(block_on(api.app_users(bad)).unwrap_err(), OktaError::InvalidId("app id"));
    assert_eq!(OktaId::new("00g1connectgrp000x1").map(|id| id.to_string()).as_deref(), Some("00g1connectgrp000x1"));
    assert!(rig.urls().is_empty(), "nothing was sent, not even a token request");
}

#[test]
fn a_token_request_refused_by_the_budget_is_a_budget_refusal() {
    let rig = Rig::new();
    let budget = crate::budget::Budget::new(0);
    let metered = crate::budget::Metered { inner: &rig.http, budget: &budget };
    let e = block_on(rig.api_over(&metered, 0).user("00u1ana")).unwrap_err();
    assert_eq!(e, OktaError::BudgetSpent, "not Unavailable: the reconciliation yields on it");
    assert!(crate::budget::Spent::budget_spent(&e));
    assert!(rig.urls().is_empty());
}
