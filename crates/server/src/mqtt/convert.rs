//! Messages between MQTT's PUBLISH and the engine's message model.
//!
//! Both ways keep: the payload as the body, Content Type, Response Topic (as `reply_to`),
//! Correlation Data (as `correlation_id` when it is UTF-8, else base64 in a header), User
//! Properties (as headers), Message Expiry (as a TTL, and the time left on delivery) and the
//! Payload Format Indicator. Headers starting with `mqtt-` are the door's own: the QoS and
//! RETAIN flag a message was published with, and its publisher's client identifier (for No
//! Local); they are not sent as User Properties, nor is the engine's routing key header.

use base64_simd::STANDARD as BASE64;
use std::{collections::BTreeMap, time::Duration};
use wharf_codec_mqtt::{
    Binary, PayloadFormat, Properties, ProtocolVersion, Publish, QoS, SubscriptionId, UserProperty,
    Utf8String,
};
use wharf_engine::broker::{SendMessage, ROUTING_HEADERS};
use wharf_model::message::Message;

/// The QoS a message was published with; messages from other doors count as QoS 1.
pub const QOS_HEADER: &str = "mqtt-qos";
/// Present ("1") when the message was published with RETAIN.
pub const RETAIN_HEADER: &str = "mqtt-retain";
/// The publisher's client identifier.
pub const FROM_HEADER: &str = "mqtt-from";
/// The topic name: a message in a queue does not keep the routing key it was published with.
pub const TOPIC_HEADER: &str = "mqtt-topic";
const FORMAT_HEADER: &str = "mqtt-payload-format";
/// The User Properties as the publisher sent them, in order and with repeated names (as a
/// JSON list of pairs); the headers keep the last value of each name for other doors.
const USER_PROPERTIES_HEADER: &str = "mqtt-user-properties";
const CORRELATION_HEADER: &str = "mqtt-correlation-base64";
/// What the engine says of a message whose publisher gave no content type.
const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// The engine's message for `publish` from client `client_id`.
pub fn send_message(publish: &Publish, client_id: &str) -> SendMessage {
    let properties = &publish.properties;
    let mut headers: BTreeMap<String, String> = (properties.user_properties.iter())
        .filter(|property| !property.name.starts_with("mqtt-"))
        .map(|property| (property.name.to_string(), property.value.to_string()))
        .collect();
    if !properties.user_properties.is_empty() {
        let pairs: Vec<(&str, &str)> = (properties.user_properties.iter())
            .map(|property| (property.name.as_str(), property.value.as_str()))
            .collect();
        if let Ok(list) = serde_json::to_string(&pairs) {
            headers.insert(USER_PROPERTIES_HEADER.into(), list);
        }
    }
    headers.insert(QOS_HEADER.into(), publish.qos.level().to_string());
    headers.insert(FROM_HEADER.into(), client_id.to_string());
    headers.insert(TOPIC_HEADER.into(), publish.topic_name.to_string());
    if publish.retain {
        headers.insert(RETAIN_HEADER.into(), "1".into());
    }
    if properties.payload_format_indicator == Some(PayloadFormat::Utf8) {
        headers.insert(FORMAT_HEADER.into(), "utf8".into());
    }
    let correlation_id = match &properties.correlation_data {
        Some(data) => match std::str::from_utf8(data.as_bytes()) {
            Ok(text) => Some(text.to_string()),
            Err(_) => {
                let encoded = BASE64.encode_to_string(data.as_bytes());
                headers.insert(CORRELATION_HEADER.into(), encoded);
                None
            }
        },
        None => None,
    };
    SendMessage {
        body: publish.payload.clone(),
        content_type: properties.content_type.as_ref().map(|t| t.to_string()),
        headers,
        ttl: (properties.message_expiry_interval)
            .map(|seconds| Duration::from_secs(u64::from(seconds))),
        correlation_id,
        reply_to: properties.response_topic.as_ref().map(|t| t.to_string()),
        ..SendMessage::default()
    }
}

/// The QoS `message` was published with.
pub fn published_qos(message: &Message) -> QoS {
    match message.headers.get(QOS_HEADER).map(String::as_str) {
        Some("0") => QoS::AtMostOnce,
        Some("2") => QoS::ExactlyOnce,
        _ => QoS::AtLeastOnce,
    }
}

/// Whether `message` was published with RETAIN.
pub fn published_retained(message: &Message) -> bool {
    message.headers.contains_key(RETAIN_HEADER)
}

/// The topic name `message` was published to, when an MQTT client published it.
pub fn published_topic(message: &Message) -> Option<&str> {
    message.headers.get(TOPIC_HEADER).map(String::as_str)
}

/// Whether client `client_id` published `message`.
pub fn published_by(message: &Message, client_id: &str) -> bool {
    message.headers.get(FROM_HEADER).map(String::as_str) == Some(client_id)
}

/// How one message goes out.
pub struct Outgoing<'a> {
    pub topic_name: String,
    pub qos: QoS,
    pub retain: bool,
    pub dup: bool,
    pub subscription_ids: Vec<SubscriptionId>,
    pub message: &'a Message,
    /// Now, in ms since the epoch: for the expiry left.
    pub now_ms: u64,
}

/// The PUBLISH that carries a message to a client of `version`; `None` when the topic name
/// cannot be an MQTT string (a key longer than 65,535 bytes).
pub fn publish_of(outgoing: Outgoing<'_>, version: ProtocolVersion) -> Option<Publish> {
    let topic_name = Utf8String::try_from(outgoing.topic_name).ok()?;
    let properties = match version {
        ProtocolVersion::V311 => Properties::default(),
        ProtocolVersion::V5 => {
            properties_of(outgoing.message, outgoing.now_ms, outgoing.subscription_ids)
        }
    };
    Some(Publish {
        dup: outgoing.dup,
        qos: outgoing.qos,
        retain: outgoing.retain,
        topic_name,
        packet_id: None,
        properties,
        payload: outgoing.message.body.clone(),
    })
}

fn properties_of(message: &Message, now_ms: u64, ids: Vec<SubscriptionId>) -> Properties {
    let text = |value: &str| Utf8String::try_from(value).ok();
    let sent: Option<Vec<(String, String)>> = (message.headers.get(USER_PROPERTIES_HEADER))
        .and_then(|list| serde_json::from_str(list).ok());
    let pairs: Vec<(&str, &str)> = match &sent {
        Some(pairs) => pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
        None => (message.headers.iter())
            .filter(|(name, _)| {
                !name.starts_with("mqtt-") && !ROUTING_HEADERS.contains(&name.as_str())
            })
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect(),
    };
    let user_properties = (pairs.into_iter())
        .filter_map(|(name, value)| {
            Some(UserProperty {
                name: text(name)?,
                value: text(value)?,
            })
        })
        .collect();
    let correlation_data = match message.headers.get(CORRELATION_HEADER) {
        Some(encoded) => BASE64.decode_to_vec(encoded).ok(),
        None => message
            .correlation_id
            .as_ref()
            .map(|id| id.as_bytes().to_vec()),
    };
    let content_type = Some(message.content_type.as_str())
        .filter(|content_type| *content_type != DEFAULT_CONTENT_TYPE && !content_type.is_empty());
    Properties {
        payload_format_indicator: (message.headers.contains_key(FORMAT_HEADER))
            .then_some(PayloadFormat::Utf8),
        message_expiry_interval: message
            .expires_at
            .map(|at| u32::try_from(at.saturating_sub(now_ms).div_ceil(1000)).unwrap_or(u32::MAX)),
        content_type: content_type.and_then(text),
        response_topic: message.reply_to.as_deref().and_then(text),
        correlation_data: correlation_data.and_then(|data| Binary::try_from(data).ok()),
        subscription_identifiers: ids,
        user_properties,
        ..Properties::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn properties_survive_the_round_trip_through_the_engine() {
        let publish = Publish {
            qos: QoS::ExactlyOnce,
            retain: true,
            topic_name: Utf8String::try_from("a/b").unwrap(),
            properties: Properties {
                content_type: Some(Utf8String::try_from("text/plain").unwrap()),
                response_topic: Some(Utf8String::try_from("replies/1").unwrap()),
                correlation_data: Some(Binary::try_from(vec![0xff, 0x00, 0x01]).unwrap()),
                message_expiry_interval: Some(30),
                user_properties: vec![UserProperty {
                    name: Utf8String::try_from("k").unwrap(),
                    value: Utf8String::try_from("v").unwrap(),
                }],
                ..Properties::default()
            },
            payload: Bytes::from_static(b"\x00\x01hi"),
            ..Publish::default()
        };
        let sent = send_message(&publish, "c1");
        let message = Message {
            id: "m".into(),
            body: sent.body.clone(),
            content_type: sent.content_type.clone().unwrap(),
            headers: sent.headers.clone(),
            priority: 0,
            group: None,
            correlation_id: sent.correlation_id.clone(),
            reply_to: sent.reply_to.clone(),
            sent_at: 10_000,
            deliver_at: None,
            expires_at: Some(10_000 + 29_500),
            dead_letter: None,
        };
        assert_eq!(published_qos(&message), QoS::ExactlyOnce);
        assert!(published_retained(&message) && published_by(&message, "c1"));
        let outgoing = Outgoing {
            topic_name: "a/b".into(),
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
            subscription_ids: vec![SubscriptionId::new(7).unwrap()],
            message: &message,
            now_ms: 10_000,
        };
        let back = publish_of(outgoing, ProtocolVersion::V5).unwrap();
        assert_eq!(back.payload, publish.payload);
        let properties = back.properties;
        assert_eq!(properties.content_type, publish.properties.content_type);
        assert_eq!(properties.response_topic, publish.properties.response_topic);
        assert_eq!(
            properties.correlation_data,
            publish.properties.correlation_data
        );
        assert_eq!(
            properties.user_properties,
            publish.properties.user_properties
        );
        assert_eq!(properties.message_expiry_interval, Some(30));
        assert_eq!(properties.subscription_identifiers.len(), 1);
    }
}
