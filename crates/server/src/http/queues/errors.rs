//! The one mapping from [`EngineError`] to an HTTP reply. Exhaustive on purpose (no `_` arm):
//! a new engine error does not compile until this door decides its status.

use crate::http::Problem;
use axum::http::StatusCode;
use wharf_engine::{log_throttle::LogThrottle, EngineError};

impl From<EngineError> for Problem {
    fn from(error: EngineError) -> Self {
        let detail = error.to_string();
        match &error {
            EngineError::InvalidName { .. } => Problem::new(StatusCode::BAD_REQUEST)
                .with_detail(detail)
                .with_field("name"),
            EngineError::QueueNotFound { .. }
            | EngineError::TopicNotFound { .. }
            | EngineError::BindingNotFound { .. }
            | EngineError::ReplyNotFound { .. } => {
                Problem::new(StatusCode::NOT_FOUND).with_detail(detail)
            }
            EngineError::Timeout { .. } => {
                Problem::new(StatusCode::GATEWAY_TIMEOUT).with_detail(detail)
            }
            EngineError::InvalidField { field, .. } => Problem::new(StatusCode::BAD_REQUEST)
                .with_field(field.clone())
                .with_detail(detail),
            EngineError::TooLarge { .. } => {
                Problem::new(StatusCode::PAYLOAD_TOO_LARGE).with_detail(detail)
            }
            // 409 Conflict: the request clashes with the queue's state (it is at max_length),
            // like a full bounded buffer. 429 would tell this client to slow down, but the
            // queue stays full whoever sends until a consumer catches up.
            EngineError::QueueFull { .. } => Problem::new(StatusCode::CONFLICT).with_detail(detail),
            EngineError::LimitReached { .. } => {
                Problem::new(StatusCode::TOO_MANY_REQUESTS).with_detail(detail)
            }
            EngineError::ShuttingDown => {
                Problem::new(StatusCode::SERVICE_UNAVAILABLE).with_detail(detail)
            }
            EngineError::Storage(storage) if storage.is_disk_full() => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::warn!(error = %storage, suppressed, "request failed: disk full");
                }
                Problem::new(StatusCode::INSUFFICIENT_STORAGE).with_detail(detail)
            }
            EngineError::Storage(storage) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::error!(error = %storage, suppressed, "request failed: storage error");
                }
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail(detail)
            }
            EngineError::QueueBroken { .. } | EngineError::Internal { .. } => {
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail(detail)
            }
            EngineError::Record(record) => {
                static THROTTLE: LogThrottle = LogThrottle::new();
                if let Some(suppressed) = THROTTLE.allow() {
                    tracing::error!(error = %record, suppressed, "request failed: bad record");
                }
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR).with_detail(detail)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{io, sync::Arc};
    use wharf_storage::StorageError;

    fn problem(error: EngineError) -> Problem {
        Problem::from(error)
    }

    #[test]
    fn client_errors_name_their_field() {
        let invalid_name = problem(EngineError::InvalidName {
            kind: "queue",
            name: "a b".to_string(),
            reason: "space".to_string(),
        });
        assert_eq!(invalid_name.status, 400);
        assert_eq!(invalid_name.field.as_deref(), Some("name"));
        let invalid_field = problem(EngineError::InvalidField {
            field: "messages[0].priority".to_string(),
            reason: "too high".to_string(),
        });
        assert_eq!(invalid_field.status, 400);
        assert_eq!(invalid_field.field.as_deref(), Some("messages[0].priority"));
        assert!(invalid_field.detail.unwrap().contains("too high"));
    }

    #[test]
    fn state_errors_get_their_statuses() {
        let cases = [
            (
                EngineError::QueueNotFound {
                    name: "jobs".to_string(),
                },
                404,
            ),
            (
                EngineError::TooLarge {
                    what: "a batch",
                    size: 2_000,
                    max: 1_000,
                },
                413,
            ),
            (
                EngineError::QueueFull {
                    name: "jobs".to_string(),
                    max_length: 4,
                },
                409,
            ),
            (EngineError::ShuttingDown, 503),
        ];
        for (error, status) in cases {
            let text = error.to_string();
            let problem = problem(error);
            assert_eq!(problem.status, status, "{text}");
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
        assert_eq!(problem(io_error(libc::ENOSPC).into()).status, 507);
        assert_eq!(problem(io_error(libc::EIO).into()).status, 500);
    }
}
