//! Reading JSON bodies the way every dialect needs: strings borrowed from the body, optional
//! members scanned as raw text first (so a number past `f64`'s range there is ignored rather than
//! failing the body), and the `{"error": {"code", "message"}}` envelope of error answers.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// `error { code, message }` of a failed or canceled operation. A code or message that is empty
/// or all whitespace is absent ([`detail_text`]), so that another source (the `x-ms-error-code`
/// header) can speak.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct CodeAndMessage<'a> {
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

/// JSON text is UTF-8 (RFC 8259): checked once for the whole body, in one fast pass, so that
/// serde_json need not check each string again.
pub(crate) fn utf8<'a>(body: &'a [u8], what: &str) -> Result<&'a str, Malformed> {
    std::str::from_utf8(body).map_err(|e| Malformed(format!("the {what} body is not UTF-8: {e}")))
}

/// `error { code, message }`, or nothing when it is not an object. A `code` that is a number is
/// kept as its JSON text (`1e999` stays `"1e999"`); members of other types are ignored.
pub(crate) fn error_detail<'de>(raw: &'de RawValue) -> CodeAndMessage<'de> {
    if !raw.get().starts_with('{') {
        return CodeAndMessage::default();
    }
    struct ErrorVisitor;
    impl<'de> Visitor<'de> for ErrorVisitor {
        type Value = CodeAndMessage<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an error object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut detail = CodeAndMessage::default();
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "code" => detail.code = detail_text(code(map.next_value()?)),
                    "message" => detail.message = detail_text(text(map.next_value()?)),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(detail)
        }
    }
    serde_json::Deserializer::from_str(raw.get())
        .deserialize_map(ErrorVisitor)
        .unwrap_or_default()
}

/// The error details of a response that ended an operation by its HTTP status: Azure's envelope
/// `{"error": {"code", "message"}}`, else a top-level `{"code", "message"}`. Anything else —
/// not JSON, not an object, members of other types — yields no details; the caller keeps the
/// raw body either way.
pub(crate) fn parse_error_envelope(body: &[u8]) -> CodeAndMessage<'_> {
    struct EnvelopeVisitor;
    impl<'de> Visitor<'de> for EnvelopeVisitor {
        type Value = CodeAndMessage<'de>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let (mut nested, mut top_level) = (None, CodeAndMessage::default());
            while let Some(key) = map.next_key::<Text<'de>>()? {
                match &*key.0 {
                    "error" => {
                        let detail = error_detail(map.next_value()?);
                        nested = (detail != CodeAndMessage::default()).then_some(detail);
                    }
                    "code" => top_level.code = detail_text(code(map.next_value()?)),
                    "message" => top_level.message = detail_text(text(map.next_value()?)),
                    _ => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(nested.unwrap_or(top_level))
        }
    }
    let Ok(text) = std::str::from_utf8(body) else {
        return CodeAndMessage::default();
    };
    if !text.trim_start().starts_with('{') {
        return CodeAndMessage::default();
    }
    serde_json::Deserializer::from_str(text)
        .deserialize_map(EnvelopeVisitor)
        .unwrap_or_default()
}

/// A JSON string, borrowed from the body unless it had escapes.
pub(crate) struct Text<'a>(pub(crate) Cow<'a, str>);

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

/// An optional string member: `None` unless it is a JSON string. Borrowed when it has no escapes.
pub(crate) fn text(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(json).ok().map(Cow::Owned)
}

/// An optional number member: `None` unless it is a JSON number within `f64`'s range.
pub(crate) fn number(raw: &RawValue) -> Option<f64> {
    let json = raw.get();
    if !json.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return None;
    }
    json.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// An error code or message as the service's detail: one that is empty or all whitespace says
/// nothing, and is absent.
pub(crate) fn detail_text(text: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    text.filter(|text| !text.trim().is_empty())
}

/// An error code: a string, or a number kept as its JSON text (Google's codes are integers).
pub(crate) fn code(raw: &RawValue) -> Option<Cow<'_, str>> {
    let json = raw.get();
    if json.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
        return Some(Cow::Borrowed(json));
    }
    text(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_envelopes() {
        let detail = |body: &[u8]| {
            let d = parse_error_envelope(body);
            (d.code.map(Cow::into_owned), d.message.map(Cow::into_owned))
        };
        let some = |c: &str, m: &str| (Some(c.to_owned()), Some(m.to_owned()));
        assert_eq!(
            detail(br#"{"error":{"code":"StorageAccountAlreadyTaken","message":"taken"}}"#),
            some("StorageAccountAlreadyTaken", "taken")
        );
        assert_eq!(
            detail(br#"{"code":"Conflict","message":"no"}"#),
            some("Conflict", "no")
        );
        // The nested envelope wins over top-level members, in either order.
        assert_eq!(
            detail(br#"{"code":"Outer","error":{"code":"Inner","message":"m"}}"#),
            some("Inner", "m")
        );
        assert_eq!(
            detail(br#"{"error":{"code":404,"message":"gone","status":"NOT_FOUND"}}"#),
            some("404", "gone")
        );
        // An `error` whose code is empty has no code; one with nothing but empty members leaves
        // the top level to speak.
        assert_eq!(
            detail(br#"{"error":{"code":"","message":"m"}}"#),
            (None, Some("m".to_owned()))
        );
        assert_eq!(
            detail(br#"{"error":{"code":"  ","message":""},"code":"C","message":"M"}"#),
            some("C", "M")
        );
        // An `error` that is not an object leaves the top level to speak.
        assert_eq!(
            detail(br#"{"error":"boom","code":"C","message":"M"}"#),
            some("C", "M")
        );
        for body in [
            &b""[..],
            b"<html>502</html>",
            b"{\"error\":{\"code\":\"Trunc",
            b"[{\"code\":\"X\"}]",
            b"\xff{}",
            b"{\"error\":{}}",
            // Empty or blank codes and messages say nothing.
            b"{\"error\":{\"code\":\"\",\"message\":\"\"}}",
            b"{\"error\":{\"code\":\" \",\"message\":\"\\t\"}}",
            b"{\"code\":\"\",\"message\":\"  \"}",
        ] {
            assert_eq!(
                detail(body),
                (None, None),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
