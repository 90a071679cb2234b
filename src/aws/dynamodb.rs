//! Amazon DynamoDB (API 2012-08-10) over awsJson1_0: the one operation the template sync uses,
//! `Scan`, and the `AttributeValue` union its items are made of.
//!
//! The builder returns an unsigned request; sign it with [`super::sign::sign`] using
//! [`SIGNING_NAME`]. [`parse_scan`] turns any answer into a page or an [`AwsError`]: a non-2xx
//! status goes through [`parse_error`]; a 2xx body that is not a Scan output (not JSON, wrong
//! shapes, `Count` disagreeing with `Items`, larger than [`MAX_RESPONSE_BYTES`]) is an error with
//! code [`MALFORMED_RESPONSE`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::{parse_error, AwsError, MALFORMED_RESPONSE};
use super::sign::json_request;
use crate::edge::{HttpRequest, HttpResponse};

/// The SigV4 signing name (and endpoint prefix) of the service.
pub const SIGNING_NAME: &str = "dynamodb";
/// The awsJson1_0 `X-Amz-Target` prefix.
pub const TARGET_PREFIX: &str = "DynamoDB_20120810";
/// Largest Scan answer accepted. DynamoDB stops a page after 1 MB of data read; its JSON form
/// (escaped quotes, type tags) can be larger, but not four times larger.
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;
/// The range of `Limit` the API accepts (the model says min 1; pages beyond 1 MB are cut anyway).
pub const MAX_LIMIT: u32 = 1000;

/// `https://dynamodb.{region}.amazonaws.com`, the standard (non-FIPS, IPv4) endpoint.
pub fn default_endpoint(region: &str) -> String {
    format!("https://{SIGNING_NAME}.{region}.amazonaws.com")
}

/// One attribute value: a single-key union in the wire format (`{"S": "text"}`,
/// `{"N": "12.5"}`, `{"NULL": true}`, …). Numbers stay strings, binaries stay base64.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AttributeValue {
    S(String),
    N(String),
    #[serde(rename = "BOOL")]
    Bool(bool),
    #[serde(rename = "NULL")]
    Null(bool),
    M(BTreeMap<String, AttributeValue>),
    L(Vec<AttributeValue>),
    SS(Vec<String>),
    NS(Vec<String>),
    B(String),
    BS(Vec<String>),
}

impl AttributeValue {
    /// The string of an `S` value.
    pub fn as_s(&self) -> Option<&str> {
        match self {
            AttributeValue::S(s) => Some(s),
            _ => None,
        }
    }

    /// The type tag as on the wire (`S`, `N`, `BOOL`, …), for messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            AttributeValue::S(_) => "S",
            AttributeValue::N(_) => "N",
            AttributeValue::Bool(_) => "BOOL",
            AttributeValue::Null(_) => "NULL",
            AttributeValue::M(_) => "M",
            AttributeValue::L(_) => "L",
            AttributeValue::SS(_) => "SS",
            AttributeValue::NS(_) => "NS",
            AttributeValue::B(_) => "B",
            AttributeValue::BS(_) => "BS",
        }
    }
}

/// An item (or a key): attribute name → value.
pub type Item = BTreeMap<String, AttributeValue>;

/// Input of `Scan`, as the sync sends it. `None` fields are left out of the JSON.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScanInput {
    /// Table name or ARN.
    pub table_name: String,
    /// Items per page, 1 to [`MAX_LIMIT`].
    pub limit: u32,
    /// The previous page's `LastEvaluatedKey`; `None` for the first page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exclusive_start_key: Option<Item>,
    /// Strongly consistent: a sync right after an edit sees the edit.
    pub consistent_read: bool,
}

/// `DynamoDB_20120810.Scan` to `endpoint` (see [`default_endpoint`]), unsigned.
pub fn scan(endpoint: &str, input: &ScanInput) -> HttpRequest {
    // Strings, integers, booleans and string-keyed maps only: serialising cannot fail. Should it
    // ever, the empty object makes DynamoDB answer ValidationException instead of aborting.
    let body = serde_json::to_vec(input).unwrap_or_else(|_| b"{}".to_vec());
    json_request(endpoint, &format!("{TARGET_PREFIX}.Scan"), body)
}

/// One page of a Scan.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ScanOutput {
    pub items: Vec<Item>,
    /// Present while there is more to read (a page may hold no item and still have one).
    #[serde(default)]
    pub last_evaluated_key: Option<Item>,
    pub count: u64,
    #[serde(default)]
    pub scanned_count: u64,
}

/// Reads a Scan answer; see the module documentation for what counts as malformed.
pub fn parse_scan(resp: &HttpResponse) -> Result<ScanOutput, AwsError> {
    if !(200..300).contains(&resp.status) {
        return Err(parse_error(resp));
    }
    let malformed = |why: String| AwsError {
        status: resp.status,
        code: MALFORMED_RESPONSE.to_owned(),
        message: Some(why),
        reason: None,
        request_id: resp.header("x-amzn-requestid").map(str::to_owned),
    };
    if resp.body.len() > MAX_RESPONSE_BYTES {
        return Err(malformed(format!("a Scan answer of {} bytes (at most {MAX_RESPONSE_BYTES})", resp.body.len())));
    }
    // serde_json stops at 128 levels of nesting, so a hostile `M` tower cannot exhaust the stack.
    let out: ScanOutput = serde_json::from_slice(&resp.body).map_err(|e| {
        let mut why = e.to_string();
        why.truncate(200);
        malformed(format!("not a Scan output: {why}"))
    })?;
    if out.count != out.items.len() as u64 {
        return Err(malformed(format!("Count {} but {} Items", out.count, out.items.len())));
    }
    if out.last_evaluated_key.as_ref().is_some_and(|k| k.is_empty()) {
        return Err(malformed("an empty LastEvaluatedKey".to_owned()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn resp(status: u16, body: &str) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("content-type".into(), "application/x-amz-json-1.0".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn scan_request_has_the_awsjson_shape() {
        let mut key = Item::new();
        key.insert("locale".into(), AttributeValue::S("en-US".into()));
        key.insert("channel".into(), AttributeValue::S("sms".into()));
        let input = ScanInput {
            table_name: "otp-templates".into(),
            limit: 25,
            exclusive_start_key: Some(key),
            consistent_read: true,
        };
        let req = scan("https://dynamodb.eu-west-1.amazonaws.com", &input);
        assert_eq!(req.method, "POST");
        assert_eq!(req.url, "https://dynamodb.eu-west-1.amazonaws.com/");
        assert_eq!(req.header("x-amz-target"), Some("DynamoDB_20120810.Scan"));
        assert_eq!(req.header("content-type"), Some("application/x-amz-json-1.0"));
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(
            body,
            json!({"TableName":"otp-templates","Limit":25,"ConsistentRead":true,
                   "ExclusiveStartKey":{"locale":{"S":"en-US"},"channel":{"S":"sms"}}})
        );
        let first = ScanInput { exclusive_start_key: None, ..input };
        let body: Value = serde_json::from_slice(&scan("https://x", &first).body).unwrap();
        assert!(body.get("ExclusiveStartKey").is_none());
        assert_eq!(default_endpoint("us-east-1"), "https://dynamodb.us-east-1.amazonaws.com");
    }

    #[test]
    fn every_attribute_type_round_trips() {
        let wire = json!({
            "s": {"S": "text"}, "n": {"N": "12.5"}, "t": {"BOOL": true}, "z": {"NULL": true},
            "m": {"M": {"inner": {"L": [{"S": "a"}, {"N": "1"}]}}},
            "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]}, "b": {"B": "AAE="}, "bs": {"BS": ["AAE=", "AQI="]}
        });
        let item: Item = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(item["s"].as_s(), Some("text"));
        assert_eq!(item["n"], AttributeValue::N("12.5".into()));
        assert_eq!(item["t"].type_name(), "BOOL");
        assert_eq!(item["z"].as_s(), None);
        assert_eq!(serde_json::to_value(&item).unwrap(), wire);
    }

    #[test]
    fn parses_a_page_with_and_without_a_next_key() {
        let page = parse_scan(&resp(
            200,
            r#"{"Items":[{"locale":{"S":"en-US"}}],"Count":1,"ScannedCount":3,
                "LastEvaluatedKey":{"locale":{"S":"en-US"},"channel":{"S":"sms"}}}"#,
        ))
        .unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.scanned_count, 3);
        assert_eq!(page.last_evaluated_key.unwrap().len(), 2);
        let last = parse_scan(&resp(200, r#"{"Items":[],"Count":0,"ScannedCount":0}"#)).unwrap();
        assert!(last.items.is_empty() && last.last_evaluated_key.is_none());
    }

    #[test]
    fn errors_go_through_parse_error() {
        let e = parse_scan(&resp(
            400,
            r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#,
        ))
        .unwrap_err();
        assert_eq!(e.code, "ProvisionedThroughputExceededException");
        assert_eq!(e.verdict(), crate::retry::Verdict::Retry(crate::retry::Kind::Throttled));
        let e = parse_scan(&resp(400, r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException"}"#))
            .unwrap_err();
        assert_eq!(e.verdict(), crate::retry::Verdict::NoRetry);
    }

    #[test]
    fn garbage_with_status_200_is_malformed() {
        for body in [
            "",
            "<html>ok</html>",
            "[]",
            r#"{"Count":0}"#,
            r#"{"Items":{},"Count":0}"#,
            r#"{"Items":[{"a":{"X":"unknown type"}}],"Count":1}"#,
            r#"{"Items":[{"a":{"S":"x","N":"1"}}],"Count":1}"#,
            r#"{"Items":[{"a":{"S":1}}],"Count":1}"#,
            r#"{"Items":[],"Count":2}"#,
            r#"{"Items":[],"Count":0,"LastEvaluatedKey":{}}"#,
        ] {
            let e = parse_scan(&resp(200, body)).unwrap_err();
            assert_eq!(e.code, MALFORMED_RESPONSE, "{body}");
        }
    }

    #[test]
    fn hostile_bodies_are_refused_without_harm() {
        let deep =
            format!(r#"{{"Items":[{{"a":{}"S":"x"{}}}],"Count":1}}"#, r#"{"M":{"a":"#.repeat(5000), "}}".repeat(5000));
        assert_eq!(parse_scan(&resp(200, &deep)).unwrap_err().code, MALFORMED_RESPONSE);
        let mut big = resp(200, r#"{"Items":[],"Count":0}"#);
        big.body.resize(MAX_RESPONSE_BYTES + 1, b' ');
        assert_eq!(parse_scan(&big).unwrap_err().code, MALFORMED_RESPONSE);
    }
}
