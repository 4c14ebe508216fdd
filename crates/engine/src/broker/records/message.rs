//! A message's fields inside a record (queue `enqueued`, topic `retained`). The body is not
//! among them: the record carries it raw, after every field, so a delivery slices it out of the
//! record without copying or decoding it.
//!
//! ```text
//! message      group { id str | content_type str | headers map | priority u8
//!                    | group opt<str> | correlation_id opt<str> | reply_to opt<str>
//!                    | sent_at varint | deliver_at opt<varint> | expires_at opt<varint>
//!                    | dead_letter opt<dead letter> }
//! dead letter  group { reason code | source_queue str | at varint | delivery_count varint
//!                    | last_error opt<str> }
//! ```
//!
//! Both are groups, so each can gain fields at its end (see docs/architecture.md, "Record
//! versions"). The released layout of the same fields is in `legacy.rs`.
//!
//! Dead-letter reason codes: 0 `max_deliveries`, 1 `expired`, 2 `rejected`, 3 `overflow`.

use super::codec::{DecodeError, Reader, Writer};
use bytes::Bytes;
use wharf_model::message::{DeadLetter, DeadLetterReason, Message};

/// Writes the message's fields as a group; the caller writes the body after the record's
/// fields.
pub(crate) fn write(w: &mut Writer<'_>, message: &Message) {
    w.group(|w| {
        w.str(&message.id);
        w.str(&message.content_type);
        w.map(&message.headers);
        w.u8(message.priority);
        w.opt_str(message.group.as_deref());
        w.opt_str(message.correlation_id.as_deref());
        w.opt_str(message.reply_to.as_deref());
        w.varint(message.sent_at);
        w.opt_varint(message.deliver_at);
        w.opt_varint(message.expires_at);
        w.opt(message.dead_letter.as_ref(), |w, dead_letter| {
            w.group(|w| write_dead_letter(w, dead_letter));
        });
    });
}

/// About how many bytes [`write`] takes for `message` (its group's length included), to size
/// the record's buffer once: the strings and a varint's worst case for every other field.
pub(crate) fn fields_bytes(message: &Message) -> usize {
    let strings = [
        Some(&message.id),
        Some(&message.content_type),
        message.group.as_ref(),
        message.correlation_id.as_ref(),
        message.reply_to.as_ref(),
    ];
    let strings: usize = strings.iter().flatten().map(|s| s.len() + 5).sum();
    let headers: usize = (message.headers.iter())
        .map(|(key, value)| key.len() + value.len() + 10)
        .sum();
    let dead_letter = (message.dead_letter.as_ref()).map_or(0, |dead| {
        dead.source_queue.len() + dead.last_error.as_ref().map_or(0, String::len) + 48
    });
    strings + headers + dead_letter + 48
}

/// Reads what [`write`] wrote; the body is left empty for the caller to fill.
pub(crate) fn read(r: &mut Reader<'_>) -> Result<Message, DecodeError> {
    let mut r = r.group("message")?;
    Ok(Message {
        id: r.str("id")?,
        body: Bytes::new(),
        content_type: r.str("content_type")?,
        headers: r.map("headers")?,
        priority: r.u8("priority")?,
        group: r.opt_str("group")?,
        correlation_id: r.opt_str("correlation_id")?,
        reply_to: r.opt_str("reply_to")?,
        sent_at: r.varint("sent_at")?,
        deliver_at: r.opt_varint("deliver_at")?,
        expires_at: r.opt_varint("expires_at")?,
        dead_letter: r.opt("dead_letter", |r| {
            read_dead_letter(&mut r.group("dead_letter")?)
        })?,
    })
}

fn write_dead_letter(w: &mut Writer<'_>, dead_letter: &DeadLetter) {
    w.varint(dead_letter_reason_code(dead_letter.reason));
    w.str(&dead_letter.source_queue);
    w.varint(dead_letter.at);
    w.varint(dead_letter.delivery_count.into());
    w.opt_str(dead_letter.last_error.as_deref());
}

fn read_dead_letter(r: &mut Reader<'_>) -> Result<DeadLetter, DecodeError> {
    Ok(DeadLetter {
        reason: dead_letter_reason(r.varint("dead_letter.reason")?)?,
        source_queue: r.str("dead_letter.source_queue")?,
        at: r.varint("dead_letter.at")?,
        delivery_count: r.u32("dead_letter.delivery_count")?,
        last_error: r.opt_str("dead_letter.last_error")?,
    })
}

/// The code table is part of the format: codes are never renumbered or reused, and a new
/// reason needs a new code and a new record version (an older reader cannot skip it).
fn dead_letter_reason_code(reason: DeadLetterReason) -> u64 {
    match reason {
        DeadLetterReason::MaxDeliveries => 0,
        DeadLetterReason::Expired => 1,
        DeadLetterReason::Rejected => 2,
        DeadLetterReason::Overflow => 3,
    }
}

pub(super) fn dead_letter_reason(code: u64) -> Result<DeadLetterReason, DecodeError> {
    match code {
        0 => Ok(DeadLetterReason::MaxDeliveries),
        1 => Ok(DeadLetterReason::Expired),
        2 => Ok(DeadLetterReason::Rejected),
        3 => Ok(DeadLetterReason::Overflow),
        code => Err(DecodeError::UnknownCode {
            field: "dead_letter.reason",
            code,
        }),
    }
}
