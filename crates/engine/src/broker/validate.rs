//! Turning what a door hands in ([`SendMessage`]) into stored [`Message`]s, field by field, with
//! errors that name the offending field (`messages[3].priority`).

use super::api::{
    SendMessage, FIELD_BYTES_MAX, PRIORITY_MAX, SEND_BATCH_BYTES_MAX, SEND_BATCH_MESSAGES_MAX,
};
use crate::error::EngineError;
use wharf_model::{message::Message, MessageId};

/// Content type of a body given without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// Checks a whole batch before anything is written; `ids` yields generated ids in order.
pub(crate) fn messages_from_batch(
    batch: Vec<SendMessage>,
    now: u64,
    mut generate_id: impl FnMut() -> String,
) -> Result<Vec<(Message, bool)>, EngineError> {
    if batch.is_empty() {
        return Err(field_error("messages", "at least one message is required"));
    }
    if batch.len() > SEND_BATCH_MESSAGES_MAX {
        return Err(EngineError::TooLarge {
            what: "a batch",
            size: batch.len(),
            max: SEND_BATCH_MESSAGES_MAX,
        });
    }
    let bytes: usize = batch.iter().map(|m| m.body.len()).sum();
    if bytes > SEND_BATCH_BYTES_MAX {
        return Err(EngineError::TooLarge {
            what: "a batch's body bytes",
            size: bytes,
            max: SEND_BATCH_BYTES_MAX,
        });
    }
    batch
        .into_iter()
        .enumerate()
        .map(|(index, send)| message_from_send(index, send, now, &mut generate_id))
        .collect()
}

/// Returns the message and whether its id was given by the client (and so deduplicated).
fn message_from_send(
    index: usize,
    send: SendMessage,
    now: u64,
    generate_id: &mut impl FnMut() -> String,
) -> Result<(Message, bool), EngineError> {
    let field = |name: &str| format!("messages[{index}].{name}");
    let client_id = send.id.is_some();
    let id = match send.id {
        Some(id) => MessageId::try_from(id)
            .map_err(|e| field_error(&field("id"), &e.to_string()))?
            .to_string(),
        None => generate_id(),
    };
    let priority = send.priority.unwrap_or(0);
    if priority > PRIORITY_MAX {
        return Err(field_error(
            &field("priority"),
            &format!("{priority} is above the highest priority {PRIORITY_MAX}"),
        ));
    }
    if send.delay.is_some() && send.deliver_at.is_some() {
        return Err(field_error(
            &field("delay_ms"),
            "give delay_ms or deliver_at, not both",
        ));
    }
    let deliver_at = send
        .deliver_at
        .or_else(|| send.delay.map(|d| now.saturating_add(d.as_millis() as u64)))
        .filter(|at| *at > now);
    let expires_at = match send.ttl {
        Some(ttl) if ttl.is_zero() => {
            return Err(field_error(&field("ttl_ms"), "must be at least 1"));
        }
        Some(ttl) => Some(now.saturating_add(ttl.as_millis() as u64)),
        None => None,
    };
    check_length(&field("content_type"), send.content_type.as_deref())?;
    check_length(&field("group"), send.group.as_deref())?;
    check_length(&field("correlation_id"), send.correlation_id.as_deref())?;
    check_length(&field("reply_to"), send.reply_to.as_deref())?;
    for (name, value) in &send.headers {
        check_length(&field("headers"), Some(name))?;
        check_length(&field(&format!("headers.{name}")), Some(value))?;
    }
    if send.group.as_deref() == Some("") {
        return Err(field_error(&field("group"), "must not be empty"));
    }
    let message = Message {
        id,
        body: send.body,
        content_type: send
            .content_type
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
        headers: send.headers,
        priority,
        group: send.group,
        correlation_id: send.correlation_id,
        reply_to: send.reply_to,
        sent_at: now,
        deliver_at,
        expires_at,
        dead_letter: None,
    };
    Ok((message, client_id))
}

fn check_length(field: &str, value: Option<&str>) -> Result<(), EngineError> {
    match value {
        Some(value) if value.len() > FIELD_BYTES_MAX => Err(field_error(
            field,
            &format!("{} bytes is longer than {FIELD_BYTES_MAX}", value.len()),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn field_error(field: &str, reason: &str) -> EngineError {
    EngineError::InvalidField {
        field: field.to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ids() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("gen-{n}")
        }
    }

    #[test]
    fn errors_name_the_field_of_the_message_at_fault() {
        let batch = vec![
            SendMessage::default(),
            SendMessage {
                priority: Some(12),
                ..SendMessage::default()
            },
        ];
        let error = messages_from_batch(batch, 0, ids()).unwrap_err();
        assert!(
            matches!(&error, EngineError::InvalidField { field, .. } if field == "messages[1].priority"),
            "{error}"
        );
    }

    #[test]
    fn delay_becomes_deliver_at_and_ttl_becomes_expires_at() {
        let batch = vec![SendMessage {
            delay: Some(Duration::from_millis(500)),
            ttl: Some(Duration::from_secs(2)),
            ..SendMessage::default()
        }];
        let (message, client_id) = messages_from_batch(batch, 1_000, ids()).unwrap().remove(0);
        assert!(!client_id);
        assert_eq!(message.id, "gen-1");
        assert_eq!(message.deliver_at, Some(1_500));
        assert_eq!(message.expires_at, Some(3_000));
        assert_eq!(message.content_type, DEFAULT_CONTENT_TYPE);
    }

    #[test]
    fn oversized_batches_are_refused() {
        let batch = vec![SendMessage::default(); SEND_BATCH_MESSAGES_MAX + 1];
        assert!(matches!(
            messages_from_batch(batch, 0, ids()),
            Err(EngineError::TooLarge { .. })
        ));
        assert!(matches!(
            messages_from_batch(Vec::new(), 0, ids()),
            Err(EngineError::InvalidField { .. })
        ));
    }
}
