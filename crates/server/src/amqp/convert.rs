//! Messages between AMQP's basic properties and the engine's message model. Both directions
//! keep what both sides have: content type, headers (as strings), priority, correlation id,
//! reply-to, message id and a TTL from `expiration`.

use base64_simd::STANDARD as BASE64;
use bytes::Bytes;
use std::{collections::BTreeMap, time::Duration};
use wharf_codec_amqp::{BasicProperties, FieldTable, FieldValue, ShortString};
use wharf_engine::{
    broker::{SendMessage, ORIGIN_TOPIC_HEADER, ROUTING_HEADERS, ROUTING_KEY_HEADER},
    queue::{Overflow, QueueOptions},
    topic::{HeadersMatch, HeadersMode},
};
use wharf_model::message::{DeadLetter, DeadLetterReason, Message};

/// Delivery mode of a message the engine stores durably.
const PERSISTENT: u8 = 2;

/// The engine's message for a publish with `properties` and `body`.
pub fn send_message(properties: BasicProperties, body: Bytes) -> SendMessage {
    let text = |value: Option<ShortString>| value.map(ShortString::into_string);
    let delay = (properties.headers.as_ref())
        .and_then(|headers| headers.get("x-delay"))
        .and_then(unsigned)
        .map(Duration::from_millis);
    SendMessage {
        id: text(properties.message_id),
        body,
        content_type: text(properties.content_type),
        headers: properties.headers.map(headers_of).unwrap_or_default(),
        priority: properties.priority.map(|priority| priority.min(9)),
        ttl: (properties.expiration)
            .and_then(|expiration| expiration.as_str().parse::<u64>().ok())
            .map(Duration::from_millis),
        delay,
        correlation_id: text(properties.correlation_id),
        reply_to: text(properties.reply_to),
        ..SendMessage::default()
    }
}

/// A headers-exchange binding's match from `queue.bind` arguments: `x-match` `all` (the
/// default) or `any` (`all-with-x` and `any-with-x` compare `x-` headers too, which Wharf's
/// binding does anyway), and every other argument a header value to match, as text. No
/// arguments: no header match (a binding of another kind of exchange).
pub fn headers_match(arguments: &FieldTable) -> Result<Option<HeadersMatch>, String> {
    let mut matched = HeadersMatch::default();
    for (name, value) in arguments.iter() {
        let name = name.as_str();
        if name == "x-match" {
            matched.mode = match header_text(value).as_deref() {
                Some("all" | "all-with-x") => HeadersMode::All,
                Some("any" | "any-with-x") => HeadersMode::Any,
                _ => return Err("x-match must be all or any".to_string()),
            };
        } else if let Some(text) = header_text(value) {
            matched.values.insert(name.to_string(), text);
        } else {
            return Err(format!(
                "binding argument {name:?} must be a string, number or boolean to match a header"
            ));
        }
    }
    Ok((!arguments.is_empty()).then_some(matched))
}

/// A field value as a non-negative integer, if it is one.
fn unsigned(value: &FieldValue) -> Option<u64> {
    let signed = match value {
        FieldValue::I8(value) => i64::from(*value),
        FieldValue::U8(value) => i64::from(*value),
        FieldValue::I16(value) => i64::from(*value),
        FieldValue::U16(value) => i64::from(*value),
        FieldValue::I32(value) => i64::from(*value),
        FieldValue::U32(value) => i64::from(*value),
        FieldValue::I64(value) => *value,
        _ => return None,
    };
    u64::try_from(signed).ok()
}

/// A queue's options from `queue.declare`'s `durable` and the RabbitMQ arguments Wharf has
/// an option for. Arguments Wharf has nothing for, or needs none for, are ignored
/// (`x-max-priority`: every queue has priorities 0-9; `x-queue-type`, `x-queue-mode`). An
/// argument Wharf cannot honour is an error naming it.
pub fn queue_options(durable: bool, arguments: &FieldTable) -> Result<QueueOptions, String> {
    let mut options = QueueOptions {
        durable,
        ..QueueOptions::default()
    };
    let number = |name: &str| -> Result<Option<u64>, String> {
        match arguments.get(name) {
            None => Ok(None),
            Some(value) => unsigned(value)
                .map(Some)
                .ok_or_else(|| format!("{name} must be a non-negative integer")),
        }
    };
    options.message_ttl_ms = number("x-message-ttl")?;
    options.expires_ms = number("x-expires")?;
    options.max_length = number("x-max-length")?;
    if let Some(limit) = number("x-delivery-limit")? {
        options.max_deliveries = Some(u32::try_from(limit.saturating_add(1)).unwrap_or(u32::MAX));
    }
    if let Some(FieldValue::Bool(single)) = arguments.get("x-single-active-consumer") {
        options.single_active_consumer = *single;
    }
    match text_argument(arguments, "x-overflow").as_deref() {
        None => {}
        Some("reject-publish") => options.overflow = Overflow::Reject,
        Some("drop-head") => options.overflow = Overflow::DropOldest,
        Some(other) => {
            return Err(format!(
                "x-overflow {other:?} is not supported (reject-publish or drop-head)"
            ))
        }
    }
    match text_argument(arguments, "x-dead-letter-exchange").as_deref() {
        None => {}
        Some("") => {
            let queue = text_argument(arguments, "x-dead-letter-routing-key")
                .ok_or("x-dead-letter-exchange \"\" needs x-dead-letter-routing-key naming the dead-letter queue")?;
            let queue = queue.parse().map_err(|error| format!("x-dead-letter-routing-key: {error}"))?;
            options.dead_letter_queue = Some(queue);
        }
        Some(_) => return Err("a dead-letter exchange must be the default exchange \"\" with x-dead-letter-routing-key naming a queue: Wharf dead-letters into a queue".to_string()),
    }
    Ok(options)
}

fn text_argument(arguments: &FieldTable, name: &str) -> Option<String> {
    match arguments.get(name)? {
        FieldValue::LongString(text) => Some(String::from_utf8_lossy(text.as_bytes()).into_owned()),
        _ => None,
    }
}

/// The message header that keeps an AMQP header table whole, when its types do not survive
/// as strings: base64 of the table's wire encoding. AMQP deliveries give the table back
/// exactly; HTTP consumers see it beside the string headers.
pub const TYPED_HEADERS: &str = "x-amqp-headers";

/// A field table as the engine's string headers: strings as they are, other scalars printed;
/// nested tables and arrays are left out (the engine's headers are flat strings). When a
/// value is not a string, the whole table is kept too, under [`TYPED_HEADERS`], if it fits
/// the engine's length of a header value.
fn headers_of(table: FieldTable) -> BTreeMap<String, String> {
    let mut headers: BTreeMap<String, String> = (table.iter())
        .filter_map(|(name, value)| Some((name.as_str().to_string(), header_text(value)?)))
        .collect();
    let typed = (table.iter()).any(|(_, value)| !matches!(value, FieldValue::LongString(_)));
    if typed {
        let mut encoded = bytes::BytesMut::with_capacity(table.encoded_len());
        table.encode(&mut encoded);
        let text = BASE64.encode_to_string(&encoded);
        if text.len() <= wharf_engine::broker::FIELD_BYTES_MAX {
            headers.insert(TYPED_HEADERS.to_string(), text);
        }
    }
    headers
}

/// The header table a message carried over AMQP, whole, if it was kept.
fn typed_headers(message: &Message) -> Option<FieldTable> {
    let text = message.headers.get(TYPED_HEADERS)?;
    let bytes = BASE64.decode_to_vec(text.as_bytes()).ok()?;
    FieldTable::decode(Bytes::from(bytes)).ok()
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

/// RabbitMQ's dead-letter headers for a dead-lettered message: an `x-death` array with one
/// entry (Wharf keeps the last dead-lettering: its queue, reason, time, and a count of 1) and
/// the `x-first-death-*` headers. Reasons are RabbitMQ's words: `rejected`, `expired`,
/// `maxlen` (pushed out of a full queue), `delivery_limit`.
fn add_death(headers: &mut FieldTable, dead: &DeadLetter) {
    let reason = match dead.reason {
        DeadLetterReason::Rejected => "rejected",
        DeadLetterReason::Expired => "expired",
        DeadLetterReason::Overflow => "maxlen",
        DeadLetterReason::MaxDeliveries => "delivery_limit",
    };
    let text = |value: &str| FieldValue::LongString(value.into());
    let mut death = FieldTable::new();
    let put = |table: &mut FieldTable, name: &str, value: FieldValue| {
        if let Ok(name) = ShortString::try_from(name) {
            table.insert(name, value);
        }
    };
    put(&mut death, "count", FieldValue::I64(1));
    put(&mut death, "reason", text(reason));
    put(&mut death, "queue", text(&dead.source_queue));
    put(&mut death, "time", FieldValue::Timestamp(dead.at / 1000));
    put(&mut death, "exchange", text(""));
    let keys = FieldValue::Array(vec![text(&dead.source_queue)]);
    put(&mut death, "routing-keys", keys);
    put(
        headers,
        "x-death",
        FieldValue::Array(vec![FieldValue::Table(death)]),
    );
    put(headers, "x-first-death-queue", text(&dead.source_queue));
    put(headers, "x-first-death-reason", text(reason));
    put(headers, "x-first-death-exchange", text(""));
}

/// The exchange and routing key a delivery names, as RabbitMQ's do: those the message was
/// published with when a topic routed it to the queue (the engine keeps them in headers),
/// otherwise the default exchange and the queue's name.
pub fn routed_by(message: &Message, queue: &str) -> (ShortString, ShortString) {
    let short = |text: &str| ShortString::try_from(text).unwrap_or_default();
    match message.headers.get(ROUTING_KEY_HEADER) {
        Some(key) => {
            let topic = message
                .headers
                .get(ORIGIN_TOPIC_HEADER)
                .map_or("", String::as_str);
            (short(topic), short(key))
        }
        None => (ShortString::default(), short(queue)),
    }
}

/// The basic properties of a stored message. The headers the engine sets on a routed copy
/// are not among them: [`routed_by`] gives them their AMQP places.
pub fn properties(message: &Message) -> BasicProperties {
    let short = |text: &str| ShortString::try_from(text).ok();
    let mut headers = typed_headers(message).unwrap_or_else(|| {
        let mut headers = FieldTable::new();
        for (name, value) in &message.headers {
            if ROUTING_HEADERS.contains(&name.as_str()) {
                continue;
            }
            if let Ok(name) = ShortString::try_from(name.as_str()) {
                headers.insert(name, FieldValue::LongString(value.as_str().into()));
            }
        }
        headers
    });
    if let Some(dead) = &message.dead_letter {
        add_death(&mut headers, dead);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        let mut table = FieldTable::new();
        for (name, value) in entries {
            table.insert(ShortString::try_from(*name).expect("short"), value.clone());
        }
        table
    }

    #[test]
    fn rabbitmq_queue_arguments_become_queue_options() {
        let arguments = table(&[
            ("x-message-ttl", FieldValue::I32(60_000)),
            ("x-max-length", FieldValue::I64(100)),
            ("x-overflow", FieldValue::LongString("drop-head".into())),
            ("x-dead-letter-exchange", FieldValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                FieldValue::LongString("jobs.dead".into()),
            ),
            ("x-delivery-limit", FieldValue::I16(4)),
            ("x-single-active-consumer", FieldValue::Bool(true)),
            ("x-max-priority", FieldValue::U8(10)),
        ]);
        let options = queue_options(true, &arguments).expect("supported arguments");
        assert_eq!(options.message_ttl_ms, Some(60_000));
        assert_eq!(options.max_length, Some(100));
        assert_eq!(options.overflow, Overflow::DropOldest);
        assert_eq!(
            options.dead_letter_queue.map(|q| q.to_string()).as_deref(),
            Some("jobs.dead")
        );
        assert_eq!(
            options.max_deliveries,
            Some(5),
            "4 redeliveries are 5 deliveries"
        );
        assert!(options.single_active_consumer && options.durable);
    }

    #[test]
    fn arguments_wharf_cannot_honour_are_named() {
        let named_exchange = table(&[(
            "x-dead-letter-exchange",
            FieldValue::LongString("dlx".into()),
        )]);
        assert!(queue_options(true, &named_exchange)
            .unwrap_err()
            .contains("dead-letter exchange"));
        let negative = table(&[("x-message-ttl", FieldValue::I32(-1))]);
        assert!(queue_options(true, &negative)
            .unwrap_err()
            .contains("x-message-ttl"));
        let overflow = table(&[(
            "x-overflow",
            FieldValue::LongString("reject-publish-dlx".into()),
        )]);
        assert!(queue_options(true, &overflow)
            .unwrap_err()
            .contains("x-overflow"));
    }

    #[test]
    fn typed_headers_come_back_whole_over_amqp() {
        let headers = table(&[
            ("retries", FieldValue::I32(0)),
            (
                "timelimit",
                FieldValue::Array(vec![FieldValue::Void, FieldValue::Void]),
            ),
            ("task", FieldValue::LongString("tasks.add".into())),
        ]);
        let properties = BasicProperties {
            headers: Some(headers.clone()),
            ..BasicProperties::default()
        };
        let sent = send_message(properties, Bytes::new());
        assert_eq!(sent.headers["retries"], "0", "HTTP sees the text");
        assert_eq!(sent.headers["task"], "tasks.add");
        let message = Message {
            id: "m".into(),
            body: Bytes::new(),
            content_type: "application/octet-stream".into(),
            headers: sent.headers,
            priority: 0,
            group: None,
            correlation_id: None,
            reply_to: None,
            sent_at: 0,
            deliver_at: None,
            expires_at: None,
            dead_letter: None,
        };
        assert_eq!(self::properties(&message).headers, Some(headers));
    }

    #[test]
    fn dead_letters_carry_rabbitmqs_x_death_headers() {
        for (reason, word) in [
            (DeadLetterReason::Rejected, "rejected"),
            (DeadLetterReason::Expired, "expired"),
            (DeadLetterReason::Overflow, "maxlen"),
            (DeadLetterReason::MaxDeliveries, "delivery_limit"),
        ] {
            let mut headers = FieldTable::new();
            let dead = DeadLetter {
                reason,
                source_queue: "jobs".into(),
                at: 1_800_000_000_123,
                delivery_count: 3,
                last_error: None,
            };
            add_death(&mut headers, &dead);
            let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
                panic!("no x-death array: {headers:?}");
            };
            let [FieldValue::Table(death)] = deaths.as_slice() else {
                panic!("not one entry: {deaths:?}");
            };
            assert_eq!(
                death.get("reason"),
                Some(&FieldValue::LongString(word.into()))
            );
            assert_eq!(
                death.get("queue"),
                Some(&FieldValue::LongString("jobs".into()))
            );
            assert_eq!(
                death.get("time"),
                Some(&FieldValue::Timestamp(1_800_000_000))
            );
            assert_eq!(death.get("count"), Some(&FieldValue::I64(1)));
            assert_eq!(
                headers.get("x-first-death-reason"),
                Some(&FieldValue::LongString(word.into()))
            );
        }
    }

    #[test]
    fn an_x_delay_header_delays_the_message() {
        let properties = BasicProperties {
            headers: Some(table(&[("x-delay", FieldValue::I32(5_000))])),
            ..BasicProperties::default()
        };
        let message = send_message(properties, Bytes::new());
        assert_eq!(message.delay, Some(Duration::from_millis(5_000)));
    }
}
