//! Reading operation status from JSON bodies (PROTOCOL §3).
//!
//! The parsers are hand-written serde visitors rather than a `serde_json::Value` tree: they
//! borrow from the body where they can, skip unknown members without allocating, and let us be
//! strict where the protocol needs it (`status` must be a string) yet lenient on optional
//! members: a `percentComplete` of `"50%"` or `1e309`, or an `error.code` of `1e999`, must not
//! make a valid status unreadable. Optional members are therefore taken as raw JSON text first
//! (serde_json scans a raw value without judging its numbers, which it otherwise refuses past
//! `f64`'s range) and only then interpreted; what cannot be read is ignored.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use crate::protocol::json::{error_detail, number, text, utf8, Text};
pub(crate) use crate::protocol::json::{CodeAndMessage, Malformed};

/// How a status string reads, compared case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Succeeded,
    Failed,
    Canceled,
    /// `InProgress`, `Running`, `Accepted`, `NotStarted` and any provider-specific value.
    Running,
}

impl Phase {
    pub(crate) fn of(status: &str) -> Phase {
        // Servers do not pad their statuses; trimming is for the rare one that does.
        let status = match status.as_bytes() {
            [first, .., last] if !first.is_ascii_whitespace() && !last.is_ascii_whitespace() => {
                status
            }
            _ => status.trim(),
        };
        if status.eq_ignore_ascii_case("succeeded") {
            Phase::Succeeded
        } else if status.eq_ignore_ascii_case("failed") {
            Phase::Failed
        } else if status.eq_ignore_ascii_case("canceled")
            || status.eq_ignore_ascii_case("cancelled")
        {
            Phase::Canceled
        } else {
            Phase::Running
        }
    }
}

/// The members of an `Azure-AsyncOperation` / `Operation-Location` status body we use.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct StatusBody<'a> {
    pub(crate) status: Cow<'a, str>,
    pub(crate) percent_complete: Option<f64>,
    pub(crate) id: Option<Cow<'a, str>>,
    pub(crate) name: Option<Cow<'a, str>>,
    pub(crate) resource_location: Option<Cow<'a, str>>,
    pub(crate) error: CodeAndMessage<'a>,
}

/// Parses a status-monitor body. An empty body, invalid JSON, a non-object, or a missing,
/// non-string or empty `status` is malformed: never a guess.
pub(crate) fn parse_status(body: &[u8]) -> Result<StatusBody<'_>, Malformed> {
    if body.trim_ascii().is_empty() {
        return Err(Malformed("the status body is empty".into()));
    }
    let mut de = serde_json::Deserializer::from_str(utf8(body, "status")?);
    let parsed = de
        .deserialize_map(StatusVisitor)
        .and_then(|parsed| de.end().map(|()| parsed))
        .map_err(|e| Malformed(format!("the status body is not a JSON status object: {e}")))?;
    match parsed.status {
        Some(status) if !status.trim().is_empty() => Ok(StatusBody {
            status,
            percent_complete: parsed.percent_complete,
            id: parsed.id,
            name: parsed.name,
            resource_location: parsed.resource_location,
            error: parsed.error,
        }),
        Some(_) => Err(Malformed("the status body has an empty `status`".into())),
        None => Err(Malformed("the status body has no `status`".into())),
    }
}

/// What a resource body says about `provisioningState` (in `properties`, else top level).
#[derive(Debug, PartialEq)]
pub(crate) struct Resource<'a> {
    pub(crate) provisioning_state: Option<Cow<'a, str>>,
    pub(crate) error: CodeAndMessage<'a>,
}

/// Parses a resource body. An empty body has no `provisioningState`; anything that is not a JSON
/// object, or a `provisioningState` that is not a string, is malformed.
pub(crate) fn parse_resource(body: &[u8]) -> Result<Resource<'_>, Malformed> {
    if body.trim_ascii().is_empty() {
        return Ok(Resource {
            provisioning_state: None,
            error: CodeAndMessage::default(),
        });
    }
    let mut de = serde_json::Deserializer::from_str(utf8(body, "resource")?);
    let resource = de
        .deserialize_map(ResourceVisitor)
        .and_then(|parsed| de.end().map(|()| parsed))
        .map_err(|e| Malformed(format!("the resource body is not a JSON object: {e}")))?;
    Ok(resource)
}

/// Whether an initial body that [`parse_resource`] refused was meant as a JSON object, so that
/// refusing it means "cannot be judged" rather than "not a resource": it starts with `{`, or it is
/// declared JSON (`declared_json`) and is not valid JSON at all. Valid JSON of another shape (an
/// array, a string) and undeclared text are simply not resources.
pub(crate) fn meant_as_json_object(body: &[u8], declared_json: bool) -> bool {
    body.trim_ascii_start().starts_with(b"{")
        || declared_json && serde_json::from_slice::<IgnoredAny>(body).is_err()
}

#[derive(Default)]
struct PartialStatus<'a> {
    status: Option<Cow<'a, str>>,
    percent_complete: Option<f64>,
    id: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    resource_location: Option<Cow<'a, str>>,
    error: CodeAndMessage<'a>,
}

struct StatusVisitor;

impl<'de> Visitor<'de> for StatusVisitor {
    type Value = PartialStatus<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = PartialStatus::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "status" => {
                    out.status = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                }
                "percentComplete" => out.percent_complete = number(map.next_value()?),
                "id" => out.id = text(map.next_value()?),
                "name" => out.name = text(map.next_value()?),
                "resourceLocation" => out.resource_location = text(map.next_value()?),
                "error" => out.error = error_detail(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(out)
    }
}

struct ResourceVisitor;

impl<'de> Visitor<'de> for ResourceVisitor {
    type Value = Resource<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut top_level = None;
        let mut in_properties = None;
        let mut error = CodeAndMessage::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "provisioningState" => {
                    top_level = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                }
                "properties" => {
                    in_properties = properties(map.next_value()?).map_err(de::Error::custom)?;
                }
                "error" => error = error_detail(map.next_value()?),
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(Resource {
            provisioning_state: in_properties.or(top_level),
            error,
        })
    }
}

/// `provisioningState` of a resource's `properties`. A `properties` that is not an object is some
/// provider's own data, not a state, so it reads as "no state here"; inside an object, a
/// `provisioningState` that is not a string is malformed, as at the top level.
fn properties<'de>(raw: &'de RawValue) -> Result<Option<Cow<'de, str>>, serde_json::Error> {
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    struct PropertiesVisitor;
    impl<'de> Visitor<'de> for PropertiesVisitor {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut state = None;
            while let Some(key) = map.next_key::<Text<'de>>()? {
                if key.0 == "provisioningState" {
                    state = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(state)
        }
    }
    serde_json::Deserializer::from_str(raw.get()).deserialize_map(PropertiesVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_are_case_insensitive() {
        for (status, phase) in [
            ("Succeeded", Phase::Succeeded),
            ("succeeded", Phase::Succeeded),
            ("SUCCEEDED", Phase::Succeeded),
            (" Succeeded ", Phase::Succeeded),
            ("Failed", Phase::Failed),
            ("fAiLeD", Phase::Failed),
            ("Canceled", Phase::Canceled),
            ("CANCELLED", Phase::Canceled),
            ("Cancelled", Phase::Canceled),
            ("InProgress", Phase::Running),
            ("Running", Phase::Running),
            ("Accepted", Phase::Running),
            ("NotStarted", Phase::Running),
            ("Creating", Phase::Running),
            ("PartiallySucceeded", Phase::Running),
        ] {
            assert_eq!(Phase::of(status), phase, "{status}");
        }
    }

    #[test]
    fn reads_a_full_status_body() {
        let body = br#"{
            "id": "/subscriptions/s/operations/op-1",
            "name": "op-1",
            "status": "Failed",
            "startTime": "2017-01-06T20:56:36.002812+00:00",
            "percentComplete": 42.5,
            "properties": {"nested": [1, 2, {"deep": true}]},
            "error": {"code": "Conflict", "message": "it \"broke\"", "details": []},
            "resourceLocation": "https://example.test/resource"
        }"#;
        let parsed = parse_status(body).unwrap();
        assert_eq!(parsed.status, "Failed");
        assert_eq!(parsed.percent_complete, Some(42.5));
        assert_eq!(
            parsed.id.as_deref(),
            Some("/subscriptions/s/operations/op-1")
        );
        assert_eq!(parsed.name.as_deref(), Some("op-1"));
        assert_eq!(parsed.error.code.as_deref(), Some("Conflict"));
        assert_eq!(parsed.error.message.as_deref(), Some("it \"broke\""));
        assert_eq!(
            parsed.resource_location.as_deref(),
            Some("https://example.test/resource")
        );
    }

    #[test]
    fn optional_members_of_the_wrong_type_are_ignored() {
        let body = br#"{"status":"Running","percentComplete":"50%","id":7,"name":null,
            "error":"boom","resourceLocation":["x"]}"#;
        let parsed = parse_status(body).unwrap();
        assert_eq!(parsed.status, "Running");
        assert_eq!(parsed.percent_complete, None);
        assert_eq!(parsed.id, None);
        assert_eq!(parsed.name, None);
        assert_eq!(parsed.error, CodeAndMessage::default());
        assert_eq!(parsed.resource_location, None);
        let parsed = parse_status(br#"{"status":"Running","percentComplete":7}"#).unwrap();
        assert_eq!(parsed.percent_complete, Some(7.0));
    }

    #[test]
    fn malformed_status_bodies() {
        for body in [
            &b""[..],
            b"   ",
            b"not json",
            b"{\"status\":\"Succeeded\"",
            b"{\"status\":\"Succeeded\"} trailing",
            b"[\"Succeeded\"]",
            b"\"Succeeded\"",
            b"{}",
            b"{\"status\":null}",
            b"{\"status\":\"\"}",
            b"{\"status\":\"  \"}",
            b"{\"status\":1}",
            b"{\"status\":{\"value\":\"Succeeded\"}}",
            b"{\"Status\":\"Succeeded\"}",
            b"\xff\xfe{\"status\":\"Succeeded\"}",
            b"{\"status\":\"Succ\xffeeded\"}",
        ] {
            assert!(
                parse_status(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn deep_nesting_never_overflows_the_stack() {
        let depth = 100_000;
        let nested = |prefix: &[u8], close: bool| {
            let mut body = prefix.to_vec();
            body.extend(std::iter::repeat_n(b'[', depth));
            if close {
                body.extend(std::iter::repeat_n(b']', depth));
                body.push(b'}');
            }
            body
        };
        // Members we skip are skipped iteratively: deep but valid JSON there is fine.
        let body = nested(b"{\"status\":\"Running\",\"x\":", true);
        assert_eq!(parse_status(&body).unwrap().status, "Running");
        assert!(parse_status(&nested(b"{\"status\":\"Running\",\"x\":", false)).is_err());
        // Members we read are depth-limited by serde_json: an error, not a crash.
        assert!(parse_status(&nested(b"{\"status\":", true)).is_err());
        assert!(parse_status(&nested(b"{\"error\":", true)).is_err());
        assert_eq!(
            parse_resource(&nested(b"{\"properties\":", true)).map(|r| r.provisioning_state),
            Ok(None)
        );
        assert!(parse_resource(&nested(b"{\"properties\":", false)).is_err());
    }

    #[test]
    fn provisioning_state_in_properties_or_top_level() {
        let state =
            |body: &[u8]| parse_resource(body).map(|r| r.provisioning_state.map(Cow::into_owned));
        assert_eq!(
            state(br#"{"properties":{"provisioningState":"Accepted"}}"#),
            Ok(Some("Accepted".into()))
        );
        assert_eq!(
            state(br#"{"provisioningState":"Creating"}"#),
            Ok(Some("Creating".into()))
        );
        // `properties` wins over the top level, in either order.
        assert_eq!(
            state(br#"{"properties":{"provisioningState":"Updating"},"provisioningState":"Succeeded"}"#),
            Ok(Some("Updating".into()))
        );
        assert_eq!(
            state(br#"{"provisioningState":"Succeeded","properties":{"provisioningState":"Updating"}}"#),
            Ok(Some("Updating".into()))
        );
        assert_eq!(
            state(br#"{"properties":{"other":1},"provisioningState":"Failed"}"#),
            Ok(Some("Failed".into()))
        );
        assert_eq!(state(br#"{"name":"acct","properties":{}}"#), Ok(None));
        assert_eq!(
            state(br#"{"properties":"text","provisioningState":"Running"}"#),
            Ok(Some("Running".into()))
        );
        assert_eq!(state(b""), Ok(None));
        assert_eq!(state(br#"{"properties":null}"#), Ok(None));
        assert!(state(b"<xml/>").is_err());
        assert!(state(br#"{"provisioningState":3}"#).is_err());
        assert!(state(br#"{"properties":{"provisioningState":false}}"#).is_err());
        assert!(state(br#"[{"provisioningState":"Running"}]"#).is_err());
    }

    #[test]
    fn numbers_out_of_f64_range_in_optional_members_do_not_hide_the_status() {
        let parsed = parse_status(br#"{"status":"Running","percentComplete":1e309}"#).unwrap();
        assert_eq!(
            (&*parsed.status, parsed.percent_complete),
            ("Running", None)
        );
        let parsed = parse_status(br#"{"status":"Running","id":1e999,"name":-1e999}"#).unwrap();
        assert_eq!(
            (&*parsed.status, parsed.id, parsed.name),
            ("Running", None, None)
        );
        let parsed =
            parse_status(br#"{"status":"Failed","error":{"code":1e999,"message":"quota"}}"#)
                .unwrap();
        assert_eq!(parsed.status, "Failed");
        assert_eq!(parsed.error.code.as_deref(), Some("1e999"));
        assert_eq!(parsed.error.message.as_deref(), Some("quota"));
        // Integer codes (Google's) keep their text; other kinds of code are ignored.
        let parsed =
            parse_status(br#"{"status":"Failed","error":{"code":3,"message":7}}"#).unwrap();
        assert_eq!(
            parsed.error,
            CodeAndMessage {
                code: Some("3".into()),
                message: None
            }
        );
        let parsed = parse_status(br#"{"status":"Failed","error":{"code":true}}"#).unwrap();
        assert_eq!(parsed.error, CodeAndMessage::default());
        // Escaped strings are unescaped; members after an odd one are still read.
        let parsed = parse_status(
            br#"{"percentComplete":[1e999],"status":"Run\u006eing","resourceLocation":"/r\/1"}"#,
        )
        .unwrap();
        assert_eq!(parsed.status, "Running");
        assert_eq!(parsed.resource_location.as_deref(), Some("/r/1"));
        // The required member is still strict.
        assert!(parse_status(br#"{"status":1e999}"#).is_err());

        let resource = parse_resource(
            br#"{"properties":{"provisioningState":"Failed","size":1e999},"error":{"code":1e999}}"#,
        )
        .unwrap();
        assert_eq!(resource.provisioning_state.as_deref(), Some("Failed"));
        assert_eq!(resource.error.code.as_deref(), Some("1e999"));
        let resource =
            parse_resource(br#"{"properties":1e999,"provisioningState":"Creating"}"#).unwrap();
        assert_eq!(resource.provisioning_state.as_deref(), Some("Creating"));
    }

    #[test]
    fn unreadable_initial_bodies_meant_as_objects() {
        assert!(meant_as_json_object(
            br#"{ "properties": { "provisioningState": "Creating"}, "id": "100""#,
            true
        ));
        assert!(meant_as_json_object(b"  {\"provisioningState\":3}", false));
        assert!(meant_as_json_object(b"not json", true));
        assert!(!meant_as_json_object(b"not json", false));
        assert!(!meant_as_json_object(b"[1, 2]", true));
        assert!(!meant_as_json_object(b"\"text\"", true));
    }

    #[test]
    fn resource_error_detail() {
        let r = parse_resource(br#"{"properties":{"provisioningState":"Failed"},"error":{"code":"Quota","message":"no"}}"#)
            .unwrap();
        assert_eq!(r.error.code.as_deref(), Some("Quota"));
        assert_eq!(r.error.message.as_deref(), Some("no"));
    }
}
