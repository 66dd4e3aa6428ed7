//! Properties of the pure parsers, through the hidden `tower_lro::fuzzing` entry points (feature
//! `_fuzzing`, which the self dev-dependency enables): they never panic on arbitrary input, and
//! what they accept obeys PROTOCOL.md §1–§3 and §6. Case counts are modest so the file runs in
//! seconds; `fuzz/` explores the same code for longer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use proptest::prelude::*;
use serde_json::{Map, Value};
use tower_lro::fuzzing;

const CASES: u32 = 256;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------------

/// Any JSON value, a few levels deep.
fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Member names, biased towards the ones the parsers look at.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z]{0,8}",
        1 => prop::sample::select(vec![
            "status", "percentComplete", "error", "code", "message", "id", "name",
            "resourceLocation", "properties", "provisioningState", "startTime", "endTime",
        ])
        .prop_map(str::to_owned),
    ]
}

/// A JSON object of arbitrary members other than `status`.
fn object_without_status() -> impl Strategy<Value = Map<String, Value>> {
    prop::collection::btree_map(key(), json(), 0..6).prop_map(|m| {
        let mut map: Map<String, Value> = m.into_iter().collect();
        map.remove("status");
        map
    })
}

/// A status string that is not blank.
fn status_text() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,16}",
        prop::sample::select(vec![
            "Succeeded",
            "Failed",
            "Canceled",
            "Cancelled",
            "InProgress",
            "Running",
            "Accepted",
            "NotStarted",
            " succeeded ",
        ])
        .prop_map(str::to_owned),
    ]
    .prop_filter("status must not be blank", |s| !s.trim().is_empty())
}

/// `word` with each ASCII letter's case chosen at random, and optional surrounding whitespace.
fn any_case(word: &'static str) -> impl Strategy<Value = String> {
    (
        prop::collection::vec(any::<bool>(), word.len()),
        "[ \t]{0,2}",
        "[ \t]{0,2}",
    )
        .prop_map(move |(upper, before, after)| {
            let cased: String = word
                .chars()
                .zip(upper)
                .map(|(c, up)| {
                    if up {
                        c.to_ascii_uppercase()
                    } else {
                        c.to_ascii_lowercase()
                    }
                })
                .collect();
            format!("{before}{cased}{after}")
        })
}

fn serialize(value: &Value, pretty: bool) -> Vec<u8> {
    if pretty {
        serde_json::to_vec_pretty(value).unwrap()
    } else {
        serde_json::to_vec(value).unwrap()
    }
}

/// Original request URIs the layer may be given.
fn original() -> impl Strategy<Value = Uri> {
    prop::sample::select(vec![
        "http://127.0.0.1:8080/subscriptions/s/rg/vm/start?api-version=2020-01-01",
        "https://management.example/subscriptions/s/providers/x/deployments/d?api-version=2016-09-01",
        "https://management.example:8443/a/b/c",
        "http://example.com/",
        "https://[::1]:8443/ops?a=b",
        "http://127.0.0.1/a?api-version=",
    ])
    .prop_map(|s| s.parse().unwrap())
}

/// Monitor-URL references: arbitrary bytes, or assembled from pieces a hostile server would try
/// (other schemes, userinfo, odd hosts and ports, dot segments, network-path and relative forms).
fn reference() -> impl Strategy<Value = Vec<u8>> {
    let scheme = prop::sample::select(vec![
        "",
        "",
        "http:",
        "https:",
        "HTTP:",
        "hTtPs:",
        "file:",
        "ftp:",
        "javascript:",
        "data:",
        "ws:",
        "http+unix:",
    ]);
    let slashes = prop::sample::select(vec!["", "//", "//", "/", "\\\\", "///", "/\\"]);
    let userinfo = prop::sample::select(vec!["", "", "", "user@", "u:p@", ":@", "@", "a@b@"]);
    let host = prop::sample::select(vec![
        "",
        "127.0.0.1",
        "management.example",
        "MANAGEMENT.Example",
        "example.com",
        "example.com.",
        "evil.example",
        "[::1]",
        "[::ffff:127.0.0.1]",
        "0x7f.1",
        "127.1",
        "%31%32%37.0.0.1",
        "xn--nxasmq6b",
        "exa mple.com",
    ]);
    let port = prop::sample::select(vec![
        "",
        "",
        ":",
        ":0",
        ":80",
        ":443",
        ":8080",
        ":8443",
        ":65535",
        ":65536",
        ":99999999999",
    ]);
    let path = prop_oneof![
        "(/[a-zA-Z0-9%._~-]{0,6}){0,4}",
        prop::sample::select(vec!["/../..", "/./x/../y", "/%2e%2e/", "/ops/1", ""])
            .prop_map(str::to_owned),
    ];
    let query = prop::sample::select(vec![
        "",
        "",
        "?api-version=1999-01-01",
        "?a=b",
        "?",
        "?api-version",
    ]);
    let fragment = prop::sample::select(vec!["", "", "#x", "#"]);
    let assembled = (scheme, slashes, userinfo, host, port, path, query, fragment).prop_map(
        |(scheme, slashes, userinfo, host, port, path, query, fragment)| {
            format!("{scheme}{slashes}{userinfo}{host}{port}{path}{query}{fragment}").into_bytes()
        },
    );
    prop_oneof![
        1 => prop::collection::vec(any::<u8>(), 0..48),
        1 => "[ -~]{0,40}".prop_map(String::into_bytes),
        4 => assembled,
    ]
}

fn has_api_version(text: &str) -> bool {
    url::Url::parse(text)
        .unwrap()
        .query_pairs()
        .any(|(name, _)| name == "api-version")
}

fn origin_of(text: &str) -> url::Origin {
    url::Url::parse(text).unwrap().origin()
}

/// Header maps of the monitor and retry headers, with arbitrary (valid) values.
fn headers() -> impl Strategy<Value = HeaderMap> {
    let name = prop::sample::select(vec![
        "azure-asyncoperation",
        "operation-location",
        "location",
        "retry-after",
        "retry-after-ms",
        "x-ms-retry-after-ms",
        "content-type",
        "content-length",
        "x-other",
    ]);
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..32),
        "[0-9]{0,25}".prop_map(String::into_bytes),
        "/ops/[0-9]{1,3}".prop_map(String::into_bytes),
    ];
    prop::collection::vec((name, value), 0..6).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        map
    })
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::PUT,
        Method::PATCH,
        Method::POST,
        Method::DELETE,
        Method::HEAD,
        Method::OPTIONS,
    ])
}

fn one(name: &'static str, value: &str) -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert(name, HeaderValue::from_str(value).unwrap());
    map
}

/// What `1*DIGIT` means, saturating at `u64::MAX`.
fn saturating(digits: &str) -> u64 {
    digits.bytes().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    })
}

// ---------------------------------------------------------------------------------------------
// Status bodies (§3)
// ---------------------------------------------------------------------------------------------

/// Empty and blank codes and messages, where each dialect reads them: never kept.
#[test]
fn empty_error_codes_and_messages_are_absent_in_every_dialect() {
    for body in [
        r#"{"status":"Failed","error":{"code":"","message":""}}"#,
        r#"{"status":"Canceled","error":{"code":"  ","message":"\t"}}"#,
        r#"{"properties":{"provisioningState":"Failed"},"error":{"code":""}}"#,
        r#"{"provisioningState":"Canceled","error":{"code":"","message":" "}}"#,
        r#"{"error":{"code":"","message":""},"code":" ","message":""}"#,
        r#"{"name":"operations/1","done":true,"error":{"code":0,"message":""}}"#,
        r#"{"name":"operations/1","done":true,"error":{"code":1,"message":" "}}"#,
        r#"{"error":{"code":0,"message":"","status":""}}"#,
    ] {
        assert_eq!(fuzzing::dialect_verdicts(body.as_bytes()), Ok(()), "{body}");
        if let Ok(reading) = fuzzing::status_body(body.as_bytes()) {
            assert_eq!((reading.code, reading.message), (None, None), "{body}");
        }
    }
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn status_parsers_never_panic_on_arbitrary_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = fuzzing::status_body(&body);
        let _ = fuzzing::provisioning_state(&body);
    }

    #[test]
    fn status_parsers_never_panic_on_json(value in json(), pretty in any::<bool>()) {
        let body = serialize(&value, pretty);
        let _ = fuzzing::status_body(&body);
        let _ = fuzzing::provisioning_state(&body);
    }

    /// Every dialect judges any body, bytes or JSON, within the rules every dialect keeps.
    #[test]
    fn dialect_verdicts_keep_their_rules(
        value in json(),
        bytes in prop::collection::vec(any::<u8>(), 0..128),
    ) {
        prop_assert_eq!(fuzzing::dialect_verdicts(&serialize(&value, false)), Ok(()));
        prop_assert_eq!(fuzzing::dialect_verdicts(&bytes), Ok(()));
    }

    /// Google operations of any shape, with `name`, `done`, `error` and `response` of any type.
    #[test]
    fn google_operations_of_any_shape_are_judged(
        name in json(), done in json(), error in json(), response in json(), pick in 0u8..16,
    ) {
        let mut operation = Map::new();
        for (bit, key, value) in [(1, "name", name), (2, "done", done), (4, "error", error), (8, "response", response)] {
            if pick & bit != 0 {
                operation.insert(key.to_owned(), value);
            }
        }
        prop_assert_eq!(fuzzing::dialect_verdicts(&serialize(&Value::Object(operation), false)), Ok(()));
    }

    /// Any JSON object with a (non-blank) string `status` parses, whatever else it carries, and
    /// reads the status as given.
    #[test]
    fn any_object_with_a_string_status_parses(
        mut members in object_without_status(),
        status in status_text(),
        pretty in any::<bool>(),
    ) {
        members.insert("status".into(), Value::String(status.clone()));
        let body = serialize(&Value::Object(members), pretty);
        let reading = fuzzing::status_body(&body);
        prop_assert!(reading.is_ok(), "{:?} on {}", reading, String::from_utf8_lossy(&body));
        let reading = reading.unwrap();
        prop_assert_eq!(&reading.status, &status);
        prop_assert_eq!(reading.phase, fuzzing::phase(&status));
        if let Some(percent) = reading.percent_complete {
            prop_assert!(percent.is_finite());
        }
    }

    /// A missing, null or non-string `status`, or a body that is not an object, is always an
    /// error: never a guess.
    #[test]
    fn a_missing_or_non_string_status_always_errors(
        mut members in object_without_status(),
        status in prop_oneof![
            Just(None),
            json().prop_filter("not a string", |v| !v.is_string()).prop_map(Some),
        ],
        pretty in any::<bool>(),
    ) {
        if let Some(status) = status {
            members.insert("status".into(), status);
        }
        let body = serialize(&Value::Object(members), pretty);
        prop_assert!(fuzzing::status_body(&body).is_err(), "{}", String::from_utf8_lossy(&body));
    }

    #[test]
    fn a_body_that_is_not_an_object_is_malformed(
        value in json().prop_filter("not an object", |v| !v.is_object()),
    ) {
        prop_assert!(fuzzing::status_body(&serialize(&value, false)).is_err());
        prop_assert!(fuzzing::provisioning_state(&serialize(&value, false)).is_err());
    }

    /// Blank statuses are malformed too.
    #[test]
    fn a_blank_status_is_malformed(members in object_without_status(), blank in "[ \t\n\r]{0,4}") {
        let mut members = members;
        members.insert("status".into(), Value::String(blank));
        prop_assert!(fuzzing::status_body(&serialize(&Value::Object(members), false)).is_err());
    }

    /// The phase compares case-insensitively (ASCII) and ignores surrounding whitespace;
    /// `Canceled` has both spellings; everything else is still running.
    #[test]
    fn the_phase_is_case_insensitive(
        succeeded in any_case("succeeded"),
        failed in any_case("failed"),
        canceled in any_case("canceled"),
        cancelled in any_case("cancelled"),
        other in ".{0,16}",
    ) {
        prop_assert_eq!(fuzzing::phase(&succeeded), "succeeded");
        prop_assert_eq!(fuzzing::phase(&failed), "failed");
        prop_assert_eq!(fuzzing::phase(&canceled), "canceled");
        prop_assert_eq!(fuzzing::phase(&cancelled), "canceled");
        let phase = fuzzing::phase(&other);
        prop_assert_eq!(phase, fuzzing::phase(&other.to_ascii_uppercase()));
        prop_assert_eq!(phase, fuzzing::phase(&other.to_ascii_lowercase()));
        let keyword = other.trim().to_ascii_lowercase();
        if !["succeeded", "failed", "canceled", "cancelled"].contains(&keyword.as_str()) {
            prop_assert_eq!(phase, "running");
        }
        // Through a whole status body as well.
        let body = serde_json::to_vec(&serde_json::json!({ "status": succeeded })).unwrap();
        prop_assert_eq!(fuzzing::status_body(&body).unwrap().phase, "succeeded");
    }

    /// `provisioningState` is read from `properties`, else the top level; a resource without one
    /// has none.
    #[test]
    fn provisioning_state_is_found_where_the_protocol_says(
        members in object_without_status(),
        in_properties in prop::option::of(".{0,12}"),
        top_level in prop::option::of(".{0,12}"),
    ) {
        let mut members = members;
        members.remove("properties");
        members.remove("provisioningState");
        let mut properties = Map::new();
        if let Some(state) = &in_properties {
            properties.insert("provisioningState".into(), Value::String(state.clone()));
        }
        members.insert("properties".into(), Value::Object(properties));
        if let Some(state) = &top_level {
            members.insert("provisioningState".into(), Value::String(state.clone()));
        }
        let state = fuzzing::provisioning_state(&serialize(&Value::Object(members), false));
        prop_assert_eq!(state, Ok(in_properties.or(top_level)));
    }
}

// ---------------------------------------------------------------------------------------------
// Retry-After (§2)
// ---------------------------------------------------------------------------------------------

fn now() -> impl Strategy<Value = SystemTime> {
    (0u64..253_402_300_799).prop_map(|secs| UNIX_EPOCH + Duration::from_secs(secs))
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn retry_after_never_panics(headers in headers(), now in now()) {
        let _ = fuzzing::retry_after(&headers, now);
    }

    /// Any string of digits is that many seconds, saturating rather than failing; whitespace
    /// around it is fine.
    #[test]
    fn digits_are_seconds(digits in "[0-9]{1,30}", pad in "[ \t]{0,2}", now in now()) {
        let value = format!("{pad}{digits}{pad}");
        let expected = Duration::from_secs(saturating(&digits));
        prop_assert_eq!(fuzzing::retry_after(&one("retry-after", &value), now), Some(expected));
    }

    /// `retry-after-ms` beats `x-ms-retry-after-ms`, which beats `Retry-After`; an unparseable
    /// millisecond header is skipped, not fatal.
    #[test]
    fn millisecond_hints_take_precedence(
        ms in prop::option::of("[0-9]{1,22}"),
        x_ms in prop::option::of("[0-9]{1,22}"),
        garbage_ms in prop::option::of("[a-z.-]{1,5}"),
        secs in prop::option::of("[0-9]{1,22}"),
        now in now(),
    ) {
        let mut headers = HeaderMap::new();
        if let Some(v) = &ms {
            headers.insert("retry-after-ms", HeaderValue::from_str(v).unwrap());
        } else if let Some(v) = &garbage_ms {
            headers.insert("retry-after-ms", HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = &x_ms {
            headers.insert("x-ms-retry-after-ms", HeaderValue::from_str(v).unwrap());
        }
        if let Some(v) = &secs {
            headers.insert("retry-after", HeaderValue::from_str(v).unwrap());
        }
        let expected = match (&ms, &x_ms, &secs) {
            (Some(ms), _, _) | (None, Some(ms), _) => Some(Duration::from_millis(saturating(ms))),
            (None, None, Some(secs)) => Some(Duration::from_secs(saturating(secs))),
            (None, None, None) => None,
        };
        prop_assert_eq!(fuzzing::retry_after(&headers, now), expected);
    }

    /// An HTTP-date written by `httpdate` reads back as the time until it, or zero once it has
    /// passed.
    #[test]
    fn http_dates_round_trip(date in now(), now in now()) {
        let value = httpdate::fmt_http_date(date);
        let expected = date.duration_since(now).unwrap_or(Duration::ZERO);
        prop_assert_eq!(fuzzing::retry_after(&one("retry-after", &value), now), Some(expected));
    }

    /// A value without a single digit is neither delay-seconds nor a date: ignored.
    #[test]
    fn values_without_digits_are_ignored(value in "[^0-9]{0,30}", now in now()) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            let mut headers = HeaderMap::new();
            for name in ["retry-after", "retry-after-ms", "x-ms-retry-after-ms"] {
                headers.insert(name, value.clone());
            }
            prop_assert_eq!(fuzzing::retry_after(&headers, now), None);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Monitor URLs (§1, §6)
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(1024))]

    /// Whatever the server names, an admitted monitor URL is an absolute http(s) URL with a host
    /// and no userinfo or fragment; it is cross-origin exactly when its origin differs; a
    /// same-origin policy admits only the same origin; an https operation never yields http;
    /// admitting the result again gives the same result; and widening the policy never changes
    /// what a narrower one admitted.
    #[test]
    fn admitted_monitor_urls_are_safe(original in original(), reference in reference(), any in any::<bool>()) {
        let result = fuzzing::monitor_url(&original, &reference, any);
        let https = original.scheme_str() == Some("https");
        match result {
            Ok((uri, cross)) => {
                let scheme = uri.scheme_str();
                prop_assert!(matches!(scheme, Some("http" | "https")), "{}", uri);
                let authority = uri.authority().expect("absolute");
                prop_assert!(!authority.as_str().contains('@'), "userinfo in {}", uri);
                prop_assert!(!authority.host().is_empty());
                prop_assert!(!uri.to_string().contains('#'), "fragment in {}", uri);
                if https {
                    prop_assert_eq!(scheme, Some("https"), "downgrade to {}", uri);
                }
                let same = origin_of(&uri.to_string()) == origin_of(&original.to_string());
                prop_assert_eq!(cross, !same, "{}", uri);
                if !any {
                    prop_assert!(!cross, "same-origin policy admitted {}", uri);
                }
                if has_api_version(&original.to_string()) {
                    prop_assert!(has_api_version(&uri.to_string()), "{}", uri);
                }
                let again = fuzzing::monitor_url(&original, uri.to_string().as_bytes(), any);
                prop_assert_eq!(again, Ok((uri.clone(), cross)), "not idempotent");
                let wider = fuzzing::monitor_url(&original, &reference, true);
                prop_assert_eq!(wider, Ok((uri, cross)));
            }
            Err((true, _)) => {
                // Cross-origin refusals under "any origin" can only be downgrades.
                if any {
                    prop_assert!(https);
                }
            }
            Err((false, _)) => {
                // Invalid stays invalid whatever the policy.
                let wider = fuzzing::monitor_url(&original, &reference, !any);
                prop_assert!(matches!(wider, Err((false, _))), "{:?}", wider);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Classifying the initial response (§1)
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(CASES))]

    /// Never panics, and follows the table top to bottom: only 200/201/202/204 are ever
    /// long-running; `Azure-AsyncOperation` wins over `Operation-Location`, which wins over
    /// `Location`; `Location` alone is a monitor only on a 202.
    #[test]
    fn monitor_headers_are_classified_by_the_table(
        method in method(),
        status in 100u16..1000,
        headers in headers(),
    ) {
        let status = StatusCode::from_u16(status).unwrap();
        let kind = fuzzing::monitor_of(&method, status, &headers);
        let candidate = matches!(status.as_u16(), 200 | 201 | 202 | 204);
        let expected = if !candidate {
            None
        } else if headers.contains_key("azure-asyncoperation") {
            Some("azure-async-operation")
        } else if headers.contains_key("operation-location") {
            Some("operation-location")
        } else if headers.contains_key("location") && status == StatusCode::ACCEPTED {
            Some("location")
        } else {
            None
        };
        prop_assert_eq!(kind, expected);
    }
}

/// Same-origin references with tails of every character class a parser might rewrite.
fn same_origin_reference() -> impl Strategy<Value = (Uri, Vec<u8>)> {
    (original(), "/[a-zA-Z0-9._~!$&'()*+,;=:@/?%#\\\\ \\-]{0,40}").prop_map(|(original, tail)| {
        let prefix = format!(
            "{}://{}",
            original.scheme_str().unwrap(),
            original.authority().unwrap()
        );
        (original, format!("{prefix}{tail}").into_bytes())
    })
}

/// Path-absolute references (and `//authority` ones) with tails of the same classes.
fn path_reference() -> impl Strategy<Value = (Uri, Vec<u8>)> {
    (original(), "/[a-zA-Z0-9._~!$&'()*+,;=:@/?%#\\\\ \\-]{0,40}")
        .prop_map(|(original, path)| (original, path.into_bytes()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The layer's plain path for monitor URLs (no `url` crate) answers only where it agrees with
    /// the full path, and takes the common same-origin references.
    #[test]
    fn the_plain_monitor_url_path_agrees_with_the_full_one(
        (original, reference) in prop_oneof![
            same_origin_reference(),
            path_reference(),
            (original(), reference()),
        ]
    ) {
        if let Some(plain) = fuzzing::monitor_url_plain(&original, &reference) {
            let full = fuzzing::monitor_url_full(&original, &reference, false);
            prop_assert_eq!(full, Ok((plain, false)), "{}", String::from_utf8_lossy(&reference));
        }
    }
}

#[test]
fn the_plain_path_takes_ordinary_azure_monitor_urls() {
    let original: Uri = "https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/virtualMachines/vm/start?api-version=2016-03-30".parse().unwrap();
    let monitor = b"https://management.azure.com/subscriptions/s/providers/Microsoft.Compute/locations/westus/operations/9a062a88-e463-4697-bef2-fe039df73a02?api-version=2016-03-30";
    assert!(fuzzing::monitor_url_plain(&original, monitor).is_some());
}
