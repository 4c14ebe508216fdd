//! A receive's reply written straight from the engine's deliveries: the JSON list
//! (`MessageListBody`) and the binary batch's frames, byte for byte what serializing a
//! `MessageBody` per delivery gives (the tests hold them to it), without building one. The
//! reply of an ack, nack or lease call (`ReceiptResultsBody`) is written the same way.
//!
//! A receive is the door's busiest reply. Through serde, each delivery was moved into a
//! `MessageBody`, each member name escaped again, and each field dispatched through the
//! serializer; here member names are constants, a string is copied as it is unless it holds
//! a byte JSON escapes, and a base64 body is encoded into the reply itself.

use super::wire::{json_body, ReceiptResultBody};
use base64_simd::STANDARD as BASE64;
use wharf_engine::broker::{Delivery, ReceiptResult, Sent};
use wharf_model::frames::encode_frame_with;

/// `{"messages":[...]}` with each delivery's body as JSON text or base64.
pub fn json_list(deliveries: &[Delivery]) -> Vec<u8> {
    let room: usize = (deliveries.iter())
        .map(|delivery| delivery.message.body.len().div_ceil(3) * 4 + 512)
        .sum();
    object_with_list("messages", room, deliveries, |out, delivery| {
        write_delivery(out, delivery, Body::Inline)
    })
}

/// `{"<name>":[...]}`, each item written by `write`, in a buffer of `room` bytes and a little.
fn object_with_list<T>(
    name: &str,
    room: usize,
    items: impl IntoIterator<Item = T>,
    mut write: impl FnMut(&mut Vec<u8>, T),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(room + name.len() + 8);
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":[");
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        write(&mut out, item);
    }
    out.extend_from_slice(b"]}");
    out
}

/// The frames of a binary batch: each delivery's fields but its body as the meta, then the
/// body as it is.
pub fn batch_frames(deliveries: &[Delivery]) -> Vec<u8> {
    let room: usize = (deliveries.iter())
        .map(|delivery| delivery.message.body.len() + 512)
        .sum();
    let mut out = Vec::with_capacity(room);
    for delivery in deliveries {
        encode_frame_with(
            &mut out,
            |meta| write_delivery(meta, delivery, Body::Apart),
            &delivery.message.body,
        );
    }
    out
}

/// `{"messages":[{"id":...,"duplicate":...},...]}`: a send's ids, in request order.
pub fn sent_list(sent: &[Sent]) -> Vec<u8> {
    let room: usize = sent.iter().map(|sent| sent.id.len() + 32).sum();
    object_with_list("messages", room, sent, |out, sent| {
        out.extend_from_slice(b"{\"id\":");
        string(out, &sent.id);
        out.extend_from_slice(match sent.duplicate {
            true => b",\"duplicate\":true}",
            false => b",\"duplicate\":false}",
        });
    })
}

/// `{"results":[...]}`: each applied receipt as `{"receipt":...,"ok":true}`; a failed one
/// (rare) through `ReceiptResultBody`, which words its error.
pub fn receipt_results(results: Vec<ReceiptResult>) -> Vec<u8> {
    let room: usize = (results.iter())
        .map(|result| result.receipt.len() + 32)
        .sum();
    object_with_list("results", room, results, |out, result| {
        if result.error.is_some() {
            // Writing a struct of strings to a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *out, &ReceiptResultBody::from(result));
            return;
        }
        out.extend_from_slice(b"{\"receipt\":");
        string(out, &result.receipt);
        out.extend_from_slice(b",\"ok\":true}");
    })
}

/// Whether the body is a member of the object or travels apart (a batch frame's body).
#[derive(Clone, Copy)]
enum Body {
    Inline,
    Apart,
}

/// One delivery as a JSON object, members in `MessageBody`'s order and with its omissions.
fn write_delivery(out: &mut Vec<u8>, delivery: &Delivery, body: Body) {
    let message = &delivery.message;
    out.extend_from_slice(b"{\"id\":");
    string(out, &message.id);
    if let Body::Inline = body {
        match json_body(&message.content_type, &message.body) {
            Some(json) => {
                out.extend_from_slice(b",\"body\":");
                out.extend_from_slice(json.get().as_bytes());
            }
            None => {
                // The base64 alphabet needs no escaping.
                out.extend_from_slice(b",\"body_base64\":\"");
                BASE64.encode_append(&message.body, out);
                out.push(b'"');
            }
        }
    }
    out.extend_from_slice(b",\"content_type\":");
    string(out, &message.content_type);
    out.extend_from_slice(b",\"headers\":{");
    for (index, (name, value)) in message.headers.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        string(out, value);
    }
    out.extend_from_slice(b"},\"priority\":");
    number(out, message.priority);
    out.extend_from_slice(b",\"group\":");
    optional_string(out, message.group.as_deref());
    out.extend_from_slice(b",\"correlation_id\":");
    optional_string(out, message.correlation_id.as_deref());
    out.extend_from_slice(b",\"reply_to\":");
    optional_string(out, message.reply_to.as_deref());
    out.extend_from_slice(b",\"sent_at\":");
    number(out, message.sent_at);
    if let Some(deliver_at) = message.deliver_at {
        out.extend_from_slice(b",\"deliver_at\":");
        number(out, deliver_at);
    }
    if let Some(expires_at) = message.expires_at {
        out.extend_from_slice(b",\"expires_at\":");
        number(out, expires_at);
    }
    out.extend_from_slice(b",\"delivery_count\":");
    number(out, delivery.delivery_count);
    out.extend_from_slice(b",\"first_delivered_at\":");
    number(out, delivery.first_delivered_at);
    out.extend_from_slice(b",\"last_delivered_at\":");
    number(out, delivery.last_delivered_at);
    out.extend_from_slice(b",\"receipt\":");
    string(out, &delivery.receipt);
    if let Some(dead_letter) = &message.dead_letter {
        out.extend_from_slice(b",\"dead_letter\":{\"reason\":");
        string(out, dead_letter.reason.as_str());
        out.extend_from_slice(b",\"source_queue\":");
        string(out, &dead_letter.source_queue);
        out.extend_from_slice(b",\"at\":");
        number(out, dead_letter.at);
        out.extend_from_slice(b",\"delivery_count\":");
        number(out, dead_letter.delivery_count);
        out.extend_from_slice(b",\"last_error\":");
        optional_string(out, dead_letter.last_error.as_deref());
        out.push(b'}');
    }
    out.push(b'}');
}

/// A JSON string, escaped as serde_json escapes it.
fn string(out: &mut Vec<u8>, text: &str) {
    // Ids, receipts and most header values hold nothing to escape: copied as they are. The
    // check runs over every byte without stopping early, which the compiler turns into vector
    // instructions (a stopping scan went byte by byte, 2% of a receive in profiles).
    let escapes = (text.bytes()).fold(false, |found, byte| {
        found | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    });
    if !escapes {
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
        return;
    }
    // Writing a string to a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

fn optional_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

fn number(out: &mut Vec<u8>, value: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::queues::wire::{
        MessageBody, MessageListBody, ReceiptResultsBody, SentBody, SentListBody,
    };
    use bytes::Bytes;
    use proptest::prelude::*;
    use wharf_model::{
        frames::decode_frames,
        message::{DeadLetter, DeadLetterReason, Message},
    };

    /// Any text: escapes, control characters, quotes and characters beyond ASCII included.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9-]{0,12}",
            "\\PC{0,8}",
            proptest::collection::vec(any::<char>(), 0..8)
                .prop_map(|chars| chars.into_iter().collect()),
        ]
    }

    fn body() -> impl Strategy<Value = (String, Vec<u8>)> {
        prop_oneof![
            Just((
                "application/json".to_string(),
                br#"{"a": [1, 2.5, "x"]}"#.to_vec()
            )),
            Just((
                "application/problem+json".to_string(),
                b"{\"multi\":\n\"line\"}".to_vec()
            )),
            Just(("application/json".to_string(), b"not json".to_vec())),
            (text(), proptest::collection::vec(any::<u8>(), 0..64)),
        ]
    }

    fn dead_letter() -> impl Strategy<Value = Option<DeadLetter>> {
        let reason = prop_oneof![
            Just(DeadLetterReason::MaxDeliveries),
            Just(DeadLetterReason::Expired),
            Just(DeadLetterReason::Rejected),
            Just(DeadLetterReason::Overflow),
        ];
        proptest::option::of(
            (
                reason,
                text(),
                any::<u64>(),
                any::<u32>(),
                proptest::option::of(text()),
            )
                .prop_map(|(reason, source_queue, at, delivery_count, last_error)| {
                    DeadLetter {
                        reason,
                        source_queue,
                        at,
                        delivery_count,
                        last_error,
                    }
                }),
        )
    }

    prop_compose! {
        fn delivery()(
            id in text(),
            (content_type, body) in body(),
            headers in proptest::collection::btree_map(text(), text(), 0..4),
            priority in 0u8..10,
            group in proptest::option::of(text()),
            correlation_id in proptest::option::of(text()),
            reply_to in proptest::option::of(text()),
            times in any::<(u64, Option<u64>, Option<u64>, u64, u64)>(),
            dead_letter in dead_letter(),
            receipt in text(),
            delivery_count in any::<u32>(),
        ) -> Delivery {
            let (sent_at, deliver_at, expires_at, first_delivered_at, last_delivered_at) = times;
            Delivery {
                message: Message {
                    id,
                    body: Bytes::from(body),
                    content_type,
                    headers,
                    priority,
                    group,
                    correlation_id,
                    reply_to,
                    sent_at,
                    deliver_at,
                    expires_at,
                    dead_letter,
                },
                receipt,
                delivery_count,
                first_delivered_at,
                last_delivered_at,
            }
        }
    }

    /// Applied, or failed for one of the reasons a client can meet.
    fn receipt_result() -> impl Strategy<Value = ReceiptResult> {
        use wharf_engine::{
            broker::ReceiptFailure,
            queue::{ReceiptError, ReceiptParseError},
        };
        (text(), 0..4u8).prop_map(|(receipt, kind)| {
            let error = match kind {
                0 => None,
                1 => Some(ReceiptFailure::Malformed(ReceiptParseError::Malformed {
                    text: receipt.clone(),
                })),
                2 => Some(ReceiptFailure::Refused(ReceiptError::OtherQueue {
                    queue: "q\"1".to_string(),
                })),
                _ => Some(ReceiptFailure::Refused(ReceiptError::NotIssued {
                    queue: "q".to_string(),
                })),
            };
            ReceiptResult { receipt, error }
        })
    }

    proptest! {
        #[test]
        fn a_sent_list_is_its_body_serialized(
            sent in proptest::collection::vec((text(), any::<bool>()), 0..5),
        ) {
            let sent: Vec<Sent> = (sent.into_iter())
                .map(|(id, duplicate)| Sent { id, duplicate })
                .collect();
            let messages = sent.iter().cloned().map(SentBody::from).collect();
            let expected = serde_json::to_vec(&SentListBody { messages }).expect("serialized");
            let written = sent_list(&sent);
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
        }

        #[test]
        fn receipt_results_are_their_bodies_serialized(
            results in proptest::collection::vec(receipt_result(), 0..5),
        ) {
            let bodies = results.iter().cloned().map(ReceiptResultBody::from).collect();
            let expected = serde_json::to_vec(&ReceiptResultsBody { results: bodies })
                .expect("serialized");
            let written = receipt_results(results);
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
        }

        #[test]
        fn the_json_list_is_the_message_bodies_serialized(
            deliveries in proptest::collection::vec(delivery(), 0..4),
        ) {
            let messages = deliveries.iter().cloned().map(MessageBody::from).collect();
            let expected = serde_json::to_vec(&MessageListBody { messages }).expect("serialized");
            let written = json_list(&deliveries);
            prop_assert_eq!(
                String::from_utf8_lossy(&written),
                String::from_utf8_lossy(&expected)
            );
        }

        #[test]
        fn a_batch_frame_is_the_message_body_without_its_body_then_the_body(
            deliveries in proptest::collection::vec(delivery(), 0..4),
        ) {
            let frames = decode_frames(&Bytes::from(batch_frames(&deliveries)), 100)
                .expect("frames");
            prop_assert_eq!(frames.len(), deliveries.len());
            for (frame, delivery) in frames.iter().zip(&deliveries) {
                prop_assert_eq!(&frame.body, &delivery.message.body);
                let mut fields = MessageBody::from(delivery.clone());
                (fields.body, fields.body_base64) = (None, None);
                let expected = serde_json::to_vec(&fields).expect("serialized");
                prop_assert_eq!(
                    String::from_utf8_lossy(&frame.meta),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }
}
