//! The consumer and the reconciliation against an in-memory Okta org and Connect instance served
//! through `ScriptedHttp`.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use serde_json::{json, Value};

use super::client::Change;
use super::client::{MANAGED_TAG, MANAGED_VALUE, OKTA_USER_TAG};
use super::config::{tests::settings, ProvisioningConfig};
use super::reconcile::{self, job, job::mem::MemJobStore, job::Stepped};
use super::*;
use crate::edge::{HttpRequest, HttpResponse};
use crate::okta::assertion::PureRustSigner;
use crate::testing::{block_on, json_response, FakeClock, MemDurable, ScriptedHttp};

#[derive(Default)]
struct World {
    users: BTreeMap<String, Value>,
    groups: BTreeMap<String, Vec<String>>,
    apps: BTreeMap<String, Vec<String>>,
    connect: Vec<Value>,
    next_id: u32,
    /// (operation, answer) consumed by the first matching Connect call.
    connect_faults: VecDeque<(&'static str, HttpResponse)>,
    okta_faults: VecDeque<HttpResponse>,
    /// Okta's rate-limit headers on every answer: (limit, remaining, reset epoch s).
    okta_rate: Option<(u64, u64, u64)>,
    log: Vec<String>,
}

impl World {
    fn add_user(&mut self, id: &str, login: &str, status: &str) {
        self.users.insert(
            id.into(),
            json!({"id": id, "status": status, "profile": {"login": login, "email": login, "firstName": "First", "lastName": id}}),
        );
    }

    fn connect_user(&self, username: &str) -> Option<&Value> {
        self.connect.iter().find(|u| u["Username"] == username)
    }

    fn ops(&self) -> Vec<&str> {
        self.log.iter().map(String::as_str).collect()
    }
}

fn aws_error(status: u16, code: &str) -> HttpResponse {
    let mut r = json_response(status, &json!({"Message": "mock"}).to_string());
    r.headers.push(("x-amzn-ErrorType".into(), code.into()));
    r
}

fn serve(world: Rc<RefCell<World>>, req: &HttpRequest) -> HttpResponse {
    let mut w = world.borrow_mut();
    let url = req.url.clone();
    if let Some(path) = url.strip_prefix("https://example.okta.com") {
        if path == "/oauth2/v1/token" {
            return json_response(200, r#"{"token_type":"Bearer","expires_in":3600,"access_token":"at"}"#);
        }
        w.log.push(format!("okta {path}"));
        if let Some(f) = w.okta_faults.pop_front() {
            return f;
        }
        if let Some((limit, remaining, reset)) = w.okta_rate {
            let mut r = serve_okta(&w, path);
            r.headers.push(("x-rate-limit-limit".into(), limit.to_string()));
            r.headers.push(("x-rate-limit-remaining".into(), remaining.to_string()));
            r.headers.push(("x-rate-limit-reset".into(), reset.to_string()));
            return r;
        }
        return serve_okta(&w, path);
    }
    serve_connect(&mut w, req, &url)
}

fn serve_okta(w: &World, path: &str) -> HttpResponse {
    let path = path.split('?').next().unwrap();
    let parts: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let users = |ids: &[String], w: &World| Value::Array(ids.iter().filter_map(|i| w.users.get(i).cloned()).collect());
    match parts.as_slice() {
        ["users", id] => w.users.get(*id).map_or(json_response(404, "{}"), |u| json_response(200, &u.to_string())),
        ["users", id, "groups"] => {
            let gs: Vec<Value> =
                w.groups.iter().filter(|(_, m)| m.iter().any(|u| u == id)).map(|(g, _)| json!({"id": g})).collect();
            json_response(200, &Value::Array(gs).to_string())
        }
        ["groups", g] => {
            w.groups.get(*g).map_or(json_response(404, "{}"), |_| json_response(200, &json!({"id": g}).to_string()))
        }
        ["apps", a] => {
            w.apps.get(*a).map_or(json_response(404, "{}"), |_| json_response(200, &json!({"id": a}).to_string()))
        }
        ["groups", g, "users"] => {
            w.groups.get(*g).map_or(json_response(404, "{}"), |m| json_response(200, &users(m, w).to_string()))
        }
        ["apps", a, "users"] => w.apps.get(*a).map_or(json_response(404, "{}"), |m| {
            let items: Vec<Value> = m
                .iter()
                .filter_map(|u| w.users.get(u))
                .map(|u| json!({"id": u["id"], "_embedded": {"user": u}}))
                .collect();
            json_response(200, &Value::Array(items).to_string())
        }),
        ["apps", a, "users", u] => {
            if w.apps.get(*a).is_some_and(|m| m.iter().any(|x| x == u)) {
                json_response(200, &json!({"id": u}).to_string())
            } else {
                json_response(404, "{}")
            }
        }
        _ => json_response(404, "{}"),
    }
}

const INSTANCE: &str = "11111111-2222-3333-4444-555555555555";

fn serve_connect(w: &mut World, req: &HttpRequest, url: &str) -> HttpResponse {
    let path = url.strip_prefix("https://connect.us-east-1.amazonaws.com").expect("only Okta and Connect");
    assert!(req.header("authorization").is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")), "signed");
    let body: Value = if req.body.is_empty() { Value::Null } else { serde_json::from_slice(&req.body).unwrap() };
    let op = match (req.method, path) {
        ("POST", "/search-users") => "SearchUsers",
        ("GET", p) if p.starts_with("/users-summary/") => "ListUsers",
        ("PUT", _) => "CreateUser",
        ("DELETE", _) => "DeleteUser",
        ("POST", p) if p.ends_with("/security-profiles") => "UpdateUserSecurityProfiles",
        ("POST", p) if p.ends_with("/routing-profile") => "UpdateUserRoutingProfile",
        ("POST", p) if p.ends_with("/identity-info") => "UpdateUserIdentityInfo",
        ("POST", p) if p.starts_with("/tags/") => "TagResource",
        other => panic!("unexpected Connect call {other:?}"),
    };
    w.log.push(op.to_string());
    if let Some(i) = w.connect_faults.iter().position(|(o, _)| *o == op) {
        return w.connect_faults.remove(i).unwrap().1;
    }
    let user_id = path.split('/').nth(3).map(String::from);
    match op {
        "SearchUsers" => {
            let found: Vec<Value> = w
                .connect
                .iter()
                .filter(|u| match (&body["SearchCriteria"], &body["SearchFilter"]) {
                    // Case-insensitive on purpose: the client must compare usernames itself.
                    (Value::Object(c), _) => u["Username"]
                        .as_str()
                        .unwrap()
                        .eq_ignore_ascii_case(c["StringCondition"]["Value"].as_str().unwrap()),
                    (_, Value::Object(f)) => {
                        let t = &f["TagFilter"]["TagCondition"];
                        u["Tags"][t["TagKey"].as_str().unwrap()] == t["TagValue"]
                    }
                    _ => true,
                })
                .cloned()
                .collect();
            json_response(200, &json!({"Users": found, "ApproximateTotalCount": found.len()}).to_string())
        }
        "ListUsers" => {
            let arn = |id: &Value| {
                format!("arn:aws:connect:us-east-1:111122223333:instance/{INSTANCE}/agent/{}", id.as_str().unwrap())
            };
            let all: Vec<Value> = w
                .connect
                .iter()
                .map(|u| json!({"Id": u["Id"], "Arn": arn(&u["Id"]), "Username": u["Username"]}))
                .collect();
            json_response(200, &json!({"UserSummaryList": all}).to_string())
        }
        "CreateUser" => {
            if w.connect.iter().any(|u| u["Username"] == body["Username"]) {
                return aws_error(409, "DuplicateResourceException");
            }
            w.next_id += 1;
            let id = format!("c-{}", w.next_id);
            let mut u = body.clone();
            u["Id"] = id.clone().into();
            w.connect.push(u);
            json_response(200, &json!({"UserId": id, "UserArn": format!("arn:agent/{id}")}).to_string())
        }
        "DeleteUser" => {
            let before = w.connect.len();
            w.connect.retain(|u| Some(u["Id"].as_str().unwrap().to_string()) != user_id);
            if w.connect.len() == before {
                aws_error(404, "ResourceNotFoundException")
            } else {
                json_response(200, "")
            }
        }
        "TagResource" => {
            let arn = path.trim_start_matches("/tags/").replace("%3A", ":").replace("%2F", "/");
            let id = arn.rsplit('/').next().unwrap().to_string();
            let Some(u) = w.connect.iter_mut().find(|u| u["Id"] == id.as_str()) else {
                return aws_error(404, "ResourceNotFoundException");
            };
            for (k, v) in body["tags"].as_object().unwrap() {
                u["Tags"][k] = v.clone();
            }
            json_response(200, "")
        }
        _ => {
            let Some(u) = w.connect.iter_mut().find(|u| Some(u["Id"].as_str().unwrap().to_string()) == user_id) else {
                return aws_error(404, "ResourceNotFoundException");
            };
            for (k, v) in body.as_object().unwrap() {
                u[k] = v.clone();
            }
            json_response(200, "")
        }
    }
}

struct Rig {
    cfg: ProvisioningConfig,
    world: Rc<RefCell<World>>,
    http: Rc<ScriptedHttp>,
    clock: Rc<FakeClock>,
    session: Session<<PureRustSigner as RsaSigner>::PrivateKey>,
    ledger: MemDurable,
    sources: SourcesCache,
}

impl Rig {
    fn new() -> Rig {
        let world = Rc::new(RefCell::new(World::default()));
        {
            let mut w = world.borrow_mut();
            w.groups.insert("00gAGENTS".into(), vec![]);
            w.groups.insert("00gSUPERVISORS".into(), vec![]);
            w.groups.insert("00gQUALITY".into(), vec![]);
            w.apps.insert("0oaCONNECT".into(), vec![]);
        }
        let http = Rc::new(ScriptedHttp::default());
        let w = world.clone();
        http.answer_with(move |r| Ok(serve(w.clone(), r)));
        let cfg = ProvisioningConfig::from_source(&settings()).unwrap();
        let clock = Rc::new(FakeClock::at(1_700_000_000_000));
        let ledger = MemDurable::new(clock.clone());
        Rig { cfg, world, http, clock, session: Session::default(), ledger, sources: SourcesCache::default() }
    }

    fn edge(&self) -> ProvisioningEdge<'_, Rc<ScriptedHttp>, Rc<FakeClock>, PureRustSigner, MemDurable> {
        ProvisioningEdge {
            http: &self.http,
            clock: &self.clock,
            signer: &PureRustSigner,
            session: &self.session,
            ledger: &self.ledger,
            sources: &self.sources,
        }
    }

    fn batch(&self, msgs: &[(&str, &str, u32)]) -> BatchOutcome {
        let incoming: Vec<Incoming> = msgs
            .iter()
            .enumerate()
            .map(|(i, (user, ty, attempts))| Incoming {
                id: format!("m{i}"),
                body: json!({"uuid": format!("u{i}"), "eventType": ty, "userId": user}).to_string(),
                attempts: *attempts,
            })
            .collect();
        block_on(handle_batch(Ok(&self.cfg), &self.edge(), &incoming))
    }

    fn in_group(&self, g: &str, u: &str) {
        self.world.borrow_mut().groups.get_mut(g).unwrap().push(u.into());
    }
}

fn actions(out: &BatchOutcome) -> Vec<String> {
    out.logs
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["action"].as_str().unwrap_or("-").to_string())
        .collect()
}

#[test]
fn a_member_gets_a_tagged_soft_phone_user_with_mapped_profiles() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "Ana.Garcia@example.com", "ACTIVE");
    rig.in_group("00gSUPERVISORS", "00uANA");
    rig.in_group("00gQUALITY", "00uANA");
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(out.dispositions, vec![("m0".to_string(), Disposition::Ack)]);
    assert_eq!(actions(&out), ["created"]);
    let w = rig.world.borrow();
    let u = w.connect_user("Ana.Garcia@example.com").unwrap();
    assert_eq!(u["SecurityProfileIds"], json!(["sp-agent", "sp-quality", "sp-supervisor"]));
    assert_eq!(u["RoutingProfileId"], "rp-escalations");
    assert_eq!(u["PhoneConfig"], json!({"PhoneType": "SOFT_PHONE"}));
    assert_eq!(u["IdentityInfo"], json!({"FirstName": "First", "LastName": "00uANA"}));
    assert_eq!(u["Tags"], json!({MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: "00uANA"}));
}

#[test]
fn duplicate_and_repeated_events_converge_to_one_user() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1), ("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(out.logs.len(), 1, "one convergence per user per batch");
    assert!(out.dispositions.iter().all(|(_, d)| *d == Disposition::Ack));
    let again = rig.batch(&[("00uANA", "application.user_membership.add", 2)]);
    assert_eq!(actions(&again), ["unchanged"]);
    let w = rig.world.borrow();
    assert_eq!(w.connect.len(), 1);
    assert_eq!(w.ops().iter().filter(|o| **o == "CreateUser").count(), 1);
}

#[test]
fn out_of_order_events_follow_oktas_current_state() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    // Okta state: removed from the group. The add event arrives last.
    let out = rig.batch(&[("00uANA", "group.user_membership.remove", 1), ("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(actions(&out), ["absent"]);
    assert!(rig.world.borrow().connect.is_empty());
    rig.in_group("00gAGENTS", "00uANA");
    assert_eq!(
        actions(&rig.batch(&[("00uANA", "group.user_membership.remove", 1)])),
        ["created"],
        "state, not event type"
    );
}

#[test]
fn losing_access_deletes_only_our_users() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    rig.world.borrow_mut().users.get_mut("00uANA").unwrap()["status"] = "SUSPENDED".into();
    let out = rig.batch(&[("00uANA", "user.lifecycle.suspend", 1)]);
    assert_eq!(actions(&out), ["deleted"]);
    assert!(rig.world.borrow().connect.is_empty());
    // Someone else's user carrying the Okta id but not our managedBy tag is never touched.
    rig.world
        .borrow_mut()
        .connect
        .push(json!({"Id": "c-x", "Username": "ana@example.com", "Tags": {OKTA_USER_TAG: "00uANA"}}));
    rig.world.borrow_mut().users.remove("00uANA");
    assert_eq!(actions(&rig.batch(&[("00uANA", "user.lifecycle.delete.initiated", 1)])), ["absent"]);
    assert_eq!(rig.world.borrow().connect.len(), 1);
}

#[test]
fn an_unmanaged_user_with_the_username_is_left_alone() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.world
        .borrow_mut()
        .connect
        .push(json!({"Id": "c-admin", "Username": "ana@example.com", "SecurityProfileIds": ["sp-admin"], "Tags": {}}));
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(actions(&out), ["conflict"]);
    assert_eq!(out.dispositions[0].1, Disposition::Ack);
    assert!(out.logs[0].contains("UNMANAGED_USER_EXISTS"));
    assert_eq!(rig.world.borrow().connect[0]["SecurityProfileIds"], json!(["sp-admin"]));
    assert!(!rig.world.borrow().ops().iter().any(|o| o.starts_with("Update") || *o == "DeleteUser"));
}

#[test]
fn a_case_variant_username_is_a_different_user() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "Ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.world.borrow_mut().connect.push(json!({"Id": "c-other", "Username": "ana@example.com", "Tags": {}}));
    assert_eq!(actions(&rig.batch(&[("00uANA", "group.user_membership.add", 1)])), ["created"]);
    assert!(rig.world.borrow().connect_user("Ana@example.com").is_some());
}

#[test]
fn drift_is_converged_with_the_update_calls() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    rig.in_group("00gSUPERVISORS", "00uANA");
    rig.world.borrow_mut().users.get_mut("00uANA").unwrap()["profile"]["firstName"] = "Ana".into();
    let out = rig.batch(&[("00uANA", "user.account.update_profile", 1)]);
    let log: Value = serde_json::from_str(&out.logs[0]).unwrap();
    assert_eq!(log["action"], "updated");
    assert_eq!(log["changes"], json!(["securityProfiles", "routingProfile", "identityInfo"]));
    let w = rig.world.borrow();
    let u = w.connect_user("ana@example.com").unwrap();
    assert_eq!(u["SecurityProfileIds"], json!(["sp-agent", "sp-supervisor"]));
    assert_eq!(u["RoutingProfileId"], "rp-escalations");
    assert_eq!(u["IdentityInfo"]["FirstName"], "Ana");
}

#[test]
fn a_renamed_login_replaces_the_old_user() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@old.example", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    rig.world.borrow_mut().users.get_mut("00uANA").unwrap()["profile"]["login"] = "ana@new.example".into();
    let out = rig.batch(&[("00uANA", "user.account.update_profile", 1)]);
    let log: Value = serde_json::from_str(&out.logs[0]).unwrap();
    assert_eq!((log["action"].as_str(), log["deleted"].as_u64()), (Some("created"), Some(1)));
    let w = rig.world.borrow();
    assert_eq!(w.connect.iter().map(|u| u["Username"].as_str().unwrap()).collect::<Vec<_>>(), ["ana@new.example"]);
}

#[test]
fn app_assignment_grants_the_default_profiles() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uBOB", "bob@example.com", "ACTIVE");
    rig.world.borrow_mut().apps.get_mut("0oaCONNECT").unwrap().push("00uBOB".into());
    assert_eq!(actions(&rig.batch(&[("00uBOB", "application.user_membership.add", 1)])), ["created"]);
    let w = rig.world.borrow();
    let u = w.connect_user("bob@example.com").unwrap();
    assert_eq!(
        (u["SecurityProfileIds"].clone(), u["RoutingProfileId"].clone()),
        (json!(["sp-agent"]), json!("rp-basic"))
    );
}

#[test]
fn a_409_race_converges_the_existing_user() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    // Another consumer creates the user between our search and our create.
    let mut dup = aws_error(409, "DuplicateResourceException");
    dup.status = 409;
    rig.world.borrow_mut().connect_faults.push_back(("CreateUser", dup));
    rig.world.borrow_mut().connect.push(json!({"Id": "c-race", "Username": "someone-else", "Tags": {}}));
    {
        // Arrange for the racing user to appear when CreateUser answers 409.
        let w = rig.world.clone();
        let inner = rig.http.fallback.borrow_mut().take().unwrap();
        rig.http.answer_with(move |r| {
            let resp = inner(r);
            if r.method == "PUT" && resp.as_ref().is_ok_and(|x| x.status == 409) {
                w.borrow_mut().connect.push(
                    json!({"Id": "c-9", "Username": "ana@example.com", "SecurityProfileIds": ["sp-agent"],
                    "RoutingProfileId": "rp-old", "IdentityInfo": {"FirstName": "First", "LastName": "00uANA"},
                    "Tags": {MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: "00uANA"}}),
                );
            }
            resp
        });
    }
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    let log: Value = serde_json::from_str(&out.logs[0]).unwrap();
    assert_eq!((log["action"].as_str(), log["connectUserId"].as_str()), (Some("updated"), Some("c-9")));
    assert_eq!(log["changes"], json!(["routingProfile"]));
    assert_eq!(rig.world.borrow().connect.iter().filter(|u| u["Username"] == "ana@example.com").count(), 1);
}

#[test]
fn throttling_and_server_errors_are_retried_inside_the_call() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.world.borrow_mut().connect_faults.push_back(("CreateUser", aws_error(429, "ThrottlingException")));
    rig.world.borrow_mut().connect_faults.push_back(("CreateUser", aws_error(500, "InternalServiceException")));
    assert_eq!(actions(&rig.batch(&[("00uANA", "group.user_membership.add", 1)])), ["created"]);
    assert_eq!(rig.world.borrow().ops().iter().filter(|o| **o == "CreateUser").count(), 3);
}

#[test]
fn persistent_failures_retry_with_backoff_then_dead_letter() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    for _ in 0..8 {
        rig.world.borrow_mut().connect_faults.push_back(("SearchUsers", aws_error(503, "ServiceUnavailable")));
    }
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 2)]);
    assert_eq!(out.dispositions[0].1, Disposition::Retry { delay_s: 60 }, "30 s doubled for the 2nd attempt");
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 5)]);
    let Disposition::DeadLetter { body } = &out.dispositions[0].1 else { panic!("{:?}", out.dispositions) };
    let dead: Value = serde_json::from_str(body).unwrap();
    assert_eq!((dead["reason"].as_str(), dead["attempts"].as_u64()), (Some("CONNECT_UNAVAILABLE"), Some(5)));
    assert_eq!(dead["message"]["userId"], "00uANA");
    let log: Value = serde_json::from_str(&out.logs[0]).unwrap();
    assert_eq!((log["level"].as_str(), log["outcome"].as_str()), (Some("error"), Some("dead-letter")));
}

#[test]
fn permanent_failures_dead_letter_at_once() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.world.borrow_mut().connect_faults.push_back(("CreateUser", aws_error(400, "InvalidParameterException")));
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    assert!(matches!(&out.dispositions[0].1, Disposition::DeadLetter { body } if body.contains("CONNECT_REJECTED")));
    // An Okta user whose login Connect cannot take.
    rig.world.borrow_mut().add_user("00uBAD", "bad login", "ACTIVE");
    rig.in_group("00gAGENTS", "00uBAD");
    let out = rig.batch(&[("00uBAD", "group.user_membership.add", 1)]);
    assert!(matches!(&out.dispositions[0].1, Disposition::DeadLetter { body } if body.contains("INVALID_USERNAME")));
}

#[test]
fn okta_rate_limit_far_away_becomes_the_retry_delay() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    let reset_s = 1_700_000_000 + 600;
    let mut r = json_response(429, "{}");
    r.headers.push(("X-Rate-Limit-Reset".into(), reset_s.to_string()));
    rig.world.borrow_mut().okta_faults.push_back(r);
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(out.dispositions[0].1, Disposition::Retry { delay_s: 600 });
    assert!(out.logs[0].contains("OKTA_RATE_LIMITED"));
}

#[test]
fn poison_messages_do_not_hold_back_the_others() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    let batch = vec![
        Incoming { id: "bad-json".into(), body: "\"not an object\"".into(), attempts: 1 },
        Incoming {
            id: "bad-id".into(),
            body: json!({"uuid": "x", "eventType": "e", "userId": "../admin"}).to_string(),
            attempts: 1,
        },
        Incoming {
            id: "good".into(),
            body: json!({"uuid": "y", "eventType": "group.user_membership.add", "userId": "00uANA"}).to_string(),
            attempts: 1,
        },
    ];
    let out = block_on(handle_batch(Ok(&rig.cfg), &rig.edge(), &batch));
    assert!(
        matches!(out.disposition("bad-json"), Some(Disposition::DeadLetter { body }) if body.contains("MALFORMED_MESSAGE"))
    );
    assert!(matches!(out.disposition("bad-id"), Some(Disposition::DeadLetter { .. })));
    assert_eq!(out.disposition("good"), Some(&Disposition::Ack));
    assert!(!rig.world.borrow().ops().iter().any(|o| o.contains("..")), "a bad id never reaches a URL");
}

#[test]
fn a_misconfiguration_retries_then_dead_letters() {
    let rig = Rig::new();
    let err = crate::settings::bad("CONNECT_INSTANCE_ID", "required");
    let batch = vec![
        Incoming { id: "a".into(), body: "{}".into(), attempts: 1 },
        Incoming { id: "b".into(), body: "{}".into(), attempts: 5 },
    ];
    let out = block_on(handle_batch(Err(&err), &rig.edge(), &batch));
    assert_eq!(out.disposition("a"), Some(&Disposition::Retry { delay_s: 60 }));
    assert!(matches!(out.disposition("b"), Some(Disposition::DeadLetter { body }) if body.contains("NOT_CONFIGURED")));
    assert_eq!(out.alerts.len(), 1);
}

#[test]
fn backoff() {
    assert_eq!(backoff_s(30, 1, None, 0), 30);
    assert_eq!(backoff_s(30, 3, None, 0), 120);
    assert_eq!(backoff_s(30, 30, None, 0), 3600);
    assert_eq!(backoff_s(0, 3, Some(10_500), 1_000), 10);
    assert_eq!(backoff_s(30, 1, Some(100_000), 0), 100);
}

// ---- reconciliation ------------------------------------------------------------------------------

/// Runs a reconciliation job to its end, alarm after alarm (the clock jumps to each alarm).
fn run_job(
    rig: &Rig,
    cfg: &ProvisioningConfig,
    dry_run: bool,
    trigger: &str,
) -> (reconcile::ReconcileReport, Vec<Stepped>) {
    let store = MemJobStore::default();
    let start = json!({"op": "start", "dryRun": dry_run, "trigger": trigger}).to_string();
    let served = job::serve(&store, &start, rig.clock.now_ms()).unwrap();
    assert_eq!(served.status, 202, "{}", served.body);
    let mut steps = Vec::new();
    for _ in 0..10_000 {
        let stepped = block_on(job::step(Ok(cfg.clone()), &rig.edge(), &store)).unwrap();
        let next = stepped.next_at;
        steps.push(stepped);
        match next {
            None => break,
            Some(t) if t > rig.clock.now_ms() => rig.clock.advance(t - rig.clock.now_ms()),
            Some(_) => {}
        }
    }
    let status: Value = serde_json::from_str(&job::serve(&store, r#"{"op":"status"}"#, 0).unwrap().body).unwrap();
    assert_eq!(status["state"], "idle", "the run ended");
    (serde_json::from_value(status["last"].clone()).unwrap(), steps)
}

fn reconcile(rig: &Rig, dry_run: bool) -> reconcile::ReconcileReport {
    run_job(rig, &rig.cfg, dry_run, "admin").0
}

fn seed_drifted_world(rig: &Rig) {
    let mut w = rig.world.borrow_mut();
    for (id, login) in [("00u1", "one@example.com"), ("00u2", "two@example.com"), ("00u3", "three@example.com")] {
        w.add_user(id, login, "ACTIVE");
        w.groups.get_mut("00gAGENTS").unwrap().push(id.into());
    }
    w.add_user("00u4", "four@example.com", "SUSPENDED");
    w.groups.get_mut("00gAGENTS").unwrap().push("00u4".into());
    let tags = |id: &str| json!({MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: id});
    // two: drifted routing profile; three: in sync; orphan: no longer in Okta; four: suspended.
    w.connect.push(json!({"Id": "c-2", "Username": "two@example.com", "SecurityProfileIds": ["sp-agent"], "RoutingProfileId": "rp-old",
        "IdentityInfo": {"FirstName": "First", "LastName": "00u2"}, "Tags": tags("00u2")}));
    w.connect.push(json!({"Id": "c-3", "Username": "three@example.com", "SecurityProfileIds": ["sp-agent"], "RoutingProfileId": "rp-sales",
        "IdentityInfo": {"FirstName": "First", "LastName": "00u3"}, "Tags": tags("00u3")}));
    w.connect.push(json!({"Id": "c-9", "Username": "orphan@example.com", "Tags": tags("00u9")}));
    w.connect.push(json!({"Id": "c-4", "Username": "four@example.com", "Tags": tags("00u4")}));
    w.connect.push(json!({"Id": "c-admin", "Username": "admin", "Tags": {}}));
}

#[test]
fn reconciliation_creates_updates_and_deletes() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let r = reconcile(&rig, false);
    assert!(r.ok, "{r:?}");
    assert_eq!((r.planned.create, r.planned.update, r.planned.delete, r.planned.unchanged), (1, 1, 2, 1));
    assert_eq!(r.applied, reconcile::Counts { create: 1, update: 1, delete: 2, ..Default::default() });
    assert_eq!((r.okta.users, r.connect.users), (3, 4));
    let w = rig.world.borrow();
    let mut names: Vec<&str> = w.connect.iter().map(|u| u["Username"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["admin", "one@example.com", "three@example.com", "two@example.com"]);
    assert_eq!(w.connect_user("two@example.com").unwrap()["RoutingProfileId"], "rp-sales");
    let update = r.changes.iter().find(|c| c.action == "update").unwrap();
    assert_eq!((update.fields.clone(), update.result.as_str()), (vec![Change::RoutingProfile], "done"));
    drop(w);
    let again = reconcile(&rig, false);
    assert_eq!((again.planned.unchanged, again.applied), (3, reconcile::Counts::default()), "idempotent");
}

#[test]
fn a_dry_run_changes_nothing() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let before = rig.world.borrow().connect.clone();
    let r = reconcile(&rig, true);
    assert!(r.ok && r.dry_run);
    assert_eq!((r.planned.create, r.planned.update, r.planned.delete), (1, 1, 2));
    assert_eq!(r.applied, reconcile::Counts::default());
    assert!(r.changes.iter().all(|c| c.result == "planned"));
    assert_eq!(rig.world.borrow().connect, before);
    let w = rig.world.borrow();
    assert!(
        w.ops().iter().all(|o| o.starts_with("okta") || matches!(*o, "SearchUsers" | "ListUsers")),
        "{:?}",
        w.ops()
    );
}

#[test]
fn mass_deletion_is_held_back() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    rig.world.borrow_mut().groups.get_mut("00gAGENTS").unwrap().clear();
    let mut cfg = rig.cfg.clone();
    cfg.reconcile_max_deletes = 2;
    let r = run_job(&rig, &cfg, false, "cron").0;
    assert!(!r.ok);
    assert_eq!((r.planned.delete, r.deletes_held, r.applied.delete), (4, 4, 0));
    assert!(r.error.unwrap().contains("RECONCILE_MAX_DELETES"));
    assert_eq!(rig.world.borrow().connect.len(), 5);
}

#[test]
fn a_failed_listing_changes_nothing() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    rig.world.borrow_mut().groups.remove("00gQUALITY");
    let r = reconcile(&rig, false);
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("listing Okta failed"));
    let read = |o: &&str| o.starts_with("okta") || matches!(*o, "SearchUsers" | "ListUsers");
    assert!(rig.world.borrow().ops().iter().all(read), "nothing written to Connect");
}

#[test]
fn reconciliation_paces_connect_calls() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let t0 = rig.clock.now_ms();
    let r = reconcile(&rig, false);
    // 5 rps: at least 200 ms between consecutive Connect calls.
    assert!(rig.clock.now_ms() - t0 >= u64::from(r.connect.calls - 1) * 200, "{} calls", r.connect.calls);
}

#[test]
fn dry_run_flag() {
    for yes in ["https://w/admin/provisioning/reconcile?dryRun=true", "https://w/x?a=1&dry_run=1", "https://w/x?dryRun"]
    {
        assert!(reconcile::dry_run_requested(yes), "{yes}");
    }
    for no in ["https://w/x", "https://w/x?dryRun=false", "https://w/x?dryRunX=true", "https://w/x#dryRun=true"] {
        assert!(!reconcile::dry_run_requested(no), "{no}");
    }
}

fn managed(id: &str, username: &str, owner: &str) -> Value {
    json!({"Id": id, "Username": username, "SecurityProfileIds": ["sp-agent"], "RoutingProfileId": "rp-sales",
           "IdentityInfo": {"FirstName": "First", "LastName": owner}, "Tags": {MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: owner}})
}

fn writes(rig: &Rig) -> Vec<String> {
    let w = rig.world.borrow();
    w.ops()
        .iter()
        .filter(|o| o.starts_with("Update") || matches!(**o, "CreateUser" | "DeleteUser"))
        .map(|o| o.to_string())
        .collect()
}

#[test]
fn a_reused_login_never_takes_over_another_okta_users_connect_user() {
    let rig = Rig::new();
    // Bob's Connect user; Bob's login was changed in Okta and Amy was given his old one.
    rig.world.borrow_mut().connect.push(managed("c-bob", "bob@example.com", "00uBOB"));
    rig.world.borrow_mut().add_user("00uBOB", "robert@example.com", "ACTIVE");
    rig.world.borrow_mut().add_user("00uAMY", "bob@example.com", "ACTIVE");
    rig.in_group("00gSUPERVISORS", "00uAMY");
    let out = rig.batch(&[("00uAMY", "group.user_membership.add", 1)]);
    assert_eq!(actions(&out), ["conflict"]);
    assert_eq!(out.dispositions[0].1, Disposition::Ack);
    assert!(out.logs[0].contains(OWNED_BY_ANOTHER_OKTA_USER), "{}", out.logs[0]);
    assert!(
        out.alerts.iter().any(|a| a.contains("00uAMY") && a.contains(OWNED_BY_ANOTHER_OKTA_USER)),
        "{:?}",
        out.alerts
    );
    assert_eq!(rig.world.borrow().connect, vec![managed("c-bob", "bob@example.com", "00uBOB")], "Bob's user untouched");
    assert!(writes(&rig).is_empty());
    // Amy losing access later deletes nothing of Bob's either (deletion goes by her own tag).
    rig.world.borrow_mut().groups.get_mut("00gSUPERVISORS").unwrap().clear();
    assert_eq!(actions(&rig.batch(&[("00uAMY", "group.user_membership.remove", 1)])), ["absent"]);
    assert_eq!(rig.world.borrow().connect.len(), 1);
}

#[test]
fn the_reconciliation_plans_conflicts_for_other_owners_and_unmanaged_holders() {
    let rig = Rig::new();
    {
        let mut w = rig.world.borrow_mut();
        w.connect.push(managed("c-bob", "bob@example.com", "00uBOB"));
        w.connect.push(json!({"Id": "c-hand", "Username": "carol@example.com", "Tags": {}}));
        w.add_user("00uBOB", "bob@example.com", "ACTIVE");
        w.add_user("00uAMY", "bob@example.com", "ACTIVE");
        w.add_user("00uCAROL", "carol@example.com", "ACTIVE");
        for u in ["00uBOB", "00uAMY", "00uCAROL"] {
            w.groups.get_mut("00gAGENTS").unwrap().push(u.into());
        }
    }
    let dry = reconcile(&rig, true);
    assert_eq!((dry.planned.create, dry.planned.delete, dry.planned.conflict), (0, 0, 2), "{:?}", dry.changes);
    let reasons: Vec<_> = dry.changes.iter().filter_map(|c| c.reason.as_deref()).collect();
    assert!(reasons.iter().any(|r| r.contains(UNMANAGED_USER_EXISTS)), "{reasons:?}");
    assert!(reasons.iter().any(|r| r.contains("another Okta user maps to the same username")), "{reasons:?}");
    let real = reconcile(&rig, false);
    assert_eq!(real.planned.conflict, 2);
    assert!(writes(&rig).is_empty(), "no run writes for a conflict: {:?}", writes(&rig));

    // Amy alone wants Bob's username (Bob renamed): a conflict for Amy; Bob's rename moves his own user.
    rig.world.borrow_mut().users.get_mut("00uBOB").unwrap()["profile"]["login"] = "robert@example.com".into();
    let r = reconcile(&rig, true);
    let amy = r.changes.iter().find(|c| c.okta_user_id.as_deref() == Some("00uAMY")).unwrap();
    assert!(amy.reason.as_deref().unwrap().contains(OWNED_BY_ANOTHER_OKTA_USER), "{amy:?}");
    let bob: Vec<_> =
        r.changes.iter().filter(|c| c.okta_user_id.as_deref() == Some("00uBOB")).map(|c| c.action).collect();
    assert_eq!(bob, ["delete", "create"]);
}

#[test]
fn a_deleted_app_stops_every_deletion_and_alerts() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.world.borrow_mut().apps.get_mut("0oaCONNECT").unwrap().push("00uANA".into());
    assert_eq!(actions(&rig.batch(&[("00uANA", "application.user_membership.add", 1)])), ["created"]);
    // The app is deleted (or recreated with a new id): every assignment check now answers 404.
    rig.world.borrow_mut().apps.remove("0oaCONNECT");
    let out = rig.batch(&[("00uANA", "user.account.update_profile", 1)]);
    assert!(
        matches!(out.dispositions[0].1, Disposition::Retry { delay_s } if delay_s >= 600),
        "{:?}",
        out.dispositions
    );
    assert!(out.logs[0].contains("DELETION_HELD_SOURCE_MISSING"), "{}", out.logs[0]);
    assert!(out.alerts.iter().any(|a| a.contains("0oaCONNECT") && a.contains("does not exist")), "{:?}", out.alerts);
    assert_eq!(rig.world.borrow().connect.len(), 1);
    assert!(!writes(&rig).contains(&"DeleteUser".to_string()));
    // Out of attempts, the message is parked in the dead-letter queue with the hold's reason.
    let last = rig.batch(&[("00uANA", "user.account.update_profile", rig.cfg.max_attempts)]);
    assert!(
        matches!(&last.dispositions[0].1, Disposition::DeadLetter { body } if body.contains("DELETION_HELD_SOURCE_MISSING"))
    );
}

#[test]
fn a_deleted_group_stops_every_deletion() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    rig.world.borrow_mut().groups.remove("00gAGENTS");
    let out = rig.batch(&[("00uANA", "group.user_membership.remove", 1)]);
    assert!(
        out.logs[0].contains("DELETION_HELD_SOURCE_MISSING") && out.logs[0].contains("00gAGENTS"),
        "{}",
        out.logs[0]
    );
    assert_eq!(rig.world.borrow().connect.len(), 1);
}

#[test]
fn deletions_over_the_hourly_budget_are_held_and_released_later() {
    let mut rig = Rig::new();
    rig.cfg.max_deletes_per_hour = 2;
    rig.cfg.subrequest_budget = 10_000; // four users in one invocation
    let ids = ["00u1", "00u2", "00u3", "00u4"];
    for id in ids {
        rig.world.borrow_mut().add_user(id, &format!("{id}@example.com"), "ACTIVE");
        rig.in_group("00gAGENTS", id);
    }
    let adds: Vec<_> = ids.iter().map(|id| (*id, "group.user_membership.add", 1)).collect();
    rig.batch(&adds);
    assert_eq!(rig.world.borrow().connect.len(), 4);
    rig.world.borrow_mut().groups.get_mut("00gAGENTS").unwrap().clear();
    let removes: Vec<_> = ids.iter().map(|id| (*id, "group.user_membership.remove", 1)).collect();
    let out = rig.batch(&removes);
    let acked = out.dispositions.iter().filter(|(_, d)| *d == Disposition::Ack).count();
    let held: Vec<_> = out
        .dispositions
        .iter()
        .filter_map(|(_, d)| match d {
            Disposition::Retry { delay_s } => Some(*delay_s),
            _ => None,
        })
        .collect();
    assert_eq!((acked, held.len()), (2, 2), "{:?}", out.dispositions);
    assert!(held.iter().all(|d| *d >= 1), "{held:?}");
    assert_eq!(rig.world.borrow().connect.len(), 2, "two deleted, two held");
    assert!(out.alerts.iter().any(|a| a.contains("PROVISIONING_MAX_DELETES_PER_HOUR")), "{:?}", out.alerts);
    // Once the spent hour has slid out of the window (at most two buckets), the held ones go through.
    rig.clock.advance(2 * 3_600_000);
    let left: Vec<_> = ids
        .iter()
        .filter(|id| rig.world.borrow().connect.iter().any(|u| u["Tags"][OKTA_USER_TAG] == **id))
        .map(|id| (*id, "group.user_membership.remove", 2))
        .collect();
    let later = rig.batch(&left);
    assert!(later.dispositions.iter().all(|(_, d)| *d == Disposition::Ack), "{:?}", later.dispositions);
    assert!(rig.world.borrow().connect.is_empty());
}

#[test]
fn no_deletion_without_the_budget_object() {
    let rig = Rig::new();
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    rig.world.borrow_mut().groups.get_mut("00gAGENTS").unwrap().clear();
    rig.ledger.fail.set(true);
    let out = rig.batch(&[("00uANA", "group.user_membership.remove", 1)]);
    assert!(out.logs[0].contains("DELETION_HELD_BUDGET_UNAVAILABLE"), "{}", out.logs[0]);
    assert!(matches!(out.dispositions[0].1, Disposition::Retry { .. }));
    assert_eq!(rig.world.borrow().connect.len(), 1);
}

#[test]
fn the_reconciliation_shares_the_deletion_budget() {
    let mut rig = Rig::new();
    seed_drifted_world(&rig);
    rig.cfg.max_deletes_per_hour = 1;
    let r = reconcile(&rig, false);
    assert_eq!((r.planned.delete, r.applied.delete, r.deletes_held), (2, 1, 1), "{:?}", r.changes);
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("DELETION_HELD_BUDGET_SPENT"), "{:?}", r.error);
    let held = r.changes.iter().find(|c| c.result == "held").unwrap();
    assert_eq!(held.action, "delete");
    // The consumer finds the hour spent too.
    rig.world.borrow_mut().add_user("00uX", "x@example.com", "ACTIVE");
    rig.world.borrow_mut().connect.push(managed("c-x", "x@example.com", "00uX"));
    let out = rig.batch(&[("00uX", "group.user_membership.remove", 1)]);
    assert!(out.logs[0].contains("DELETION_HELD_BUDGET_SPENT"), "{}", out.logs[0]);
}

#[test]
fn a_bulk_message_is_split_into_one_message_per_user() {
    let rig = Rig::new();
    let bulk = json!({"uuid": "e1+2", "eventType": "user.account.update_profile", "userId": "00uA", "users": ["00uB", "00uC"]});
    let out = block_on(handle_batch(
        Ok(&rig.cfg),
        &rig.edge(),
        &[Incoming { id: "m0".into(), body: bulk.to_string(), attempts: 1 }],
    ));
    let Some(Disposition::Requeue { bodies }) = out.disposition("m0") else { panic!("{:?}", out.dispositions) };
    let users: Vec<String> = bodies
        .iter()
        .map(|b| serde_json::from_str::<QueueMessage>(b).unwrap())
        .inspect(|m| assert!(m.users.is_empty() && m.event_type == "user.account.update_profile"))
        .map(|m| m.user_id)
        .collect();
    assert_eq!(users, ["00uA", "00uB", "00uC"]);
    assert_eq!(rig.http.count(), 0, "splitting calls nobody");
    // A bulk message naming a non-Okta id is poison as a whole.
    let bad = json!({"uuid": "e2", "eventType": "x", "userId": "00uA", "users": ["../etc"]});
    let out = block_on(handle_batch(
        Ok(&rig.cfg),
        &rig.edge(),
        &[Incoming { id: "m1".into(), body: bad.to_string(), attempts: 1 }],
    ));
    assert!(matches!(out.disposition("m1"), Some(Disposition::DeadLetter { .. })));
}

#[test]
fn a_batch_stays_within_the_subrequest_budget() {
    let mut rig = Rig::new();
    rig.cfg.subrequest_budget = 30;
    let ids: Vec<String> = (0..10).map(|i| format!("00uB{i}")).collect();
    for id in &ids {
        rig.world.borrow_mut().add_user(id, &format!("{id}@example.com"), "ACTIVE");
        rig.in_group("00gAGENTS", id);
    }
    let msgs: Vec<_> = ids.iter().map(|id| (id.as_str(), "group.user_membership.add", 1)).collect();
    let out = rig.batch(&msgs);
    assert!(rig.http.count() <= 30, "{} subrequests", rig.http.count());
    let requeued = out.dispositions.iter().filter(|(_, d)| matches!(d, Disposition::Requeue { .. })).count();
    let acked = out.dispositions.iter().filter(|(_, d)| *d == Disposition::Ack).count();
    assert_eq!((acked, requeued), (2, 8), "(30 - 7) / 11 users admitted: {:?}", out.dispositions);
    assert_eq!(rig.world.borrow().connect.len(), 2);
    // A requeued message goes back exactly as it came.
    let Some(Disposition::Requeue { bodies }) = out.disposition("m9") else { panic!() };
    assert_eq!(serde_json::from_str::<Value>(&bodies[0]).unwrap()["userId"], "00uB9");
}

#[test]
fn retries_never_pass_the_budget_mid_user() {
    let mut rig = Rig::new();
    rig.cfg.subrequest_budget = 6;
    rig.world.borrow_mut().add_user("00uANA", "ana@example.com", "ACTIVE");
    rig.in_group("00gAGENTS", "00uANA");
    for _ in 0..8 {
        rig.world.borrow_mut().connect_faults.push_back(("SearchUsers", aws_error(500, "InternalServiceException")));
    }
    let out = rig.batch(&[("00uANA", "group.user_membership.add", 1)]);
    assert_eq!(rig.http.count(), 6, "token, user, groups, then three tries of SearchUsers; the fourth never left");
    assert!(matches!(out.dispositions[0].1, Disposition::Retry { .. }), "{:?}", out.dispositions);
    assert!(out.logs[0].contains("WORKER_SUBREQUEST_BUDGET"), "{}", out.logs[0]);
}

#[test]
fn the_reconciliation_continues_across_invocations_within_the_subrequest_budget() {
    let mut rig = Rig::new();
    seed_drifted_world(&rig);
    rig.cfg.subrequest_budget = 10;
    let (r, steps) = run_job(&rig, &rig.cfg, false, "admin");
    assert!(r.ok, "{r:?}");
    assert_eq!(r.applied, reconcile::Counts { create: 1, update: 1, delete: 2, ..Default::default() });
    // Listing takes 7 (token, three groups, the app, the tag search, ListUsers), the changes more:
    // more than one invocation, none past the budget.
    assert!(steps.len() >= 2, "{} invocations", steps.len());
    let used: Vec<u64> = steps
        .iter()
        .flat_map(|s| &s.logs)
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["msg"] == "provisioning-reconcile-step")
        .map(|l| l["subrequests"].as_u64().unwrap())
        .collect();
    assert_eq!(used.len(), steps.len());
    assert!(used.iter().all(|&n| n <= 10), "{used:?}");
    let calls = rig.http.count() + rig.ledger.calls.get();
    assert_eq!(used.iter().sum::<u64>() as usize, calls, "every call counted (the deletion budget's too)");
    let again = reconcile(&rig, true);
    assert_eq!((again.planned.create, again.planned.update, again.planned.delete), (0, 0, 0));
    // Too small for one unit of work (a create): the run fails and says what to do.
    rig.world.borrow_mut().add_user("00u5", "five@example.com", "ACTIVE");
    rig.world.borrow_mut().groups.get_mut("00gAGENTS").unwrap().push("00u5".into());
    rig.cfg.subrequest_budget = 1;
    let (r, _) = run_job(&rig, &rig.cfg, false, "admin");
    assert!(r.error.as_deref().unwrap().contains("raise it"), "{:?}", r.error);
}

#[test]
fn splitting_bulk_messages_stays_within_the_budget() {
    let mut rig = Rig::new();
    rig.cfg.subrequest_budget = 12;
    let bulk = |i: usize| {
        let users: Vec<String> = (0..299).map(|u| format!("00uM{i}x{u}")).collect();
        json!({"uuid": format!("e{i}"), "eventType": "group.user_membership.add", "userId": format!("00uM{i}"), "users": users})
    };
    // Each splits into 300 messages: 3 sends. The batch holds 3 + 4 sources; 12 leaves room for one.
    let batch: Vec<Incoming> =
        (0..3).map(|i| Incoming { id: format!("m{i}"), body: bulk(i).to_string(), attempts: 1 }).collect();
    let out = block_on(handle_batch(Ok(&rig.cfg), &rig.edge(), &batch));
    let kinds: Vec<&str> = out
        .dispositions
        .iter()
        .map(|(_, d)| match d {
            Disposition::Requeue { .. } => "requeue",
            Disposition::Retry { .. } => "retry",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["requeue", "retry", "retry"]);
}

// ---- the reconciliation job: one run at a time, rate limits, adoption, replays -----------------

fn start(store: &MemJobStore, rig: &Rig, dry_run: bool) -> job::Served {
    let start = json!({"op": "start", "dryRun": dry_run, "trigger": "admin"}).to_string();
    job::serve(store, &start, rig.clock.now_ms()).unwrap()
}

fn status(store: &MemJobStore) -> Value {
    serde_json::from_str(&job::serve(store, r#"{"op":"status"}"#, 0).unwrap().body).unwrap()
}

#[test]
fn one_run_at_a_time_and_a_cancel_ends_it() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let store = MemJobStore::default();
    let first = start(&store, &rig, false);
    assert_eq!((first.status, first.alarm_at), (202, Some(rig.clock.now_ms())));
    let again = start(&store, &rig, true);
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("RECONCILE_IN_PROGRESS") && again.body.contains(r#""state":"running""#));
    assert_eq!(status(&store)["run"]["phase"], "listing-connect-managed");
    let cancelled = job::serve(&store, r#"{"op":"cancel"}"#, rig.clock.now_ms()).unwrap();
    assert_eq!(cancelled.status, 200);
    let s = status(&store);
    assert_eq!(s["state"], "idle");
    assert!(s["last"]["error"].as_str().unwrap().contains("cancelled"), "{s}");
    // Its alarm finds nothing to do and writes nothing.
    let stepped = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store)).unwrap();
    assert_eq!(stepped, Stepped::default());
    assert_eq!(rig.http.count(), 0);
    assert_eq!(start(&store, &rig, false).status, 202, "a new run may start");
}

#[test]
fn a_run_unfinished_after_a_day_gives_way_to_a_new_one() {
    let rig = Rig::new();
    let store = MemJobStore::default();
    assert_eq!(start(&store, &rig, false).status, 202);
    rig.clock.advance(job::MAX_RUN_MS + 1);
    assert_eq!(start(&store, &rig, true).status, 202);
    let s = status(&store);
    assert!(s["last"]["error"].as_str().unwrap().starts_with("RECONCILE_STALLED"), "{s}");
    assert_eq!(s["run"]["dryRun"], true);
}

#[test]
fn okta_rate_limits_are_waited_out_between_invocations() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let now_s = rig.clock.now_ms() / 1000;
    // A 429 on the first page: the invocation ends, the next alarm is at the reset.
    let mut limited = json_response(429, "{}");
    limited.headers.push(("x-rate-limit-reset".into(), (now_s + 45).to_string()));
    rig.world.borrow_mut().okta_faults.push_back(limited);
    let store = MemJobStore::default();
    start(&store, &rig, false);
    let t0 = rig.clock.now_ms();
    let stepped = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store)).unwrap();
    assert_eq!(stepped.next_at, Some((now_s + 45) * 1000 + 1000));
    assert!(rig.clock.now_ms() - t0 < 1_000, "no sleeping for the reset inside the invocation (Connect's pacing only)");
    assert_eq!(status(&store)["run"]["waiting"], "OKTA_RATE_LIMITED");
    // An alarm that fires early does nothing.
    let early = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store)).unwrap();
    assert_eq!(early.next_at, stepped.next_at);
    let calls = rig.http.count();
    // Under a tenth of the window left: the job pauses until the reset, the org keeps the rest.
    rig.clock.advance(stepped.next_at.unwrap() - rig.clock.now_ms());
    let reset = rig.clock.now_ms() / 1000 + 30;
    rig.world.borrow_mut().okta_rate = Some((600, 40, reset));
    let paused = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store)).unwrap();
    assert_eq!(paused.next_at, Some(reset * 1000 + 1000));
    assert_eq!(rig.http.count(), calls + 1, "one page, then the pause");
    assert_eq!(status(&store)["run"]["waiting"], "OKTA_RATE_LIMIT_NEARLY_SPENT");
    rig.world.borrow_mut().okta_rate = Some((600, 500, reset));
    let (r, _) = (finish_job(&rig, &store), ());
    assert!(r.ok, "{r:?}");
    assert_eq!(r.applied, reconcile::Counts { create: 1, update: 1, delete: 2, ..Default::default() });
}

/// Steps the run under way in `store` to its end; the last report.
fn finish_job(rig: &Rig, store: &MemJobStore) -> reconcile::ReconcileReport {
    for _ in 0..1000 {
        let stepped = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), store)).unwrap();
        match stepped.next_at {
            None => break,
            Some(t) if t > rig.clock.now_ms() => rig.clock.advance(t - rig.clock.now_ms()),
            Some(_) => {}
        }
    }
    serde_json::from_value(status(store)["last"].clone()).unwrap()
}

#[test]
fn a_listing_okta_cannot_answer_is_retried_then_fails_unchanged() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    for _ in 0..30 {
        rig.world.borrow_mut().okta_faults.push_back(json_response(503, "{}"));
    }
    let store = MemJobStore::default();
    start(&store, &rig, false);
    let r = finish_job(&rig, &store);
    assert!(!r.ok);
    assert!(r.error.as_deref().unwrap().contains("listing Okta failed, nothing changed"), "{:?}", r.error);
    let read = |o: &&str| o.starts_with("okta") || matches!(*o, "SearchUsers" | "ListUsers");
    assert!(rig.world.borrow().ops().iter().all(read), "nothing written to Connect");
}

#[test]
fn adoption_is_off_by_default_and_tags_only_when_switched_on() {
    let mut rig = Rig::new();
    {
        let mut w = rig.world.borrow_mut();
        w.add_user("00u1", "one@example.com", "ACTIVE");
        w.groups.get_mut("00gAGENTS").unwrap().push("00u1".into());
        w.connect.push(json!({"Id": "c-hand", "Username": "one@example.com", "Tags": {}}));
    }
    let off = reconcile(&rig, false);
    assert_eq!((off.planned.conflict, off.planned.adopt, off.applied.adopt), (1, 0, 0));
    assert!(!rig.world.borrow().ops().contains(&"TagResource"));
    rig.cfg.adopt_existing = true;
    let dry = reconcile(&rig, true);
    assert_eq!((dry.planned.adopt, dry.planned.conflict, dry.applied.adopt), (1, 0, 0), "{dry:?}");
    let planned = dry.changes.iter().find(|c| c.action == "adopt").unwrap();
    assert_eq!((planned.connect_user_id.as_deref(), planned.result.as_str()), (Some("c-hand"), "planned"));
    assert!(!rig.world.borrow().ops().contains(&"TagResource"), "a dry run tags nothing");
    let real = reconcile(&rig, false);
    assert!(real.ok && real.applied.adopt == 1, "{real:?}");
    let w = rig.world.borrow();
    let u = w.connect_user("one@example.com").unwrap();
    assert_eq!(u["Tags"], json!({MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: "00u1"}));
    assert_eq!(u["RoutingProfileId"], "rp-sales", "every field set after the tag");
    drop(w);
    let again = reconcile(&rig, false);
    assert_eq!((again.planned.unchanged, again.planned.adopt), (1, 0), "managed from then on");
}

#[test]
fn a_replayed_create_that_finds_its_own_user_counts_as_done() {
    let rig = Rig::new();
    {
        let mut w = rig.world.borrow_mut();
        w.add_user("00u1", "one@example.com", "ACTIVE");
        w.groups.get_mut("00gAGENTS").unwrap().push("00u1".into());
    }
    let store = MemJobStore::default();
    start(&store, &rig, false);
    // Step until the plan exists, then create the user behind the job's back, as an invocation
    // that died after CreateUser would have.
    let mut tight = rig.cfg.clone();
    tight.subrequest_budget = 8; // the listing's 7, not the create's 3
    block_on(job::step(Ok(tight), &rig.edge(), &store)).unwrap();
    assert_eq!(status(&store)["run"]["phase"], "applying");
    rig.world.borrow_mut().connect.push(json!({"Id": "c-mine", "Username": "one@example.com",
        "Tags": {MANAGED_TAG: MANAGED_VALUE, OKTA_USER_TAG: "00u1"}}));
    let r = finish_job(&rig, &store);
    assert!(r.ok, "{r:?}");
    assert_eq!((r.applied.create, r.applied.conflict), (1, 0));
    assert_eq!(rig.world.borrow().connect.len(), 1);
}

#[test]
fn a_cancel_that_lands_mid_invocation_stops_it_and_nothing_of_it_is_saved() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let store = Rc::new(MemJobStore::default());
    start(&store, &rig, false);
    // The cancel arrives while the invocation awaits its first Connect listing call.
    let (w, s, cancelled) = (rig.world.clone(), store.clone(), Rc::new(std::cell::Cell::new(false)));
    let flag = cancelled.clone();
    rig.http.answer_with(move |r| {
        if r.url.contains("/search-users") && !flag.replace(true) {
            assert_eq!(job::serve(&*s, r#"{"op":"cancel"}"#, 0).unwrap().status, 200);
        }
        Ok(serve(w.clone(), r))
    });
    let stepped = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &*store)).unwrap();
    assert!(cancelled.get());
    assert_eq!(stepped, Stepped::default(), "no next alarm");
    let s = status(&store);
    assert_eq!(s["state"], "idle", "the cancelled run is not saved again: {s}");
    assert!(s["last"]["error"].as_str().unwrap().contains("cancelled"));
    assert!(store.plan.borrow().is_empty());
    assert!(!rig.world.borrow().ops().iter().any(|o| o.starts_with("Create") || o.starts_with("Delete")));
}

#[test]
fn an_invocation_that_dies_after_planning_is_replayed_from_the_plan_not_from_half_the_listing() {
    let rig = Rig::new();
    seed_drifted_world(&rig);
    let store = MemJobStore::default();
    start(&store, &rig, false);
    // The first invocation lists Connect and one Okta page, then pauses for Okta's window.
    let reset = rig.clock.now_ms() / 1000 + 30;
    rig.world.borrow_mut().okta_rate = Some((600, 10, reset));
    let paused = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store)).unwrap();
    assert_eq!(status(&store)["run"]["waiting"], "OKTA_RATE_LIMIT_NEARLY_SPENT");
    rig.world.borrow_mut().okta_rate = None;
    rig.clock.advance(paused.next_at.unwrap() - rig.clock.now_ms());
    // The next one lists the rest, plans, and dies at its first Connect write.
    let (w, died) = (rig.world.clone(), Rc::new(std::cell::Cell::new(false)));
    let flag = died.clone();
    rig.http.answer_with(move |r| {
        if r.method == "PUT" && !flag.replace(true) {
            panic!("the invocation dies here");
        }
        Ok(serve(w.clone(), r))
    });
    let dead = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &store))
    }));
    assert!(dead.is_err() && died.get());
    assert_eq!(status(&store)["run"]["phase"], "applying", "the plan was saved with its rows");
    let r = finish_job(&rig, &store);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.applied, reconcile::Counts { create: 1, update: 1, delete: 2, ..Default::default() });
    let w = rig.world.borrow();
    assert!(w.connect_user("two@example.com").is_some() && w.connect_user("three@example.com").is_some());
}

#[test]
fn adoption_leaves_a_holder_another_tool_tags_managed_by() {
    let mut rig = Rig::new();
    rig.cfg.adopt_existing = true;
    {
        let mut w = rig.world.borrow_mut();
        w.add_user("00u1", "one@example.com", "ACTIVE");
        w.groups.get_mut("00gAGENTS").unwrap().push("00u1".into());
        w.connect.push(json!({"Id": "c-other", "Username": "one@example.com", "Tags": {MANAGED_TAG: "another-tool"}}));
    }
    let r = reconcile(&rig, false);
    assert_eq!((r.planned.adopt, r.applied.adopt, r.applied.conflict), (1, 0, 1), "{r:?}");
    assert!(!rig.world.borrow().ops().contains(&"TagResource"));
    assert_eq!(
        rig.world.borrow().connect_user("one@example.com").unwrap()["Tags"],
        json!({MANAGED_TAG: "another-tool"})
    );
}

#[test]
fn a_deletion_is_skipped_when_its_owner_regained_access_since_the_listing() {
    let rig = Rig::new();
    {
        let mut w = rig.world.borrow_mut();
        w.add_user("00u7", "seven@example.com", "ACTIVE");
        w.connect.push(managed("c-7", "seven@example.com", "00u7"));
    }
    let store = MemJobStore::default();
    start(&store, &rig, false);
    let mut tight = rig.cfg.clone();
    tight.subrequest_budget = 7; // the listing, not the deletion
    block_on(job::step(Ok(tight), &rig.edge(), &store)).unwrap();
    assert_eq!(status(&store)["run"]["phase"], "applying");
    // Seven joins the group before the deletion is made.
    rig.world.borrow_mut().groups.get_mut("00gAGENTS").unwrap().push("00u7".into());
    let r = finish_job(&rig, &store);
    assert_eq!((r.planned.delete, r.applied.delete), (1, 0), "{r:?}");
    assert!(r.changes[0].reason.as_deref().unwrap().starts_with("ACCESS_REGAINED"), "{:?}", r.changes);
    assert!(rig.world.borrow().connect_user("seven@example.com").is_some());
}

#[test]
fn a_cancel_during_the_deletion_gate_stops_the_deletion() {
    let rig = Rig::new();
    rig.world.borrow_mut().connect.push(managed("c-9", "orphan@example.com", "00u9"));
    let store = Rc::new(MemJobStore::default());
    start(&store, &rig, false);
    let (w, s) = (rig.world.clone(), store.clone());
    rig.http.answer_with(move |r| {
        if r.url.ends_with("/api/v1/groups/00gAGENTS") {
            job::serve(&*s, r#"{"op":"cancel"}"#, 0).unwrap();
        }
        Ok(serve(w.clone(), r))
    });
    let stepped = block_on(job::step(Ok(rig.cfg.clone()), &rig.edge(), &*store)).unwrap();
    assert_eq!(stepped, Stepped::default());
    assert!(rig.world.borrow().connect_user("orphan@example.com").is_some(), "not deleted after the cancel");
    assert!(!rig.world.borrow().ops().contains(&"DeleteUser"));
}
