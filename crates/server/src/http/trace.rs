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
