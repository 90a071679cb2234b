//! Amazon Connect (API 2017-08-08, restJson1): the user operations the provisioning uses.
//!
//! Builders return unsigned requests; sign them with [`super::sign::sign`] using
//! [`SIGNING_NAME`]. Path labels (instance and user ids) are [`PathId`]s: plain identifiers
//! ([`is_resource_id`]), checked when made, so no percent-encoding is ever needed and no builder
//! can be handed anything else (the caller turns a refusal into its own error:
//! `provisioning::client` does). Parsers turn any answer into a
//! value or an [`AwsError`] (`x-amzn-ErrorType` names the code in restJson1).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{parse_error, AwsError, MALFORMED_RESPONSE};
use crate::edge::{HttpRequest, HttpResponse};

/// The SigV4 signing name (and endpoint prefix).
pub const SIGNING_NAME: &str = "connect";
/// `SearchUsers` page size bound of the API.
pub const MAX_SEARCH_RESULTS: u32 = 500;
/// Security profiles per user, at most (the API's bound).
pub const MAX_SECURITY_PROFILES: usize = 10;

/// `https://connect.{region}.amazonaws.com`.
pub fn default_endpoint(region: &str) -> String {
    format!("https://{SIGNING_NAME}.{region}.amazonaws.com")
}

/// Instance, user and profile ids: UUID-like identifiers, safe in a URL path as they are.
pub fn is_resource_id(id: &str) -> bool {
    (1..=100).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// An instance or user id that may go into a URL path as it is: only made by [`PathId::new`],
/// which refuses anything but a plain identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PathId<'a>(&'a str);

impl<'a> PathId<'a> {
    pub fn new(id: &'a str) -> Option<Self> {
        is_resource_id(id).then_some(PathId(id))
    }

    pub fn as_str(self) -> &'a str {
        self.0
    }
}

impl std::fmt::Display for PathId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A Connect user as `SearchUsers` summarises it (and as a reconciliation stores it).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ConnectUser {
    pub id: String,
    #[serde(default)]
    pub arn: Option<String>,
    pub username: String,
    #[serde(default)]
    pub identity_info: IdentityInfo,
    #[serde(default)]
    pub security_profile_ids: Vec<String>,
    #[serde(default)]
    pub routing_profile_id: Option<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The names Connect shows for a user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IdentityInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
}

/// What `CreateUser` needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser<'a> {
    pub username: &'a str,
    pub identity: &'a IdentityInfo,
    pub security_profile_ids: &'a [String],
    pub routing_profile_id: &'a str,
    pub tags: &'a BTreeMap<String, String>,
}

/// Which users a `SearchUsers` call looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search<'a> {
    /// `Username` `EXACT` (the caller must still compare case-sensitively: the API's case
    /// behaviour for `EXACT` is not documented).
    Username(&'a str),
    /// Users carrying tag `key` = `value`.
    Tag(&'a str, &'a str),
}

/// One page of `SearchUsers`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchPage {
    pub users: Vec<ConnectUser>,
    pub next_token: Option<String>,
}

fn json_body(method: &'static str, url: String, body: &Value) -> HttpRequest {
    HttpRequest {
        method,
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.to_string().into_bytes(),
    }
}

/// `POST /search-users`.
pub fn search_users(
    endpoint: &str,
    instance_id: &str,
    by: Search<'_>,
    max_results: u32,
    next: Option<&str>,
) -> HttpRequest {
    let mut body = json!({"InstanceId": instance_id, "MaxResults": max_results.clamp(1, MAX_SEARCH_RESULTS)});
    match by {
        Search::Username(u) => {
            body["SearchCriteria"] =
                json!({"StringCondition": {"FieldName": "Username", "Value": u, "ComparisonType": "EXACT"}})
        }
        Search::Tag(k, v) => {
            body["SearchFilter"] = json!({"TagFilter": {"TagCondition": {"TagKey": k, "TagValue": v}}})
        }
    }
    if let Some(t) = next {
        body["NextToken"] = t.into();
    }
    json_body("POST", format!("{endpoint}/search-users"), &body)
}

/// Largest `ListUsers` page (`MaxResults`, per the model).
pub const MAX_LIST_RESULTS: u32 = 1000;

/// `GET /users-summary/{InstanceId}` (`ListUsers`): every user's id and username, a page at a time.
pub fn list_users(endpoint: &str, instance_id: PathId<'_>, max_results: u32, next: Option<&str>) -> HttpRequest {
    let mut url =
        format!("{endpoint}/users-summary/{instance_id}?maxResults={}", max_results.clamp(1, MAX_LIST_RESULTS));
    if let Some(t) = next {
        url.push_str("&nextToken=");
        url.push_str(&crate::http::percent_encode(t, false));
    }
    HttpRequest { method: "GET", url, headers: vec![], body: vec![] }
}

/// One user of a `ListUsers` page.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserSummary {
    pub id: String,
    #[serde(default)]
    pub arn: Option<String>,
    pub username: String,
}

/// A `ListUsers` answer.
pub fn parse_list(resp: &HttpResponse) -> Result<(Vec<UserSummary>, Option<String>), AwsError> {
    ok_or_error(resp)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Out {
        #[serde(default)]
        user_summary_list: Vec<UserSummary>,
        next_token: Option<String>,
    }
    let out: Out = serde_json::from_slice(&resp.body).map_err(|_| malformed(resp, "ListUsers"))?;
    if out.user_summary_list.iter().any(|u| !is_resource_id(&u.id)) {
        return Err(malformed(resp, "ListUsers"));
    }
    Ok((out.user_summary_list, out.next_token.filter(|t| !t.is_empty())))
}

/// `PUT /users/{InstanceId}`: a soft-phone agent with the given profiles and tags.
pub fn create_user(endpoint: &str, instance_id: PathId<'_>, u: &NewUser<'_>) -> HttpRequest {
    let body = json!({
        "Username": u.username,
        "IdentityInfo": u.identity,
        "PhoneConfig": {"PhoneType": "SOFT_PHONE"},
        "SecurityProfileIds": u.security_profile_ids,
        "RoutingProfileId": u.routing_profile_id,
        "Tags": u.tags,
    });
    json_body("PUT", format!("{endpoint}/users/{instance_id}"), &body)
}

fn user_url(endpoint: &str, instance_id: PathId<'_>, user_id: PathId<'_>, tail: &str) -> String {
    format!("{endpoint}/users/{instance_id}/{user_id}{tail}")
}

/// `POST /users/{I}/{U}/security-profiles` (replaces the set).
pub fn update_security_profiles(
    endpoint: &str,
    instance_id: PathId<'_>,
    user_id: PathId<'_>,
    ids: &[String],
) -> HttpRequest {
    let url = user_url(endpoint, instance_id, user_id, "/security-profiles");
    json_body("POST", url, &json!({ "SecurityProfileIds": ids }))
}

/// `POST /users/{I}/{U}/routing-profile`.
pub fn update_routing_profile(endpoint: &str, instance_id: PathId<'_>, user_id: PathId<'_>, id: &str) -> HttpRequest {
    let url = user_url(endpoint, instance_id, user_id, "/routing-profile");
    json_body("POST", url, &json!({ "RoutingProfileId": id }))
}

/// `POST /users/{I}/{U}/identity-info`.
pub fn update_identity_info(
    endpoint: &str,
    instance_id: PathId<'_>,
    user_id: PathId<'_>,
    info: &IdentityInfo,
) -> HttpRequest {
    let url = user_url(endpoint, instance_id, user_id, "/identity-info");
    json_body("POST", url, &json!({ "IdentityInfo": info }))
}

/// `DELETE /users/{I}/{U}`.
pub fn delete_user(endpoint: &str, instance_id: PathId<'_>, user_id: PathId<'_>) -> HttpRequest {
    HttpRequest { method: "DELETE", url: user_url(endpoint, instance_id, user_id, ""), headers: vec![], body: vec![] }
}

/// `POST /tags/{resourceArn}` (`TagResource`): the ARN is one path label, percent-encoded
/// whole (its `:` and `/` included).
pub fn tag_resource(endpoint: &str, arn: &str, tags: &BTreeMap<String, String>) -> HttpRequest {
    let url = format!("{endpoint}/tags/{}", crate::http::percent_encode(arn, false));
    json_body("POST", url, &json!({ "tags": tags }))
}

fn ok_or_error(resp: &HttpResponse) -> Result<(), AwsError> {
    if (200..300).contains(&resp.status) {
        Ok(())
    } else {
        Err(parse_error(resp))
    }
}

fn malformed(resp: &HttpResponse, what: &str) -> AwsError {
    AwsError {
        status: resp.status,
        code: MALFORMED_RESPONSE.into(),
        message: Some(format!("not a {what} output")),
        reason: None,
        request_id: resp.header("x-amzn-requestid").map(String::from),
    }
}

/// A `SearchUsers` answer. Users whose ids are not plain identifiers are refused (they would
/// have to go into URLs).
pub fn parse_search(resp: &HttpResponse) -> Result<SearchPage, AwsError> {
    ok_or_error(resp)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Out {
        #[serde(default)]
        users: Vec<ConnectUser>,
        next_token: Option<String>,
    }
    let out: Out = serde_json::from_slice(&resp.body).map_err(|_| malformed(resp, "SearchUsers"))?;
    if out.users.iter().any(|u| !is_resource_id(&u.id)) {
        return Err(malformed(resp, "SearchUsers"));
    }
    Ok(SearchPage { users: out.users, next_token: out.next_token.filter(|t| !t.is_empty()) })
}

/// A `CreateUser` answer: the new user's id.
pub fn parse_create(resp: &HttpResponse) -> Result<String, AwsError> {
    ok_or_error(resp)?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Out {
        user_id: String,
    }
    let out: Out = serde_json::from_slice(&resp.body).map_err(|_| malformed(resp, "CreateUser"))?;
    if !is_resource_id(&out.user_id) {
        return Err(malformed(resp, "CreateUser"));
    }
    Ok(out.user_id)
}

/// The answer of an operation without output (`Update*`, `DeleteUser`).
pub fn parse_empty(resp: &HttpResponse) -> Result<(), AwsError> {
    ok_or_error(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(s: &str) -> PathId<'_> {
        PathId::new(s).expect("a plain id")
    }
    use crate::testing::json_response;

    const E: &str = "https://connect.us-east-1.amazonaws.com";
    const I: &str = "11111111-2222-3333-4444-555555555555";

    fn body(r: &HttpRequest) -> Value {
        serde_json::from_slice(&r.body).unwrap()
    }

    #[test]
    fn search_by_username_and_by_tag() {
        let r = search_users(E, I, Search::Username("Ana.Garcia@example.com"), 10, None);
        assert_eq!((r.method, r.url.as_str()), ("POST", "https://connect.us-east-1.amazonaws.com/search-users"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(
            body(&r),
            json!({"InstanceId": I, "MaxResults": 10, "SearchCriteria": {"StringCondition":
                {"FieldName": "Username", "Value": "Ana.Garcia@example.com", "ComparisonType": "EXACT"}}})
        );
        let r = search_users(E, I, Search::Tag("managedBy", "okta-edge-hooks"), 9999, Some("tok"));
        assert_eq!(
            body(&r),
            json!({"InstanceId": I, "MaxResults": 500, "NextToken": "tok", "SearchFilter": {"TagFilter":
                {"TagCondition": {"TagKey": "managedBy", "TagValue": "okta-edge-hooks"}}}})
        );
    }

    #[test]
    fn create_and_update_shapes() {
        let tags = BTreeMap::from([("managedBy".to_string(), "okta-edge-hooks".to_string())]);
        let info = IdentityInfo { first_name: Some("Ana".into()), last_name: None };
        let sp = vec!["sp-1".to_string()];
        let r = create_user(
            E,
            pid(I),
            &NewUser {
                username: "ana",
                identity: &info,
                security_profile_ids: &sp,
                routing_profile_id: "rp-1",
                tags: &tags,
            },
        );
        assert_eq!((r.method, r.url.as_str()), ("PUT", format!("{E}/users/{I}").as_str()));
        assert_eq!(
            body(&r),
            json!({"Username": "ana", "IdentityInfo": {"FirstName": "Ana"}, "PhoneConfig": {"PhoneType": "SOFT_PHONE"},
                   "SecurityProfileIds": ["sp-1"], "RoutingProfileId": "rp-1", "Tags": {"managedBy": "okta-edge-hooks"}})
        );
        let r = update_security_profiles(E, pid(I), pid("u-1"), &sp);
        assert_eq!(r.url, format!("{E}/users/{I}/u-1/security-profiles"));
        assert_eq!(body(&r), json!({"SecurityProfileIds": ["sp-1"]}));
        assert_eq!(body(&update_routing_profile(E, pid(I), pid("u-1"), "rp-2")), json!({"RoutingProfileId": "rp-2"}));
        assert_eq!(
            body(&update_identity_info(E, pid(I), pid("u-1"), &info)),
            json!({"IdentityInfo": {"FirstName": "Ana"}})
        );
        let d = delete_user(E, pid(I), pid("u-1"));
        assert_eq!((d.method, d.url.as_str(), d.body.len()), ("DELETE", format!("{E}/users/{I}/u-1").as_str(), 0));
    }

    #[test]
    fn parses_answers_and_errors() {
        let page = parse_search(&json_response(
            200,
            r#"{"Users":[{"Id":"u-1","Arn":"arn:x","Username":"ana","IdentityInfo":{"FirstName":"Ana"},
                "SecurityProfileIds":["sp"],"RoutingProfileId":"rp","Tags":{"managedBy":"okta-edge-hooks"}}],
                "NextToken":"n","ApproximateTotalCount":3}"#,
        ))
        .unwrap();
        assert_eq!(page.next_token.as_deref(), Some("n"));
        assert_eq!(page.users[0].identity_info.first_name.as_deref(), Some("Ana"));
        assert_eq!(page.users[0].tags["managedBy"], "okta-edge-hooks");
        assert_eq!(parse_search(&json_response(200, "{}")).unwrap(), SearchPage::default());
        let bad_id = parse_search(&json_response(200, r#"{"Users":[{"Id":"../x","Username":"a"}]}"#)).unwrap_err();
        assert_eq!(bad_id.code, MALFORMED_RESPONSE);
        assert_eq!(parse_create(&json_response(200, r#"{"UserId":"u-9","UserArn":"arn"}"#)).unwrap(), "u-9");
        assert_eq!(parse_create(&json_response(200, "<html>")).unwrap_err().code, MALFORMED_RESPONSE);
        let mut dup = json_response(409, r#"{"Message":"User already exists"}"#);
        dup.headers.push(("x-amzn-ErrorType".into(), "DuplicateResourceException".into()));
        let e = parse_create(&dup).unwrap_err();
        assert_eq!((e.status, e.code.as_str()), (409, "DuplicateResourceException"));
        assert!(parse_empty(&json_response(200, "")).is_ok());
        assert_eq!(parse_empty(&json_response(429, r#"{"__type":"ThrottlingException"}"#)).unwrap_err().status, 429);
    }

    #[test]
    fn resource_ids() {
        assert!(is_resource_id(I));
        for bad in ["", "a/b", "a%2F", "a b", &"x".repeat(101)] {
            assert!(!is_resource_id(bad), "{bad}");
            assert_eq!(PathId::new(bad), None, "no builder can be given {bad:?}");
        }
        assert_eq!(PathId::new(I).map(PathId::as_str), Some(I));
    }
}
