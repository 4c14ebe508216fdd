//! The property list of MQTT 5.0 (section 2.2.2): a Property Length, then properties as
//! identifier-value pairs in any order. [`Properties`] holds each property in a typed field,
//! so that a door reads `properties.message_expiry_interval` instead of searching a list.
//!
//! ```text
//! Property Length  Variable Byte Integer: the bytes of the properties after it
//! Property         identifier (Variable Byte Integer), value of the identifier's type
//! ...
//! ```
//!
//! Decoding refuses unknown identifiers and properties the context does not allow (Malformed
//! Packet), duplicates of properties that may appear once and values the spec rules out
//! (Protocol Error): 0 for Receive Maximum, Maximum Packet Size, Topic Alias and Subscription
//! Identifier, anything but 0 or 1 for the byte-sized flags and Maximum QoS, Authentication
//! Data without an Authentication Method. The types of the fields rule out most of these on
//! encoding; [`Properties::check`] the rest.
//!
//! Order: properties encode in identifier order. The order of User Properties among
//! themselves is kept, and so is that of Subscription Identifiers; their order relative to
//! other properties carries no meaning (section 2.2.2.2) and is not kept.

use std::num::{NonZeroU16, NonZeroU32};

use crate::error::{DecodeError, EncodeError};
use crate::identifiers::SubscriptionId;
use crate::packet::PacketType;
use crate::property_id::{PropertyContext, PropertyId};
use crate::qos::QoS;
use crate::strings::{Binary, UserProperty, Utf8String};
use crate::wire::{measure, Reader, Writer};

/// What the payload of a message is (MQTT 5.0 section 3.3.2.3.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum PayloadFormat {
    /// 0: unspecified bytes.
    #[default]
    Unspecified = 0,
    /// 1: UTF-8 Encoded Character Data. Checking the payload is the receiver's choice
    /// (Reason Code 0x99 Payload format invalid), not the codec's.
    Utf8 = 1,
}

/// Every MQTT 5.0 property. `None` (or empty) means absent; each packet allows only some of
/// them ([`PropertyId::is_allowed_in`]). Intervals are in seconds, as on the wire. MQTT 3.1.1
/// has no properties: every packet of that version has `Properties::default()`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<PayloadFormat>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<Utf8String>,
    pub response_topic: Option<Utf8String>,
    pub correlation_data: Option<Binary>,
    /// One per matching subscription in PUBLISH, at most one in SUBSCRIBE.
    pub subscription_identifiers: Vec<SubscriptionId>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<Utf8String>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<Utf8String>,
    pub authentication_data: Option<Binary>,
    pub request_problem_information: Option<bool>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<bool>,
    pub response_information: Option<Utf8String>,
    pub server_reference: Option<Utf8String>,
    pub reason_string: Option<Utf8String>,
    pub receive_maximum: Option<NonZeroU16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<NonZeroU16>,
    /// Only [`QoS::AtMostOnce`] or [`QoS::AtLeastOnce`] (section 3.2.2.3.4); absent means 2.
    pub maximum_qos: Option<QoS>,
    pub retain_available: Option<bool>,
    pub user_properties: Vec<UserProperty>,
    pub maximum_packet_size: Option<NonZeroU32>,
    pub wildcard_subscription_available: Option<bool>,
    pub subscription_identifier_available: Option<bool>,
    pub shared_subscription_available: Option<bool>,
}

impl Properties {
    pub fn is_empty(&self) -> bool {
        self.present().next().is_none()
    }

    /// The properties present, each once, in identifier order.
    pub fn present(&self) -> impl Iterator<Item = PropertyId> + '_ {
        PropertyId::ALL
            .into_iter()
            .filter(move |&property| self.is_present(property))
    }

    /// Whether the property has a value (for the repeatable ones, at least one).
    pub fn is_present(&self, property: PropertyId) -> bool {
        use PropertyId as P;
        match property {
            P::PayloadFormatIndicator => self.payload_format_indicator.is_some(),
            P::MessageExpiryInterval => self.message_expiry_interval.is_some(),
            P::ContentType => self.content_type.is_some(),
            P::ResponseTopic => self.response_topic.is_some(),
            P::CorrelationData => self.correlation_data.is_some(),
            P::SubscriptionIdentifier => !self.subscription_identifiers.is_empty(),
            P::SessionExpiryInterval => self.session_expiry_interval.is_some(),
            P::AssignedClientIdentifier => self.assigned_client_identifier.is_some(),
            P::ServerKeepAlive => self.server_keep_alive.is_some(),
            P::AuthenticationMethod => self.authentication_method.is_some(),
            P::AuthenticationData => self.authentication_data.is_some(),
            P::RequestProblemInformation => self.request_problem_information.is_some(),
            P::WillDelayInterval => self.will_delay_interval.is_some(),
            P::RequestResponseInformation => self.request_response_information.is_some(),
            P::ResponseInformation => self.response_information.is_some(),
            P::ServerReference => self.server_reference.is_some(),
            P::ReasonString => self.reason_string.is_some(),
            P::ReceiveMaximum => self.receive_maximum.is_some(),
            P::TopicAliasMaximum => self.topic_alias_maximum.is_some(),
            P::TopicAlias => self.topic_alias.is_some(),
            P::MaximumQoS => self.maximum_qos.is_some(),
            P::RetainAvailable => self.retain_available.is_some(),
            P::UserProperty => !self.user_properties.is_empty(),
            P::MaximumPacketSize => self.maximum_packet_size.is_some(),
            P::WildcardSubscriptionAvailable => self.wildcard_subscription_available.is_some(),
            P::SubscriptionIdentifierAvailable => self.subscription_identifier_available.is_some(),
            P::SharedSubscriptionAvailable => self.shared_subscription_available.is_some(),
        }
    }

    /// Checks what the field types leave open before encoding in `context`: every property
    /// allowed there, Maximum QoS 0 or 1, one Subscription Identifier outside PUBLISH, no
    /// Authentication Data without an Authentication Method.
    pub(crate) fn check(&self, context: PropertyContext) -> Result<(), EncodeError> {
        if let Some(property) = self.present().find(|p| !p.is_allowed_in(context)) {
            return Err(EncodeError::PropertyNotAllowed { property, context });
        }
        if self.maximum_qos == Some(QoS::ExactlyOnce) {
            return Err(EncodeError::PropertyValueInvalid {
                property: PropertyId::MaximumQoS,
                value: 2,
            });
        }
        if self.subscription_identifiers.len() > 1
            && context != PropertyContext::Packet(PacketType::Publish)
        {
            return Err(EncodeError::PropertyDuplicate {
                property: PropertyId::SubscriptionIdentifier,
            });
        }
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::AuthenticationDataWithoutMethod);
        }
        Ok(())
    }

    /// Reads a Property Length and the properties it covers.
    pub(crate) fn decode(
        reader: &mut Reader,
        context: PropertyContext,
    ) -> Result<Properties, DecodeError> {
        let length = reader.read_variable_integer("property length")?;
        // A Variable Byte Integer is at most 268,435,455: it fits a usize on every target
        // this crate builds for, and `take` refuses it past the packet's end.
        let length = usize::try_from(length).unwrap_or(usize::MAX);
        let mut reader = Reader::new(reader.take(length, "properties")?);
        let mut properties = Properties::default();
        while !reader.is_empty() {
            let id = reader.read_variable_integer("property identifier")?;
            let property = PropertyId::from_id(id).ok_or(DecodeError::PropertyUnknown { id })?;
            if !property.is_allowed_in(context) {
                return Err(DecodeError::PropertyNotAllowed { property, context });
            }
            properties.decode_value(property, &mut reader, context)?;
        }
        // MQTT 5.0 sections 3.1.2.11.10, 3.2.2.3.18 and 3.15.2.2.3.
        if properties.authentication_data.is_some() && properties.authentication_method.is_none() {
            return Err(DecodeError::AuthenticationDataWithoutMethod);
        }
        Ok(properties)
    }

    /// Writes the Property Length and the properties.
    pub(crate) fn encode(&self, writer: &mut Writer<'_>) {
        let length = measure(|counter| self.encode_values(counter));
        // Over the maximum only when the packet is too large, which encoding refuses after
        // counting.
        writer.write_variable_integer(u32::try_from(length).unwrap_or(u32::MAX));
        self.encode_values(writer);
    }

    fn decode_value(
        &mut self,
        property: PropertyId,
        reader: &mut Reader,
        context: PropertyContext,
    ) -> Result<(), DecodeError> {
        use PropertyId as P;
        match property {
            P::PayloadFormatIndicator => set(&mut self.payload_format_indicator, property, reader),
            P::MessageExpiryInterval => set(&mut self.message_expiry_interval, property, reader),
            P::ContentType => set(&mut self.content_type, property, reader),
            P::ResponseTopic => set(&mut self.response_topic, property, reader),
            P::CorrelationData => set(&mut self.correlation_data, property, reader),
            P::SubscriptionIdentifier => self.decode_subscription_identifier(reader, context),
            P::SessionExpiryInterval => set(&mut self.session_expiry_interval, property, reader),
            P::AssignedClientIdentifier => {
                set(&mut self.assigned_client_identifier, property, reader)
            }
            P::ServerKeepAlive => set(&mut self.server_keep_alive, property, reader),
            P::AuthenticationMethod => set(&mut self.authentication_method, property, reader),
            P::AuthenticationData => set(&mut self.authentication_data, property, reader),
            P::RequestProblemInformation => {
                set(&mut self.request_problem_information, property, reader)
            }
            P::WillDelayInterval => set(&mut self.will_delay_interval, property, reader),
            P::RequestResponseInformation => {
                set(&mut self.request_response_information, property, reader)
            }
            P::ResponseInformation => set(&mut self.response_information, property, reader),
            P::ServerReference => set(&mut self.server_reference, property, reader),
            P::ReasonString => set(&mut self.reason_string, property, reader),
            P::ReceiveMaximum => set(&mut self.receive_maximum, property, reader),
            P::TopicAliasMaximum => set(&mut self.topic_alias_maximum, property, reader),
            P::TopicAlias => set(&mut self.topic_alias, property, reader),
            P::MaximumQoS => set(&mut self.maximum_qos, property, reader),
            P::RetainAvailable => set(&mut self.retain_available, property, reader),
            P::UserProperty => self.decode_user_property(reader),
            P::MaximumPacketSize => set(&mut self.maximum_packet_size, property, reader),
            P::WildcardSubscriptionAvailable => {
                set(&mut self.wildcard_subscription_available, property, reader)
            }
            P::SubscriptionIdentifierAvailable => set(
                &mut self.subscription_identifier_available,
                property,
                reader,
            ),
            P::SharedSubscriptionAvailable => {
                set(&mut self.shared_subscription_available, property, reader)
            }
        }
    }

    /// Repeats only in PUBLISH (section 3.8.2.1.2): one per subscription the message matched.
    fn decode_subscription_identifier(
        &mut self,
        reader: &mut Reader,
        context: PropertyContext,
    ) -> Result<(), DecodeError> {
        let property = PropertyId::SubscriptionIdentifier;
        if !self.subscription_identifiers.is_empty()
            && context != PropertyContext::Packet(PacketType::Publish)
        {
            return Err(DecodeError::PropertyDuplicate { property });
        }
        let id = SubscriptionId::decode(reader, property)?;
        self.subscription_identifiers.push(id);
        Ok(())
    }

    fn decode_user_property(&mut self, reader: &mut Reader) -> Result<(), DecodeError> {
        let field = PropertyId::UserProperty.name();
        let name = reader.read_string(field)?;
        let value = reader.read_string(field)?;
        self.user_properties.push(UserProperty { name, value });
        Ok(())
    }

    fn encode_values(&self, writer: &mut Writer<'_>) {
        use PropertyId as P;
        put(
            writer,
            P::PayloadFormatIndicator,
            &self.payload_format_indicator,
        );
        put(
            writer,
            P::MessageExpiryInterval,
            &self.message_expiry_interval,
        );
        put(writer, P::ContentType, &self.content_type);
        put(writer, P::ResponseTopic, &self.response_topic);
        put(writer, P::CorrelationData, &self.correlation_data);
        for id in &self.subscription_identifiers {
            put(writer, P::SubscriptionIdentifier, &Some(*id));
        }
        put(
            writer,
            P::SessionExpiryInterval,
            &self.session_expiry_interval,
        );
        put(
            writer,
            P::AssignedClientIdentifier,
            &self.assigned_client_identifier,
        );
        put(writer, P::ServerKeepAlive, &self.server_keep_alive);
        put(writer, P::AuthenticationMethod, &self.authentication_method);
        put(writer, P::AuthenticationData, &self.authentication_data);
        put(
            writer,
            P::RequestProblemInformation,
            &self.request_problem_information,
        );
        put(writer, P::WillDelayInterval, &self.will_delay_interval);
        put(
            writer,
            P::RequestResponseInformation,
            &self.request_response_information,
        );
        put(writer, P::ResponseInformation, &self.response_information);
        put(writer, P::ServerReference, &self.server_reference);
        put(writer, P::ReasonString, &self.reason_string);
        put(writer, P::ReceiveMaximum, &self.receive_maximum);
        put(writer, P::TopicAliasMaximum, &self.topic_alias_maximum);
        put(writer, P::TopicAlias, &self.topic_alias);
        put(writer, P::MaximumQoS, &self.maximum_qos);
        put(writer, P::RetainAvailable, &self.retain_available);
        for pair in &self.user_properties {
            writer.write_u8(P::UserProperty.id());
            writer.write_string(&pair.name);
            writer.write_string(&pair.value);
        }
        put(writer, P::MaximumPacketSize, &self.maximum_packet_size);
        let wildcard = &self.wildcard_subscription_available;
        put(writer, P::WildcardSubscriptionAvailable, wildcard);
        let identifier = &self.subscription_identifier_available;
        put(writer, P::SubscriptionIdentifierAvailable, identifier);
        let shared = &self.shared_subscription_available;
        put(writer, P::SharedSubscriptionAvailable, shared);
    }
}

/// Reads the value of a property that may appear once into its field.
fn set<T: PropertyValue>(
    slot: &mut Option<T>,
    property: PropertyId,
    reader: &mut Reader,
) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::PropertyDuplicate { property });
    }
    *slot = Some(T::decode(reader, property)?);
    Ok(())
}

/// Writes the identifier and value of a present property. Every identifier fits in one byte
/// of Variable Byte Integer.
fn put<T: PropertyValue>(writer: &mut Writer<'_>, property: PropertyId, value: &Option<T>) {
    if let Some(value) = value {
        writer.write_u8(property.id());
        value.encode(writer);
    }
}

/// How a property's value is read and written: the data type of the property in the table
/// of section 2.2.2.2, with the range the spec allows.
trait PropertyValue: Sized {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError>;
    fn encode(&self, writer: &mut Writer<'_>);
}

impl PropertyValue for u16 {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        reader.read_u16(property.name())
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u16(*self);
    }
}

impl PropertyValue for u32 {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        reader.read_u32(property.name())
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u32(*self);
    }
}

/// Receive Maximum, Topic Alias: 0 is a Protocol Error (sections 3.1.2.11.3, 3.3.2.3.4).
impl PropertyValue for NonZeroU16 {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        let value = reader.read_u16(property.name())?;
        NonZeroU16::new(value).ok_or(DecodeError::PropertyValueInvalid { property, value: 0 })
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u16(self.get());
    }
}

/// Maximum Packet Size: 0 is a Protocol Error (section 3.1.2.11.4).
impl PropertyValue for NonZeroU32 {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        let value = reader.read_u32(property.name())?;
        NonZeroU32::new(value).ok_or(DecodeError::PropertyValueInvalid { property, value: 0 })
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u32(self.get());
    }
}

/// The byte-sized flags: a value other than 0 or 1 is a Protocol Error (sections 3.1.2.11.6,
/// 3.1.2.11.7, 3.2.2.3.5, 3.2.2.3.11 to 3.2.2.3.13).
impl PropertyValue for bool {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        match reader.read_u8(property.name())? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(DecodeError::PropertyValueInvalid {
                property,
                value: u32::from(value),
            }),
        }
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u8(u8::from(*self));
    }
}

impl PropertyValue for PayloadFormat {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        match reader.read_u8(property.name())? {
            0 => Ok(PayloadFormat::Unspecified),
            1 => Ok(PayloadFormat::Utf8),
            value => Err(DecodeError::PropertyValueInvalid {
                property,
                value: u32::from(value),
            }),
        }
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u8(*self as u8);
    }
}

/// Maximum QoS, the only property of this type: 0 or 1 (section 3.2.2.3.4).
impl PropertyValue for QoS {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        match reader.read_u8(property.name())? {
            0 => Ok(QoS::AtMostOnce),
            1 => Ok(QoS::AtLeastOnce),
            value => Err(DecodeError::PropertyValueInvalid {
                property,
                value: u32::from(value),
            }),
        }
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_u8(self.level());
    }
}

impl PropertyValue for Utf8String {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        reader.read_string(property.name())
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_string(self);
    }
}

impl PropertyValue for Binary {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        reader.read_binary(property.name())
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_binary(self);
    }
}

/// A Variable Byte Integer from 1 up: 0 is a Protocol Error (section 3.8.2.1.2).
impl PropertyValue for SubscriptionId {
    fn decode(reader: &mut Reader, property: PropertyId) -> Result<Self, DecodeError> {
        let value = reader.read_variable_integer(property.name())?;
        SubscriptionId::new(value).ok_or(DecodeError::PropertyValueInvalid { property, value })
    }
    fn encode(&self, writer: &mut Writer<'_>) {
        writer.write_variable_integer(self.get());
    }
}
