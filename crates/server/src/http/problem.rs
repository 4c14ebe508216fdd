//! Error replies of the HTTP door: `application/problem+json` (RFC 9457).
//!
//! Every handler that fails answers with a [`Problem`]. It carries the RFC's members (`type`,
//! `title`, `status`, `detail`) plus `field`, an extension member naming the request field at
//! fault, so a client can point at it without parsing prose. Mapping engine errors onto problems
//! belongs to the handlers that call the engine; this module only shapes the reply.

use axum::{
    http::{header, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use utoipa::ToSchema;

/// The media type RFC 9457 section 3 registers for problem details in JSON.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

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
    /// What went wrong in this occurrence, for a person to read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The request field at fault, as a dotted path (`body.ttl_ms`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem of type `about:blank` whose title is the status's reason phrase.
    pub fn new(status: StatusCode) -> Problem {
        Problem {
            problem_type: "about:blank".to_string(),
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail: None,
            field: None,
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
                br#"{"type":"about:blank","title":"Internal Server Error","status":500}"#.to_vec()
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
    fn serializes_rfc_members_and_skips_empty_extensions() {
        let problem = Problem::new(StatusCode::NOT_FOUND).with_detail("no route for /nope");
        let json = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(
            json,
            serde_json::json!({
                "type": "about:blank",
                "title": "Not Found",
                "status": 404,
                "detail": "no route for /nope",
            })
        );
    }

    #[test]
    fn names_the_offending_field() {
        let problem = Problem::new(StatusCode::UNPROCESSABLE_ENTITY)
            .with_type("/problems/invalid-field", "Invalid field")
            .with_field("body.ttl_ms");
        let json = serde_json::to_value(&problem).expect("serializes");
        assert_eq!(json["field"], "body.ttl_ms");
        assert_eq!(json["type"], "/problems/invalid-field");
        assert_eq!(json["status"], 422);
    }

    #[test]
    fn response_has_status_and_media_type() {
        let response = Problem::new(StatusCode::SERVICE_UNAVAILABLE).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROBLEM_CONTENT_TYPE
        );
    }
}
