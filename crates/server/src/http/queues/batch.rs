//! The binary batch content type of the queue door (`application/vnd.wharf.batch`, framed as
//! `wharf_model::frames` describes): a send takes it as its request body, a receive gives it
//! when the request's `Accept` asks for it. A frame's meta is the JSON message's fields without
//! the body, so every field and check is the JSON door's; the body crosses as it is.

use super::wire::{NewMessage, SendBody};
use crate::http::{
    json_body::{parse_json_body, request_bytes, JsonBody},
    AppState, Problem, ProblemCode,
};
use axum::{
    extract::{FromRequest, Request},
    http::{header, HeaderMap, HeaderValue},
};
use wharf_engine::broker::SendMessage;
use wharf_model::frames::{decode_frames, Frame, FrameError, BATCH_CONTENT_TYPE};

/// The messages of a send request, from a JSON body (`SendBody`) or a binary batch.
pub struct SendMessages(pub Vec<SendMessage>);

impl FromRequest<AppState> for SendMessages {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Problem> {
        if !names_batch(request.headers().get(header::CONTENT_TYPE)) {
            let JsonBody(body) = JsonBody::<SendBody>::from_request(request, state).await?;
            let messages = (body.messages.into_iter().enumerate())
                .map(|(index, message)| NewMessage::into_send(message, index))
                .collect::<Result<_, _>>()?;
            return Ok(SendMessages(messages));
        }
        let batch = request_bytes(request, state).await?;
        let max = state.engine.batch_messages_max();
        let frames = decode_frames(&batch, max).map_err(|error| match error {
            FrameError::TooMany { max } => Problem::new(ProblemCode::TooLarge).with_detail(
                format!("the batch has more than {max} messages (batch_messages_max)"),
            ),
            FrameError::Truncated { .. } => Problem::new(ProblemCode::InvalidBody)
                .with_detail(format!("invalid {BATCH_CONTENT_TYPE} body: {error}")),
        })?;
        let messages = (frames.into_iter().enumerate())
            .map(|(index, frame)| message_from_frame(frame, index))
            .collect::<Result<_, _>>()?;
        Ok(SendMessages(messages))
    }
}

/// True when a receive's `Accept` names the binary batch type.
pub fn wants_batch(headers: &HeaderMap) -> bool {
    (headers.get_all(header::ACCEPT).iter())
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(essence_is_batch)
}

/// The message of frame `index`: its meta parsed as a JSON message without a body.
fn message_from_frame(frame: Frame, index: usize) -> Result<SendMessage, Problem> {
    // Formatted only for a refusal: this runs for every message of a batch.
    let prefix = || format!("messages[{index}]");
    let meta: &[u8] = match frame.meta.trim_ascii() {
        [] => b"{}",
        meta => meta,
    };
    if meta.first() != Some(&b'{') {
        return Err(Problem::new(ProblemCode::InvalidBody)
            .with_detail(format!(
                "{}: a frame's meta must be a JSON object",
                prefix()
            ))
            .with_field(prefix()));
    }
    let message: NewMessage = parse_json_body(meta).map_err(|mut problem| {
        problem.field = Some(match problem.field.take() {
            Some(field) => format!("{}.{field}", prefix()),
            None => prefix(),
        });
        problem
    })?;
    if message.body.is_some() || message.body_base64.is_some() {
        let member = if message.body.is_some() {
            "body"
        } else {
            "body_base64"
        };
        return Err(Problem::new(ProblemCode::InvalidField)
            .with_detail(format!(
                "in {BATCH_CONTENT_TYPE} the body follows the meta in the frame; {member} is not \
                 a member of the meta"
            ))
            .with_field(format!("{}.{member}", prefix())));
    }
    let content_type = message.content_type.clone();
    Ok(message.with_body(frame.body, content_type))
}

fn names_batch(content_type: Option<&HeaderValue>) -> bool {
    (content_type.and_then(|value| value.to_str().ok())).is_some_and(essence_is_batch)
}

/// True when a media type (parameters aside) is the batch type.
fn essence_is_batch(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case(BATCH_CONTENT_TYPE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn frame(meta: &str, body: &str) -> Frame {
        Frame {
            meta: Bytes::from(meta.to_string()),
            body: Bytes::from(body.to_string()),
        }
    }

    #[test]
    fn a_frame_gives_its_body_as_it_is_and_its_meta_s_fields() {
        let meta = r#"{"id":"m1","headers":{"k":"v"},"priority":3}"#;
        let message = message_from_frame(frame(meta, "\"not\" json\n"), 0).expect("a message");
        assert_eq!(&message.body[..], b"\"not\" json\n");
        assert_eq!(message.id.as_deref(), Some("m1"));
        assert_eq!(message.headers.get("k").map(String::as_str), Some("v"));
        assert_eq!(message.priority, Some(3));
        assert_eq!(message.content_type, None);
        let bare = message_from_frame(frame("", "x"), 0).expect("an empty meta is {}");
        assert_eq!(&bare.body[..], b"x");
    }

    #[test]
    fn a_bad_meta_is_refused_naming_the_frame_s_field() {
        let problem = message_from_frame(frame(r#"{"priority":"high"}"#, ""), 2).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("messages[2].priority"));
        let problem = message_from_frame(frame("[1]", ""), 1).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("messages[1]"));
        let problem = message_from_frame(frame(r#"{"body":1}"#, ""), 0).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("messages[0].body"));
        let problem = message_from_frame(frame(r#"{"color":1}"#, ""), 0).unwrap_err();
        assert_eq!(problem.field.as_deref(), Some("messages[0].color"));
    }

    #[test]
    fn accept_and_content_type_name_the_batch_type_with_or_without_parameters() {
        let mut headers = HeaderMap::new();
        assert!(!wants_batch(&headers));
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/json, Application/Vnd.Wharf.Batch; q=0.9"),
        );
        assert!(wants_batch(&headers));
        let typed = HeaderValue::from_static("application/vnd.wharf.batch; v=1");
        assert!(names_batch(Some(&typed)));
        assert!(!names_batch(Some(&HeaderValue::from_static(
            "application/json"
        ))));
        assert!(!names_batch(None));
    }
}
