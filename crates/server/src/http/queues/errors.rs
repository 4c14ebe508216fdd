//! The one mapping from [`EngineError`] to an HTTP reply. Exhaustive on purpose (no `_` arm):
//! a new engine error does not compile until this door decides its status.
//!
//! The engine names a field in its own terms (the priority of message 3, the queue option
//! `lease_ms`); this door turns that into the path of the member in its request body
//! (`messages[3].priority`) for the problem's `field`, and words `detail` with that path.

use super::wire::{message_member, option_member};
use crate::http::{topics::wire::destination_member, Problem, ProblemCode};
use wharf_engine::{
    error::{AlertField, Field, FieldProblem},
    log_throttle::LogThrottle,
    topic::DestinationKind,
    EngineError,
};
use wharf_storage::StorageError;

/// Where a request body holds the message fields an engine error may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessagesAt {
    /// In a `messages` array: `messages[3].priority` (sends and publishes).
    Array,
    /// At the top of the body, one message: `priority` (requests, scatters and replies).
    Top,
}

impl From<EngineError> for Problem {
    /// The problem for an endpoint whose messages, if any, are in a `messages` array.
    fn from(error: EngineError) -> Self {
        engine_problem(error, MessagesAt::Array)
    }
}

/// `invalid_field`, or `conflict` for a field the resource's current state fixes (a queue's
/// durability, a bound topic's kind): valid on its own, refused only for this resource now.
fn field_code(problem: &FieldProblem) -> ProblemCode {
    match problem {
        FieldProblem::FixedAtCreation | FieldProblem::FixedWhileBound { .. } => {
            ProblemCode::Conflict
        }
        _ => ProblemCode::InvalidField,
    }
}

/// The setting a refusal names, counted in `wharf_limit_refusals_total`.
fn refused_limit(error: &EngineError) -> Option<&'static str> {
    match error {
        EngineError::TooLarge { limit, .. } => limit.setting(),
        EngineError::LimitReached { limit, .. } => Some(limit),
        _ => None,
    }
}

/// The problem for `error`, its `field` a path in a body with messages at `messages`.
pub(crate) fn engine_problem(error: EngineError, messages: MessagesAt) -> Problem {
    if let Some(limit) = refused_limit(&error) {
        crate::http::refusals::count(limit);
    }
    let code = match &error {
        EngineError::InvalidName { .. } => {
            return Problem::new(ProblemCode::InvalidName)
                .with_detail(error.to_string())
                .with_field("name")
        }
        EngineError::InvalidField { field, problem } => {
            let path = field_path(field, messages);
            return Problem::new(field_code(problem))
                .with_detail(format!(
                    "invalid {path}: {}",
                    field_wording(problem, messages)
                ))
                .with_field(path);
        }
        EngineError::DestinationNotFound { field, kind, name } => {
            return destination_not_found(field_path(field, messages), *kind, name)
        }
        EngineError::QueueNotFound { .. } => ProblemCode::QueueNotFound,
        EngineError::Unauthenticated { .. } => ProblemCode::Unauthenticated,
        EngineError::Forbidden { .. } => ProblemCode::Forbidden,
        EngineError::UserNotFound { .. } => ProblemCode::UserNotFound,
        EngineError::TokenNotFound { .. } => ProblemCode::TokenNotFound,
        EngineError::TokenConfigured { .. } => ProblemCode::TokenConfigured,
        EngineError::AlertNotFound { .. } => ProblemCode::AlertNotFound,
        EngineError::WebhookNotFound { .. } => ProblemCode::WebhookNotFound,
        EngineError::WebhookQueue { .. }
        | EngineError::WebhookResourceExists { .. }
        | EngineError::WebhookBinding { .. }
        | EngineError::WebhookTopic { .. }
        | EngineError::TopicKept { .. }
        | EngineError::AlertConfigured { .. }
        | EngineError::SubscriptionQueue { .. } => ProblemCode::Conflict,
        EngineError::MessageNotFound { .. } => ProblemCode::MessageNotFound,
        EngineError::MessageLeased { .. } => ProblemCode::MessageLeased,
        EngineError::TopicNotFound { .. } => ProblemCode::TopicNotFound,
        EngineError::BindingNotFound { .. } => ProblemCode::BindingNotFound,
        EngineError::ReplyNotFound { .. } => ProblemCode::ReplyNotFound,
        EngineError::Timeout { .. } => ProblemCode::Timeout,
        EngineError::TooLarge { .. } => ProblemCode::TooLarge,
        EngineError::QueueFull { .. } => ProblemCode::QueueFull,
        EngineError::LimitReached { .. } => ProblemCode::LimitReached,
        EngineError::ShuttingDown => ProblemCode::Unavailable,
        EngineError::QueueBroken { .. } => ProblemCode::QueueBroken,
        // Names the engine's operation, which is no word of this API; the log has it.
        EngineError::Internal { .. } => {
            return Problem::new(ProblemCode::Internal)
                .with_detail("an internal error stopped this request; the server log has it")
        }
        // Storage errors name files and OS errors: the log gets them, the client a summary.
        EngineError::Storage(storage) => return storage_problem(storage),
        EngineError::Stream(stream) => return crate::http::streams::errors::stream_problem(stream),
        EngineError::EventStore(error) => {
            return crate::http::events::errors::event_store_problem(error)
        }
        // Only opening the engine meets a corrupt definition; counted with unreadable records.
        EngineError::Record(_) | EngineError::CorruptDefinition { .. } => {
            return bad_stored_data(&error)
        }
    };
    Problem::new(code).with_detail(error.to_string())
}

/// A request that met bad stored data: the log gets the error, the client a summary.
fn bad_stored_data(error: &EngineError) -> Problem {
    static THROTTLE: LogThrottle = LogThrottle::new();
    if let Some(suppressed) = THROTTLE.allow() {
        tracing::error!(%error, suppressed, "request failed: bad stored data");
    }
    Problem::new(ProblemCode::StorageError)
        .with_detail("a stored record could not be read; the server log has the details")
}

/// A binding, rule or alternate at `path` named a destination that does not exist: a 404 as
/// for the resource itself, with the field.
fn destination_not_found(path: String, kind: DestinationKind, name: &str) -> Problem {
    let code = match kind {
        DestinationKind::Queue => ProblemCode::QueueNotFound,
        DestinationKind::Topic => ProblemCode::TopicNotFound,
        DestinationKind::Stream => ProblemCode::StreamNotFound,
    };
    Problem::new(code)
        .with_detail(format!("invalid {path}: {kind} {name:?} does not exist"))
        .with_field(path)
}

/// The problem for a storage error: a summary, never the file or OS error it names (the log
/// gets those).
fn storage_problem(storage: &StorageError) -> Problem {
    if storage.is_disk_full() {
        static THROTTLE: LogThrottle = LogThrottle::new();
        if let Some(suppressed) = THROTTLE.allow() {
            tracing::warn!(error = %storage, suppressed, "request failed: disk full");
        }
        let detail = match storage {
            StorageError::SpaceReserved => format!("{storage}; nothing was stored"),
            _ => "the disk is full; nothing of this request was stored".to_string(),
        };
        return Problem::new(ProblemCode::DiskFull).with_detail(detail);
    }
    static THROTTLE: LogThrottle = LogThrottle::new();
    if let Some(suppressed) = THROTTLE.allow() {
        tracing::error!(error = %storage, suppressed, "request failed: storage error");
    }
    Problem::new(ProblemCode::StorageError)
        .with_detail("storage failed; the server log has the details")
}

/// The path of the body member that carries `field`.
fn field_path(field: &Field, messages: MessagesAt) -> String {
    let member = match field {
        Field::Batch => "messages",
        Field::Message { index, field } => {
            return match messages {
                MessagesAt::Array => format!("messages[{index}].{}", message_member(field)),
                MessagesAt::Top => message_member(field),
            }
        }
        Field::QueueOption(option) => option_member(*option),
        Field::MaxMessages => "max_messages",
        Field::Wait => "wait_ms",
        Field::Lease => "lease_ms",
        Field::Credit => "credit",
        Field::Expect => "expect",
        Field::ReplyTo => "reply_to",
        Field::TopicKind => "kind",
        Field::RuleFilter { index } => return format!("rules[{index}].filter"),
        Field::Pattern => "pattern",
        Field::Filter => "filter",
        Field::Headers => "headers",
        Field::Destination { kind } => destination_member(*kind),
        Field::Alternate { kind } => return format!("alternate.{}", destination_member(*kind)),
        Field::RuleDestination { index, kind } => {
            return format!("rules[{index}].{}", destination_member(*kind))
        }
        Field::CreateQueue => "create_queue",
        Field::UserName | Field::TokenName => "name",
        Field::Password => "password",
        Field::Grant { index } => return format!("grants[{index}].actions"),
        Field::ExpiresIn => "expires_in_s",
        Field::Alert(AlertField::Metric) => "metric",
        Field::Alert(AlertField::Threshold) => "threshold",
        Field::Alert(AlertField::For) => "for_ms",
        Field::Webhook(field) => return wharf_engine::error::webhook_member(*field),
    };
    member.to_string()
}

/// What is wrong with a field, in this door's words: problems that name a second field name
/// it by its member; the others read as the engine words them.
fn field_wording(problem: &FieldProblem, messages: MessagesAt) -> String {
    match problem {
        FieldProblem::BelowOption {
            value,
            other,
            other_value,
        } => format!("{value} is below {} ({other_value})", option_member(*other)),
        FieldProblem::Required {
            unless: Some(unless),
        } => {
            format!("is required (or {})", field_path(unless, messages))
        }
        FieldProblem::Conflicts { with } => {
            format!(
                "conflicts with {}; give one of the two",
                message_member(with)
            )
        }
        FieldProblem::Required { unless: None }
        | FieldProblem::OutOfRange { .. }
        | FieldProblem::DurationOutOfRange { .. }
        | FieldProblem::TooLong { .. }
        | FieldProblem::Empty
        | FieldProblem::InvalidId { .. }
        | FieldProblem::InvalidPattern { .. }
        | FieldProblem::InvalidFilter { .. }
        | FieldProblem::OwnDeadLetterQueue
        | FieldProblem::FixedAtCreation
        | FieldProblem::FixedWhileBound { .. }
        | FieldProblem::NotAQueue
        | FieldProblem::NotAReplyAddress
        | FieldProblem::CorrelationMismatch
        | FieldProblem::InvalidName { .. }
        | FieldProblem::AccountNameChars
        | FieldProblem::MetricScope { .. }
        | FieldProblem::NotFinite
        | FieldProblem::Malformed { .. } => problem.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io, sync::Arc};
    use wharf_engine::{
        error::{MessageField, NameProblem, ResourceKind, SizeLimit},
        queue::OptionField,
        topic::DestinationKind,
    };
    use wharf_model::QueueNameError;

    fn problem(error: EngineError) -> Problem {
        Problem::from(error)
    }

    #[test]
    fn client_errors_name_their_field() {
        let invalid_name = problem(EngineError::InvalidName {
            kind: ResourceKind::Queue,
            name: "a b".to_string(),
            problem: NameProblem::Rules {
                source: QueueNameError::InvalidCharacter {
                    character: ' ',
                    position: 1,
                },
            },
        });
        assert_eq!(invalid_name.status, 400);
        assert_eq!(invalid_name.code, ProblemCode::InvalidName);
        assert_eq!(invalid_name.field.as_deref(), Some("name"));
        let invalid_field = problem(priority_error(3));
        assert_eq!(invalid_field.status, 400);
        assert_eq!(invalid_field.code, ProblemCode::InvalidField);
        assert_eq!(invalid_field.field.as_deref(), Some("messages[3].priority"));
        assert_eq!(
            invalid_field.detail.as_deref(),
            Some("invalid messages[3].priority: 12 is above the maximum 9")
        );

        // Valid on its own, refused for this queue now: a conflict, not a bad request.
        let fixed = problem(EngineError::InvalidField {
            field: Field::QueueOption(wharf_engine::queue::OptionField::Durable),
            problem: FieldProblem::FixedAtCreation,
        });
        assert_eq!((fixed.status, fixed.code), (409, ProblemCode::Conflict));
        assert_eq!(fixed.field.as_deref(), Some("durable"));
    }

    #[test]
    fn fields_become_paths_of_the_body_they_came_in() {
        let top = engine_problem(priority_error(0), MessagesAt::Top);
        assert_eq!(top.field.as_deref(), Some("priority"));
        let cases = [
            (
                Field::QueueOption(OptionField::RetryBackoffMaxMs),
                "retry_backoff_max_ms",
            ),
            (Field::Wait, "wait_ms"),
            (Field::Lease, "lease_ms"),
            (Field::RuleFilter { index: 2 }, "rules[2].filter"),
            (
                Field::Destination {
                    kind: DestinationKind::Stream,
                },
                "stream",
            ),
            (
                Field::Message {
                    index: 1,
                    field: MessageField::HeaderValue {
                        name: "region".to_string(),
                    },
                },
                "messages[1].headers.region",
            ),
            (
                Field::Message {
                    index: 0,
                    field: MessageField::Ttl,
                },
                "messages[0].ttl_ms",
            ),
        ];
        for (field, path) in cases {
            let error = EngineError::InvalidField {
                field,
                problem: FieldProblem::Empty,
            };
            assert_eq!(problem(error).field.as_deref(), Some(path));
        }
    }

    #[test]
    fn details_name_a_second_field_by_its_member() {
        let conflict = problem(EngineError::InvalidField {
            field: Field::Message {
                index: 0,
                field: MessageField::Delay,
            },
            problem: FieldProblem::Conflicts {
                with: MessageField::DeliverAt,
            },
        });
        assert_eq!(
            conflict.detail.as_deref(),
            Some("invalid messages[0].delay_ms: conflicts with deliver_at; give one of the two")
        );
        let headers = problem(EngineError::InvalidField {
            field: Field::Headers,
            problem: FieldProblem::Required {
                unless: Some(Field::Filter),
            },
        });
        assert_eq!(
            headers.detail.as_deref(),
            Some("invalid headers: is required (or filter)")
        );
    }

    fn priority_error(index: usize) -> EngineError {
        EngineError::InvalidField {
            field: Field::Message {
                index,
                field: MessageField::Priority,
            },
            problem: FieldProblem::OutOfRange {
                value: 12,
                min: 0,
                max: 9,
            },
        }
    }

    #[test]
    fn state_errors_get_their_statuses() {
        let cases = [
            (
                EngineError::QueueNotFound {
                    name: "jobs".to_string(),
                },
                404,
                ProblemCode::QueueNotFound,
            ),
            (
                EngineError::TooLarge {
                    limit: SizeLimit::BatchMessages,
                    size: 2_000,
                    max: 1_000,
                },
                413,
                ProblemCode::TooLarge,
            ),
            (
                EngineError::QueueFull {
                    name: "jobs".to_string(),
                    max_length: 4,
                },
                409,
                ProblemCode::QueueFull,
            ),
            (
                EngineError::LimitReached {
                    limit: "subscriptions_max",
                    max: 3,
                },
                429,
                ProblemCode::LimitReached,
            ),
            (EngineError::ShuttingDown, 503, ProblemCode::Unavailable),
        ];
        for (error, status, code) in cases {
            let text = error.to_string();
            let problem = problem(error);
            assert_eq!(problem.status, status, "{text}");
            assert_eq!(problem.code, code, "{text}");
            assert_eq!(problem.detail.as_deref(), Some(text.as_str()));
            assert_eq!(problem.field, None);
        }
    }

    #[test]
    fn a_full_disk_is_507_and_other_io_500() {
        let io_error = |code| StorageError::Io {
            path: "logs/queue.jobs/0.seg".into(),
            source: Arc::new(io::Error::from_raw_os_error(code)),
        };
        let full = problem(io_error(libc::ENOSPC).into());
        assert_eq!((full.status, full.code), (507, ProblemCode::DiskFull));
        let failed = problem(io_error(libc::EIO).into());
        assert_eq!(
            (failed.status, failed.code),
            (500, ProblemCode::StorageError)
        );
        for detail in [full.detail, failed.detail] {
            let detail = detail.expect("a detail");
            assert!(
                !detail.contains("logs/"),
                "no file path reaches a client: {detail}"
            );
        }
    }
}
