//! Turning what a door hands in ([`SendMessage`]) into stored [`Message`]s, field by field, with
//! errors that name the offending field and the message's index in its batch.

use super::api::{SendMessage, FIELD_BYTES_MAX, PRIORITY_MAX};
use crate::error::{EngineError, Field, FieldProblem, MessageField, SizeLimit};
use std::time::Duration;
use wharf_model::{message::Message, MessageId};

/// Content type of a body given without one.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The configured size limits of one batch (`EngineConfig::batch_messages_max` and
/// `batch_bytes_max`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub messages: usize,
    pub bytes: usize,
}

/// Checks a whole batch before anything is written; `ids` yields generated ids in order.
pub(crate) fn messages_from_batch(
    batch: Vec<SendMessage>,
    limits: BatchLimits,
    now: u64,
    mut generate_id: impl FnMut() -> String,
) -> Result<Vec<(Message, bool)>, EngineError> {
    if batch.is_empty() {
        return Err(EngineError::invalid_field(
            Field::Batch,
            FieldProblem::Empty,
        ));
    }
    if batch.len() > limits.messages {
        return Err(EngineError::TooLarge {
            limit: SizeLimit::BatchMessages,
            size: batch.len(),
            max: limits.messages,
        });
    }
    let bytes: usize = batch.iter().map(|m| m.body.len()).sum();
    if bytes > limits.bytes {
        return Err(EngineError::TooLarge {
            limit: SizeLimit::BatchBytes,
            size: bytes,
            max: limits.bytes,
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
    mut send: SendMessage,
    now: u64,
    generate_id: &mut impl FnMut() -> String,
) -> Result<(Message, bool), EngineError> {
    let invalid = |field, problem| EngineError::invalid_message_field(index, field, problem);
    let client_id = send.id.is_some();
    let id = match send.id.take() {
        Some(id) => MessageId::try_from(id)
            .map_err(|source| invalid(MessageField::Id, FieldProblem::InvalidId { source }))?
            .to_string(),
        None => generate_id(),
    };
    let priority = send.priority.unwrap_or(0);
    if priority > PRIORITY_MAX {
        let problem = FieldProblem::OutOfRange {
            value: priority.into(),
            min: 0,
            max: PRIORITY_MAX.into(),
        };
        return Err(invalid(MessageField::Priority, problem));
    }
    if send.delay.is_some() && send.deliver_at.is_some() {
        let problem = FieldProblem::Conflicts {
            with: MessageField::DeliverAt,
        };
        return Err(invalid(MessageField::Delay, problem));
    }
    let deliver_at = send
        .deliver_at
        .or_else(|| send.delay.map(|d| now.saturating_add(d.as_millis() as u64)))
        .filter(|at| *at > now);
    let expires_at = match send.ttl {
        Some(ttl) if ttl.is_zero() => {
            let problem = FieldProblem::DurationOutOfRange {
                value: ttl,
                min: Duration::from_millis(1),
                max: Duration::MAX,
            };
            return Err(invalid(MessageField::Ttl, problem));
        }
        Some(ttl) => Some(now.saturating_add(ttl.as_millis() as u64)),
        None => None,
    };
    check_lengths(index, &send)?;
    if send.group.as_deref() == Some("") {
        return Err(invalid(MessageField::Group, FieldProblem::Empty));
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

/// Every text field of the message at `index` within [`FIELD_BYTES_MAX`]. A field is named
/// (a header's name copied) only when it is too long.
fn check_lengths(index: usize, send: &SendMessage) -> Result<(), EngineError> {
    let check = |value: Option<&str>, field: &dyn Fn() -> MessageField| match value {
        Some(value) if value.len() > FIELD_BYTES_MAX => {
            let problem = FieldProblem::TooLong {
                len: value.len(),
                max: FIELD_BYTES_MAX,
            };
            Err(EngineError::invalid_message_field(index, field(), problem))
        }
        _ => Ok(()),
    };
    check(send.content_type.as_deref(), &|| MessageField::ContentType)?;
    check(send.group.as_deref(), &|| MessageField::Group)?;
    check(send.correlation_id.as_deref(), &|| {
        MessageField::CorrelationId
    })?;
    check(send.reply_to.as_deref(), &|| MessageField::ReplyTo)?;
    for (name, value) in &send.headers {
        check(Some(name), &|| MessageField::HeaderName)?;
        check(Some(value), &|| MessageField::HeaderValue {
            name: name.clone(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::api::{SEND_BATCH_BYTES_MAX, SEND_BATCH_MESSAGES_MAX};

    const LIMITS: BatchLimits = BatchLimits {
        messages: SEND_BATCH_MESSAGES_MAX,
        bytes: SEND_BATCH_BYTES_MAX,
    };

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
        let error = messages_from_batch(batch, LIMITS, 0, ids()).unwrap_err();
        assert!(
            matches!(
                &error,
                EngineError::InvalidField {
                    field: Field::Message {
                        index: 1,
                        field: MessageField::Priority
                    },
                    problem: FieldProblem::OutOfRange {
                        value: 12,
                        min: 0,
                        max: 9
                    },
                }
            ),
            "{error:?}"
        );
    }

    #[test]
    fn errors_name_the_header_and_the_conflicting_field() {
        let long = "x".repeat(FIELD_BYTES_MAX + 1);
        let batch = vec![SendMessage {
            headers: [("region".to_string(), long)].into(),
            ..SendMessage::default()
        }];
        let error = messages_from_batch(batch, LIMITS, 0, ids()).unwrap_err();
        let EngineError::InvalidField { field, problem } = error else {
            panic!("{error:?}");
        };
        let header = MessageField::HeaderValue {
            name: "region".to_string(),
        };
        assert_eq!(
            field,
            Field::Message {
                index: 0,
                field: header
            }
        );
        let too_long = FieldProblem::TooLong {
            len: FIELD_BYTES_MAX + 1,
            max: FIELD_BYTES_MAX,
        };
        assert_eq!(problem, too_long);

        let both = vec![SendMessage {
            delay: Some(Duration::from_secs(1)),
            deliver_at: Some(5_000),
            ..SendMessage::default()
        }];
        assert!(matches!(
            messages_from_batch(both, LIMITS, 0, ids()),
            Err(EngineError::InvalidField {
                field: Field::Message {
                    index: 0,
                    field: MessageField::Delay
                },
                problem: FieldProblem::Conflicts {
                    with: MessageField::DeliverAt
                },
            })
        ));
    }

    #[test]
    fn delay_becomes_deliver_at_and_ttl_becomes_expires_at() {
        let batch = vec![SendMessage {
            delay: Some(Duration::from_millis(500)),
            ttl: Some(Duration::from_secs(2)),
            ..SendMessage::default()
        }];
        let (message, client_id) = messages_from_batch(batch, LIMITS, 1_000, ids())
            .unwrap()
            .remove(0);
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
            messages_from_batch(batch, LIMITS, 0, ids()),
            Err(EngineError::TooLarge {
                limit: SizeLimit::BatchMessages,
                size,
                max: SEND_BATCH_MESSAGES_MAX,
            }) if size == SEND_BATCH_MESSAGES_MAX + 1
        ));
        assert!(matches!(
            messages_from_batch(Vec::new(), LIMITS, 0, ids()),
            Err(EngineError::InvalidField {
                field: Field::Batch,
                problem: FieldProblem::Empty
            })
        ));
    }
}
