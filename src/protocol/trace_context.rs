//! W3C Trace Context (<https://www.w3.org/TR/trace-context/>): the `traceparent` and
//! `tracestate` of an operation's start, as a resume token carries them to the processes that
//! continue it. A token is data from outside, so both are checked whenever one is read: what is
//! not well formed, or is longer than the bounds below, is dropped rather than passed on.

/// The one `traceparent` version read and written: `00-{trace id}-{parent id}-{flags}`.
const TRACEPARENT_LEN: usize = 55;

/// The longest `tracestate` carried: what the specification asks every vendor to propagate.
/// A longer one is dropped whole (the `traceparent` stays).
pub(crate) const MAX_TRACESTATE: usize = 512;

/// The most list members a `tracestate` may have.
const MAX_MEMBERS: usize = 32;

/// A checked trace context: a version 00 `traceparent` whose trace id and parent id are not all
/// zeros, and a well-formed `tracestate` when one was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TraceContext {
    trace_id: [u8; 16],
    span_id: [u8; 8],
    flags: u8,
    tracestate: Option<String>,
}

impl TraceContext {
    /// Reads a `traceparent` and its `tracestate`: `None` when the `traceparent` is malformed; a
    /// malformed or oversized `tracestate` is left out.
    pub(crate) fn parse(traceparent: &str, tracestate: Option<&str>) -> Option<TraceContext> {
        let bytes = traceparent.as_bytes();
        if bytes.len() != TRACEPARENT_LEN
            || !bytes.starts_with(b"00-")
            || bytes[35] != b'-'
            || bytes[52] != b'-'
        {
            return None;
        }
        let mut trace_id = [0; 16];
        let mut span_id = [0; 8];
        let mut flags = [0; 1];
        hex(&bytes[3..35], &mut trace_id)?;
        hex(&bytes[36..52], &mut span_id)?;
        hex(&bytes[53..55], &mut flags)?;
        TraceContext::new(trace_id, span_id, flags[0], tracestate.unwrap_or_default())
    }

    /// A context from its parts; `None` for an all-zero trace id or span id (invalid in W3C
    /// terms). An empty, malformed or oversized `tracestate` is left out.
    pub(crate) fn new(
        trace_id: [u8; 16],
        span_id: [u8; 8],
        flags: u8,
        tracestate: &str,
    ) -> Option<TraceContext> {
        if trace_id == [0; 16] || span_id == [0; 8] {
            return None;
        }
        Some(TraceContext {
            trace_id,
            span_id,
            flags,
            tracestate: tracestate_is_valid(tracestate).then(|| tracestate.to_owned()),
        })
    }

    /// The `traceparent` header value.
    pub(crate) fn traceparent(&self) -> String {
        use std::fmt::Write;
        let mut text = String::with_capacity(TRACEPARENT_LEN);
        text.push_str("00-");
        for byte in self.trace_id {
            let _ = write!(text, "{byte:02x}");
        }
        text.push('-');
        for byte in self.span_id {
            let _ = write!(text, "{byte:02x}");
        }
        let _ = write!(text, "-{:02x}", self.flags);
        text
    }

    /// The `tracestate` header value, when there is one.
    pub(crate) fn tracestate(&self) -> Option<&str> {
        self.tracestate.as_deref()
    }

    /// The trace id, the span id of the operation's start, and the trace flags.
    #[cfg(feature = "opentelemetry")]
    pub(crate) fn ids(&self) -> ([u8; 16], [u8; 8], u8) {
        (self.trace_id, self.span_id, self.flags)
    }
}

/// Decodes lowercase hex (the only case W3C allows) into `out`, which it fills exactly.
fn hex(text: &[u8], out: &mut [u8]) -> Option<()> {
    if text.len() != out.len() * 2 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    for (byte, pair) in out.iter_mut().zip(text.chunks_exact(2)) {
        *byte = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(())
}

/// Whether `text` is a non-empty `tracestate` of at most [`MAX_TRACESTATE`] characters and
/// [`MAX_MEMBERS`] members, each `key=value` as W3C defines them.
fn tracestate_is_valid(text: &str) -> bool {
    if text.is_empty() || text.len() > MAX_TRACESTATE {
        return false;
    }
    let mut members = 0;
    for member in text.split(',') {
        let member = member.trim_matches([' ', '\t']);
        // Empty members (`a=1,,b=2`) are allowed and count for nothing.
        if member.is_empty() {
            continue;
        }
        members += 1;
        let Some((key, value)) = member.split_once('=') else {
            return false;
        };
        if members > MAX_MEMBERS || !key_is_valid(key) || !value_is_valid(value) {
            return false;
        }
    }
    members > 0
}

/// `simple-key`, or `tenant-id@system-id`.
fn key_is_valid(key: &str) -> bool {
    let rest = |c: u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/');
    let part = |text: &str, first: fn(u8) -> bool, max: usize| {
        let bytes = text.as_bytes();
        !bytes.is_empty()
            && bytes.len() <= max
            && first(bytes[0])
            && bytes[1..].iter().all(|&c| rest(c))
    };
    match key.split_once('@') {
        None => part(key, |c| c.is_ascii_lowercase(), 256),
        Some((tenant, system)) => {
            part(
                tenant,
                |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
                241,
            ) && part(system, |c| c.is_ascii_lowercase(), 14)
        }
    }
}

/// Up to 256 printable ASCII characters but `,` and `=` (a trailing space was trimmed with the
/// member's).
fn value_is_valid(value: &str) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 256
        && bytes
            .iter()
            .all(|&c| matches!(c, b' '..=b'~') && c != b',' && c != b'=')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparents() {
        let cases: &[(&str, bool)] = &[
            (GOOD, true),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                true,
            ),
            // Uppercase hex, another version, all-zero ids, wrong lengths and separators.
            (
                "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
                false,
            ),
            (
                "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
                false,
            ),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-+1",
                false,
            ),
            (
                "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                false,
            ),
            ("", false),
            (
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902é-01",
                false,
            ),
        ];
        for &(text, valid) in cases {
            let parsed = TraceContext::parse(text, None);
            assert_eq!(parsed.is_some(), valid, "{text}");
            if let Some(context) = parsed {
                assert_eq!(context.traceparent(), text, "written back as read");
            }
        }
        let context = TraceContext::parse(GOOD, None).unwrap();
        assert_eq!(context.trace_id[0], 0x4b);
        assert_eq!(context.span_id[7], 0xb7);
        assert_eq!(context.flags, 1);
    }

    #[test]
    fn tracestates() {
        let long_value = "v".repeat(256);
        let too_long_value = "v".repeat(257);
        let thirty_two = (0..32).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        let thirty_three = (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>();
        let cases: &[(&str, bool)] = &[
            ("rojo=00f067aa0ba902b7", true),
            ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true),
            (" rojo=1 ,\tcongo=2 ", true),
            ("rojo=1,,congo=2", true),
            ("tenant1@system=x", true),
            ("a-b_c*d/e=x y", true),
            (&format!("k={long_value}"), true),
            (&thirty_two.join(","), true),
            ("", false),
            (",", false),
            ("rojo", false),
            ("Rojo=1", false),
            ("1rojo=1", false),
            ("rojo=", false),
            ("rojo=a=b", false),
            // Spaces and tabs around a member are list whitespace, not part of its value.
            ("rojo=trailing ", true),
            ("rojo=del\u{7f}", false),
            ("rojo=tab\there", false),
            ("rojo=é", false),
            ("@system=x", false),
            ("tenant@=x", false),
            ("tenant@system15characters=x", false),
            (&format!("k={too_long_value}"), false),
            (&thirty_three.join(","), false),
            (&format!("a={long_value},b={long_value}"), false),
        ];
        for &(text, valid) in cases {
            let context = TraceContext::parse(GOOD, Some(text)).unwrap();
            assert_eq!(context.tracestate().is_some(), valid, "{text:?}");
        }
        assert!(
            format!("a={long_value},b={long_value}").len() > MAX_TRACESTATE,
            "the last case is over the bound"
        );
    }
}
