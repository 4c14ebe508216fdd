//! Messages between AMQP's basic properties and the engine's message model. Both directions
//! keep what both sides have: content type, headers (as strings), priority, correlation id,
//! reply-to, message id and a TTL from `expiration`.

use bytes::Bytes;
use std::{collections::BTreeMap, time::Duration};
use wharf_codec_amqp::{BasicProperties, FieldTable, FieldValue, ShortString};
use wharf_engine::broker::SendMessage;
use wharf_model::message::Message;

/// Delivery mode of a message the engine stores durably.
const PERSISTENT: u8 = 2;

/// The engine's message for a publish with `properties` and `body`.
pub fn send_message(properties: BasicProperties, body: Bytes) -> SendMessage {
    let text = |value: Option<ShortString>| value.map(ShortString::into_string);
    SendMessage {
        id: text(properties.message_id),
        body,
        content_type: text(properties.content_type),
        headers: properties.headers.map(headers_of).unwrap_or_default(),
        priority: properties.priority.map(|priority| priority.min(9)),
        ttl: (properties.expiration)
            .and_then(|expiration| expiration.as_str().parse::<u64>().ok())
            .map(Duration::from_millis),
        correlation_id: text(properties.correlation_id),
        reply_to: text(properties.reply_to),
        ..SendMessage::default()
    }
}

/// A field table as the engine's string headers: strings as they are, other scalars printed;
/// nested tables and arrays are left out (the engine's headers are flat strings).
fn headers_of(table: FieldTable) -> BTreeMap<String, String> {
    (table.iter())
        .filter_map(|(name, value)| Some((name.as_str().to_string(), header_text(value)?)))
        .collect()
}

fn header_text(value: &FieldValue) -> Option<String> {
    Some(match value {
        FieldValue::LongString(text) => String::from_utf8_lossy(text.as_bytes()).into_owned(),
        FieldValue::Bool(value) => value.to_string(),
        FieldValue::I8(value) => value.to_string(),
        FieldValue::U8(value) => value.to_string(),
        FieldValue::I16(value) => value.to_string(),
        FieldValue::U16(value) => value.to_string(),
        FieldValue::I32(value) => value.to_string(),
        FieldValue::U32(value) => value.to_string(),
        FieldValue::I64(value) => value.to_string(),
        FieldValue::F32(value) => value.to_string(),
        FieldValue::F64(value) => value.to_string(),
        FieldValue::Timestamp(value) => value.to_string(),
        _ => return None,
    })
}

/// The basic properties of a stored message.
pub fn properties(message: &Message) -> BasicProperties {
    let short = |text: &str| ShortString::try_from(text).ok();
    let mut headers = FieldTable::new();
    for (name, value) in &message.headers {
        if let Ok(name) = ShortString::try_from(name.as_str()) {
            let value = FieldValue::LongString(value.as_str().into());
            headers.insert(name, value);
        }
    }
    BasicProperties {
        content_type: short(&message.content_type),
        headers: (!headers.is_empty()).then_some(headers),
        delivery_mode: Some(PERSISTENT),
        priority: Some(message.priority),
        correlation_id: message.correlation_id.as_deref().and_then(short),
        reply_to: message.reply_to.as_deref().and_then(short),
        message_id: short(&message.id),
        timestamp: Some(message.sent_at / 1000),
        ..BasicProperties::default()
    }
}
