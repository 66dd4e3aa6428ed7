//! OpenTelemetry (feature `opentelemetry`): the W3C trace context of an operation's start, read
//! from its span, and links to it from the spans that continue the operation later, in this
//! process or another. A step is a short span of its own, linked to the start, rather than a
//! child of a span kept open for the hours an operation may take.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::protocol::trace_context::TraceContext;

/// The trace context of `span`, the operation's span at its start: `None` unless an
/// OpenTelemetry layer records it.
pub(crate) fn capture(span: &tracing::Span) -> Option<TraceContext> {
    if span.is_disabled() {
        return None;
    }
    let context = span.context();
    let span = context.span();
    let start = span.span_context();
    if !start.is_valid() {
        return None;
    }
    TraceContext::new(
        start.trace_id().to_bytes(),
        start.span_id().to_bytes(),
        start.trace_flags().to_u8(),
        &start.trace_state().header(),
    )
}

/// Links `span` (a step, a resumption, a cancel) to the operation's start.
pub(crate) fn link(span: &tracing::Span, start: &TraceContext) {
    if span.is_disabled() {
        return;
    }
    let (trace_id, span_id, flags) = start.ids();
    // Checked when the token was read; OpenTelemetry's own parser has the last word.
    let state = start
        .tracestate()
        .and_then(|state| state.parse::<TraceState>().ok())
        .unwrap_or_default();
    span.add_link(SpanContext::new(
        TraceId::from_bytes(trace_id),
        SpanId::from_bytes(span_id),
        TraceFlags::new(flags),
        true,
        state,
    ));
}
