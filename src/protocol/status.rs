//! Reading operation status from JSON bodies (PROTOCOL §3).
//!
//! The parsers are hand-written serde visitors rather than a `serde_json::Value` tree: they
//! borrow from the body where they can, skip unknown members without allocating, and let us be
//! strict where the protocol needs it (`status` must be a string) yet lenient on optional
//! members (a `percentComplete` of `"50%"` must not fail an operation).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize as _;

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
    pub(crate) error: ErrorDetail<'a>,
}

/// `error { code, message }` of a failed or canceled operation.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ErrorDetail<'a> {
    pub(crate) code: Option<Cow<'a, str>>,
    pub(crate) message: Option<Cow<'a, str>>,
}

/// Why a status body could not be read. The text ends up in the error message.
#[derive(Debug, PartialEq)]
pub(crate) struct Malformed(pub(crate) String);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
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
    pub(crate) error: ErrorDetail<'a>,
}

/// Parses a resource body. An empty body has no `provisioningState`; anything that is not a JSON
/// object, or a `provisioningState` that is not a string, is malformed.
pub(crate) fn parse_resource(body: &[u8]) -> Result<Resource<'_>, Malformed> {
    if body.trim_ascii().is_empty() {
        return Ok(Resource {
            provisioning_state: None,
            error: ErrorDetail::default(),
        });
    }
    let mut de = serde_json::Deserializer::from_str(utf8(body, "resource")?);
    let resource = de
        .deserialize_map(ResourceVisitor)
        .and_then(|parsed| de.end().map(|()| parsed))
        .map_err(|e| Malformed(format!("the resource body is not a JSON object: {e}")))?;
    Ok(resource)
}

/// JSON text is UTF-8 (RFC 8259): checked once for the whole body, in one fast pass, so that
/// serde_json need not check each string again.
fn utf8<'a>(body: &'a [u8], what: &str) -> Result<&'a str, Malformed> {
    std::str::from_utf8(body).map_err(|e| Malformed(format!("the {what} body is not UTF-8: {e}")))
}

#[derive(Default)]
struct PartialStatus<'a> {
    status: Option<Cow<'a, str>>,
    percent_complete: Option<f64>,
    id: Option<Cow<'a, str>>,
    name: Option<Cow<'a, str>>,
    resource_location: Option<Cow<'a, str>>,
    error: ErrorDetail<'a>,
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
                "percentComplete" => out.percent_complete = map.next_value::<Lenient<f64>>()?.0,
                "id" => out.id = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0),
                "name" => out.name = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0),
                "resourceLocation" => {
                    out.resource_location = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0);
                }
                "error" => {
                    out.error = map
                        .next_value::<Lenient<ErrorDetail<'de>>>()?
                        .0
                        .unwrap_or_default()
                }
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
        let mut error = ErrorDetail::default();
        while let Some(key) = map.next_key::<Text<'de>>()? {
            match &*key.0 {
                "provisioningState" => {
                    top_level = map.next_value::<Option<Text<'de>>>()?.map(|t| t.0);
                }
                "properties" => {
                    in_properties = map
                        .next_value::<Option<Properties<'de>>>()?
                        .and_then(|p| p.0);
                }
                "error" => {
                    error = map
                        .next_value::<Lenient<ErrorDetail<'de>>>()?
                        .0
                        .unwrap_or_default()
                }
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

/// `properties` of a resource: only `provisioningState` matters. A `properties` that is not an
/// object is some provider's own data, not a state, so it reads as "no state here".
struct Properties<'a>(Option<Cow<'a, str>>);

impl<'de> de::Deserialize<'de> for Properties<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;
        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = Properties<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
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
                Ok(Properties(state))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Properties(None))
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Properties(None))
            }
        }
        deserializer.deserialize_any(PropertiesVisitor)
    }
}

impl<'de> de::Deserialize<'de> for ErrorDetail<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ErrorVisitor;
        impl<'de> Visitor<'de> for ErrorVisitor {
            type Value = ErrorDetail<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an error object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut detail = ErrorDetail::default();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match &*key.0 {
                        "code" => {
                            detail.code = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0)
                        }
                        "message" => {
                            detail.message = map.next_value::<Lenient<Text<'de>>>()?.0.map(|t| t.0);
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(detail)
            }
        }
        deserializer.deserialize_map(ErrorVisitor)
    }
}

/// A JSON string, borrowed from the body unless it had escapes.
struct Text<'a>(Cow<'a, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(TextVisitor)
    }
}

/// An optional member that reads as `None` when it has another type than expected, instead of
/// failing the whole body. Values of the wrong type are skipped without allocating.
struct Lenient<T>(Option<T>);

/// What a [`Lenient`] member accepts.
trait LenientValue<'de>: Sized {
    fn from_str(v: Cow<'de, str>) -> Option<Self>;
    fn from_f64(v: f64) -> Option<Self>;
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error>;
}

impl<'de> LenientValue<'de> for Text<'de> {
    fn from_str(v: Cow<'de, str>) -> Option<Self> {
        Some(Text(v))
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }
}

impl<'de> LenientValue<'de> for f64 {
    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn from_f64(v: f64) -> Option<Self> {
        v.is_finite().then_some(v)
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        IgnoredAny.visit_map(map).map(|_| None)
    }
}

impl<'de> LenientValue<'de> for ErrorDetail<'de> {
    fn from_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn from_f64(_: f64) -> Option<Self> {
        None
    }
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
        ErrorDetail::deserialize(de::value::MapAccessDeserializer::new(map)).map(Some)
    }
}

impl<'de, T: LenientValue<'de>> de::Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LenientVisitor<T>(std::marker::PhantomData<T>);
        impl<'de, T: LenientValue<'de>> Visitor<'de> for LenientVisitor<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_str(Cow::Borrowed(v))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_str(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_str(Cow::Owned(v))))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_f64(v)))
            }
            #[allow(clippy::cast_precision_loss)] // a percentage, not an identifier
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_f64(v as f64)))
            }
            #[allow(clippy::cast_precision_loss)]
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(Lenient(T::from_f64(v as f64)))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lenient(None))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                IgnoredAny.visit_seq(seq).map(|_| Lenient(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::from_map(map).map(Lenient)
            }
        }
        deserializer.deserialize_any(LenientVisitor(std::marker::PhantomData))
    }
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
        assert_eq!(parsed.error, ErrorDetail::default());
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
    fn resource_error_detail() {
        let r = parse_resource(br#"{"properties":{"provisioningState":"Failed"},"error":{"code":"Quota","message":"no"}}"#)
            .unwrap();
        assert_eq!(r.error.code.as_deref(), Some("Quota"));
        assert_eq!(r.error.message.as_deref(), Some("no"));
    }
}
