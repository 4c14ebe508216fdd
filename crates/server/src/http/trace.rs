//! W3C Trace Context: the `traceparent` header of a send or publish request travels with each
//! message the request carries, as the message header `traceparent`, and is delivered with it,
//! so a consumer continues the producer's trace. A message that names its own `traceparent`
//! keeps it.

use axum::http::HeaderMap;
use std::collections::BTreeMap;

/// The name of the HTTP header and of the message header.
pub const TRACEPARENT: &str = "traceparent";

/// The request's `traceparent` when it is valid (Trace Context level 1: `VERSION-TRACEID-
/// PARENTID-FLAGS` in lowercase hex, ids not all zero, version not `ff`; a later version may
/// append fields after a `-`). An invalid one is ignored, as the specification asks.
pub fn traceparent(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(TRACEPARENT)?.to_str().ok()?.trim();
    valid(value).then(|| value.to_string())
}

fn valid(value: &str) -> bool {
    let hex = |text: &str| {
        text.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    let nonzero = |text: &str| text.bytes().any(|b| b != b'0');
    let (Some(head), rest) = (value.get(..55), value.get(55..).unwrap_or("")) else {
        return false;
    };
    let fields: Vec<&str> = head.split('-').collect();
    let [version, trace_id, parent_id, flags] = fields.as_slice() else {
        return false;
    };
    let shaped = version.len() == 2 && trace_id.len() == 32 && parent_id.len() == 16;
    let known_tail = if *version == "00" {
        rest.is_empty()
    } else {
        rest.is_empty() || rest.starts_with('-')
    };
    shaped
        && flags.len() == 2
        && [*version, *trace_id, *parent_id, *flags]
            .into_iter()
            .all(hex)
        && *version != "ff"
        && nonzero(trace_id)
        && nonzero(parent_id)
        && known_tail
}

/// The remote parent a valid `traceparent` names, for the request's span (see `telemetry`):
/// spans the server exports continue the caller's trace.
pub fn remote_parent(traceparent: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
    };
    let trace_id = TraceId::from_hex(traceparent.get(3..35)?).ok()?;
    let span_id = SpanId::from_hex(traceparent.get(36..52)?).ok()?;
    let flags = u8::from_str_radix(traceparent.get(53..55)?, 16).ok()?;
    let flags = TraceFlags::new(flags) & TraceFlags::SAMPLED;
    let context = SpanContext::new(trace_id, span_id, flags, true, TraceState::default());
    Some(opentelemetry::Context::new().with_remote_span_context(context))
}

/// Gives `headers` the request's `traceparent` unless the message names its own.
pub fn carry(traceparent: Option<&str>, headers: &mut BTreeMap<String, String>) {
    if let Some(traceparent) = traceparent {
        (headers.entry(TRACEPARENT.to_string())).or_insert_with(|| traceparent.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn valid_traceparents_pass_and_malformed_ones_are_ignored() {
        assert!(valid(GOOD));
        assert!(valid(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"
        ));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        ] {
            assert!(!valid(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_traceparent_names_the_remote_parent_span() {
        use opentelemetry::trace::{TraceContextExt, TraceId};
        let parent = remote_parent(GOOD).expect("a parent");
        let span = parent.span();
        let context = span.span_context();
        assert!(context.is_remote() && context.is_sampled());
        let trace_id = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("hex");
        assert_eq!(context.trace_id(), trace_id);
        assert_eq!(format!("{}", context.span_id()), "00f067aa0ba902b7");
    }

    #[test]
    fn a_message_keeps_its_own_traceparent() {
        let mut own = BTreeMap::from([(TRACEPARENT.to_string(), "mine".to_string())]);
        carry(Some(GOOD), &mut own);
        assert_eq!(own[TRACEPARENT], "mine");
        let mut none = BTreeMap::new();
        carry(Some(GOOD), &mut none);
        assert_eq!(none[TRACEPARENT], GOOD);
        let mut untouched = BTreeMap::new();
        carry(None, &mut untouched);
        assert!(untouched.is_empty());
    }
}
