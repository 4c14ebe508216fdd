//! Error replies of the HTTP door: `application/problem+json` (RFC 9457).
//!
//! Every handler that fails answers with a [`Problem`]. It carries the RFC's members (`type`,
//! `title`, `status`, `detail`) plus two extension members: `code`, a stable machine-readable
//! name of the problem from the one table [`ProblemCode`] (clients switch on it, never on
//! `title` or `detail`), and `field`, naming the request field at fault, so a client can point
//! at it without parsing prose. Mapping engine errors onto problems
//! belongs to the handlers that call the engine; this module only shapes the reply.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type RFC 9457 section 3 registers for problem details in JSON.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The stable, documented problem codes: the one table of them, each with its HTTP status.
/// Adding one is fine; renaming or removing one breaks clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProblemCode {
    /// A name (queue, topic) breaks the naming rules.
    InvalidName,
    /// A field of the request is missing, malformed, out of range or inconsistent; `field`
    /// names it.
    InvalidField,
    /// The body is not valid JSON for the operation (or a query string cannot be parsed).
    InvalidBody,
    /// A state-changing request whose body is not JSON, or that is sent as a form or text
    /// type (which browsers send from any site).
    UnsupportedMediaType,
    /// A browser request from an origin that is neither the server's own nor listed in
    /// `http.cors_origins`.
    ForbiddenOrigin,
    /// The request's Host is not a name of this server (`http.allowed_hosts`): DNS rebinding.
    MisdirectedHost,
    /// The request body, or a batch in it, is over a size limit.
    TooLarge,
    QueueNotFound,
    TopicNotFound,
    BindingNotFound,
    /// No request waits on this reply address (answered or timed out).
    ReplyNotFound,
    /// No resource at this path.
    NotFound,
    MethodNotAllowed,
    /// A request got no reply in time.
    Timeout,
    /// The queue is at `max_length` with `overflow = reject`.
    QueueFull,
    /// A configured limit (connections, subscriptions, pending requests) is reached.
    LimitReached,
    /// The server is starting or shutting down.
    Unavailable,
    /// The disk is full; nothing of the request was stored.
    DiskFull,
    /// Storage failed (an I/O error) or a record could not be read.
    StorageError,
    /// A queue closed after an internal error; a restart recovers it.
    QueueBroken,
    /// A bug: the operation failed and was logged.
    Internal,
    /// No credentials, or credentials that are not valid (or an expired token).
    Unauthenticated,
    /// Valid credentials without a grant for this action on this resource; `detail` names both.
    Forbidden,
    UserNotFound,
    TokenNotFound,
    /// The token is the administrator token of the server's configuration.
    TokenConfigured,
    /// A field the resource's current state fixes (a queue's durability, a bound topic's
    /// kind), or a definition of the configuration file the API cannot change.
    Conflict,
    AlertNotFound,
    /// No unsettled message with this id in the queue.
    MessageNotFound,
    /// The message is leased by a consumer, which settles it.
    MessageLeased,
    /// No open client connection with this id.
    ConnectionNotFound,
    StreamNotFound,
    /// The stream has no such partition.
    PartitionNotFound,
    /// The stream has no such consumer group (no members and no committed offsets).
    GroupNotFound,
    /// A fetch or commit offset below what retention kept or past the partition's end;
    /// `detail` gives the partition's range.
    OffsetOutOfRange,
    /// An idempotent producer's sequence skips ahead, is older than the requests remembered,
    /// or was used before for other records.
    OutOfOrderSequence,
    /// The member is not in the group (it left or its session expired): join again.
    UnknownMember,
    /// A commit from a generation that is not the group's current one, or for a partition
    /// not assigned to the member: heartbeat to learn the new assignment.
    StaleGeneration,
    /// No event stream of this id (never written, or soft deleted).
    EventStreamNotFound,
    /// The event stream was hard deleted: it is never written or read again.
    StreamDeleted,
    /// An append's expected version does not match the stream; `current_version` gives the
    /// stream's (null when it has no events).
    WrongExpectedVersion,
    /// The event stream has no snapshot.
    SnapshotNotFound,
    ProjectionNotFound,
    /// No persistent subscription of this name.
    SubscriptionNotFound,
    WebhookNotFound,
}

impl ProblemCode {
    /// Every code, for tests and documentation.
    pub const ALL: [ProblemCode; 45] = [
        ProblemCode::InvalidName,
        ProblemCode::InvalidField,
        ProblemCode::InvalidBody,
        ProblemCode::UnsupportedMediaType,
        ProblemCode::ForbiddenOrigin,
        ProblemCode::MisdirectedHost,
        ProblemCode::TooLarge,
        ProblemCode::QueueNotFound,
        ProblemCode::TopicNotFound,
        ProblemCode::BindingNotFound,
        ProblemCode::ReplyNotFound,
        ProblemCode::NotFound,
        ProblemCode::MethodNotAllowed,
        ProblemCode::Timeout,
        ProblemCode::QueueFull,
        ProblemCode::LimitReached,
        ProblemCode::Unavailable,
        ProblemCode::DiskFull,
        ProblemCode::StorageError,
        ProblemCode::QueueBroken,
        ProblemCode::Internal,
        ProblemCode::Unauthenticated,
        ProblemCode::Forbidden,
        ProblemCode::UserNotFound,
        ProblemCode::TokenNotFound,
        ProblemCode::TokenConfigured,
        ProblemCode::Conflict,
        ProblemCode::AlertNotFound,
        ProblemCode::MessageNotFound,
        ProblemCode::MessageLeased,
        ProblemCode::ConnectionNotFound,
        ProblemCode::StreamNotFound,
        ProblemCode::PartitionNotFound,
        ProblemCode::GroupNotFound,
        ProblemCode::OffsetOutOfRange,
        ProblemCode::OutOfOrderSequence,
        ProblemCode::UnknownMember,
        ProblemCode::StaleGeneration,
        ProblemCode::EventStreamNotFound,
        ProblemCode::StreamDeleted,
        ProblemCode::WrongExpectedVersion,
        ProblemCode::SnapshotNotFound,
        ProblemCode::ProjectionNotFound,
        ProblemCode::SubscriptionNotFound,
        ProblemCode::WebhookNotFound,
    ];

    pub fn status(self) -> StatusCode {
        match self {
            ProblemCode::InvalidName | ProblemCode::InvalidField | ProblemCode::InvalidBody => {
                StatusCode::BAD_REQUEST
            }
            ProblemCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
            // 421: the client aimed at a name this server does not answer for; no credential
            // would help, so not 403.
            ProblemCode::MisdirectedHost => StatusCode::MISDIRECTED_REQUEST,
            ProblemCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ProblemCode::QueueNotFound
            | ProblemCode::TopicNotFound
            | ProblemCode::BindingNotFound
            | ProblemCode::ReplyNotFound
            | ProblemCode::UserNotFound
            | ProblemCode::TokenNotFound
            | ProblemCode::AlertNotFound
            | ProblemCode::MessageNotFound
            | ProblemCode::ConnectionNotFound
            | ProblemCode::StreamNotFound
            | ProblemCode::PartitionNotFound
            | ProblemCode::GroupNotFound
            | ProblemCode::EventStreamNotFound
            | ProblemCode::SnapshotNotFound
            | ProblemCode::ProjectionNotFound
            | ProblemCode::SubscriptionNotFound
            | ProblemCode::WebhookNotFound
            // Not 410: a client reading or writing a deleted stream finds nothing there, as
            // for one never written; the code tells the two apart.
            | ProblemCode::StreamDeleted
            | ProblemCode::NotFound => StatusCode::NOT_FOUND,
            ProblemCode::OffsetOutOfRange
            | ProblemCode::OutOfOrderSequence
            | ProblemCode::UnknownMember
            | ProblemCode::StaleGeneration
            | ProblemCode::WrongExpectedVersion => StatusCode::CONFLICT,
            ProblemCode::Unauthenticated => StatusCode::UNAUTHORIZED,
            ProblemCode::Forbidden => StatusCode::FORBIDDEN,
            ProblemCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProblemCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
            // 409 Conflict: the request clashes with the queue's state, like a full bounded
            // buffer. 429 would tell this client to slow down, but the queue stays full whoever
            // sends until a consumer catches up.
            ProblemCode::QueueFull
            | ProblemCode::TokenConfigured
            | ProblemCode::Conflict
            | ProblemCode::MessageLeased => StatusCode::CONFLICT,
            ProblemCode::LimitReached => StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ProblemCode::DiskFull => StatusCode::INSUFFICIENT_STORAGE,
            ProblemCode::StorageError | ProblemCode::QueueBroken | ProblemCode::Internal => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }
}

/// A problem report (RFC 9457): what went wrong with a request, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Problem {
    /// A URI reference naming the problem type; `about:blank` when the status says it all
    /// (RFC 9457 section 4.2.1).
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub problem_type: String,
    /// Short summary of the problem type; the same for every occurrence.
    #[schema(example = "Not Found")]
    pub title: String,
    /// The HTTP status code, repeated for clients that lose the status line.
    #[schema(example = 404)]
    pub status: u16,
    /// The stable machine-readable name of the problem.
    pub code: ProblemCode,
    /// What went wrong in this occurrence, for a person to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault, as a dotted path (`body.ttl_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// `wrong_expected_version` only: the versions that clashed (boxed, so that the many
    /// problems without them stay small).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub version_conflict: Option<Box<VersionConflict>>,
}

/// The extension members of a `wrong_expected_version` problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct VersionConflict {
    /// The version of the stream's last event, null when it has none.
    pub current_version: Option<u64>,
    /// What the append expected.
    pub expected_version: String,
}

impl Problem {
    /// A problem of type `about:blank` with the code's status, titled by its reason phrase.
    pub fn new(code: ProblemCode) -> Problem {
        let status = code.status();
        Problem {
            problem_type: "about:blank".to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            code,
            detail: None,
            field: None,
            version_conflict: None,
        }
    }

    /// Names a specific problem type; `title` should then describe that type, not the status.
    pub fn with_type(mut self, problem_type: impl Into<String>, title: impl Into<String>) -> Self {
        self.problem_type = problem_type.into();
        self.title = title.into();
        self
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let body = match serde_json::to_vec(&self) {
            Ok(body) => body,
            // Serializing strings and integers cannot fail; keep a reply rather than panic.
            Err(_) => {
                br#"{"type":"about:blank","title":"Internal Server Error","status":500,"code":"internal"}"#.to_vec()
            }
        };
        (
            status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static(PROBLEM_CONTENT_TYPE),
            )],
            body,
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_snake_case_and_listed_once() {
        let mut names = std::collections::BTreeSet::new();
        for code in ProblemCode::ALL {
            let name = serde_json::to_value(code).expect("serializes");
            let name = name.as_str().expect("a string").to_string();
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name}"
            );
            assert!(names.insert(name), "{code:?} listed twice");
            assert!(code.status().is_client_error() || code.status().is_server_error());
        }
    }

    #[test]
    fn serializes_rfc_members_and_skips_empty_extensions() {
        let problem = Problem::new(ProblemCode::NotFound).with_detail("no route for /nope");
        let json = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "code": "not_found",
                "detail": "no route for /nope",
            })
        );
    }

    #[test]
    fn names_the_offending_field() {
        let problem = Problem::new(ProblemCode::InvalidField)
            .with_type("/problems/invalid-field", "Invalid field")
            .with_field("body.ttl_ms");
        let json = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(json["field"], "body.ttl_ms");
        assert_eq!(json["type"], "/problems/invalid-field");
        assert_eq!(json["status"], 400);
        assert_eq!(json["code"], "invalid_field");
    }

    #[test]
    fn response_has_status_and_media_type() {
        let response = Problem::new(ProblemCode::Unavailable).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
    }
}
