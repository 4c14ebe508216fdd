//! Strategies for the codec's values. Method structs get theirs from the `arguments!` macro;
//! floats are never NaN so that `PartialEq` can check round trips.

use bytes::Bytes;
use proptest::prelude::*;

use crate::method::{basic, channel, confirm, connection, exchange, queue, tx};
use crate::{
    BasicProperties, ContentHeader, Decimal, FieldTable, FieldValue, Frame, LongString, Method,
    ShortString,
};

impl Arbitrary for ShortString {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        // At most 63 characters of up to 4 bytes each stay within 255 bytes; the second arm
        // reaches the limit exactly.
        prop_oneof![".{0,63}", "[a-z]{255}"]
            .prop_map(|text: String| ShortString::try_from(text).unwrap())
            .boxed()
    }
}

impl Arbitrary for LongString {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        bytes().prop_map(LongString).boxed()
    }
}

impl Arbitrary for FieldValue {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        scalar_value()
            .prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
                    prop::collection::vec((any::<ShortString>(), inner), 0..6)
                        .prop_map(|entries| FieldValue::Table(FieldTable::from(entries))),
                ]
            })
            .boxed()
    }
}

impl Arbitrary for FieldTable {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        prop::collection::vec((any::<ShortString>(), any::<FieldValue>()), 0..5)
            .prop_map(FieldTable::from)
            .boxed()
    }
}

impl Arbitrary for BasicProperties {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        let strings = prop::collection::vec(any::<Option<ShortString>>(), 11);
        let others = (
            any::<Option<FieldTable>>(),
            any::<Option<u8>>(),
            any::<Option<u8>>(),
            any::<Option<u64>>(),
        );
        (strings, others)
            .prop_map(|(strings, (headers, delivery_mode, priority, timestamp))| {
                let mut strings = strings.into_iter();
                let mut next = || strings.next().unwrap();
                BasicProperties {
                    content_type: next(),
                    content_encoding: next(),
                    headers,
                    delivery_mode,
                    priority,
                    correlation_id: next(),
                    reply_to: next(),
                    expiration: next(),
                    message_id: next(),
                    timestamp,
                    kind: next(),
                    user_id: next(),
                    app_id: next(),
                    cluster_id: next(),
                }
            })
            .boxed()
    }
}

impl Arbitrary for ContentHeader {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        (any::<u64>(), any::<BasicProperties>())
            .prop_map(|(body_size, properties)| ContentHeader::new(body_size, properties))
            .boxed()
    }
}

impl Arbitrary for Method {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        prop_oneof![
            connection::Method::strategy().prop_map(Method::Connection),
            channel::Method::strategy().prop_map(Method::Channel),
            exchange::Method::strategy().prop_map(Method::Exchange),
            queue::Method::strategy().prop_map(Method::Queue),
            basic::Method::strategy().prop_map(Method::Basic),
            confirm::Method::strategy().prop_map(Method::Confirm),
            tx::Method::strategy().prop_map(Method::Tx),
        ]
        .boxed()
    }
}

impl Arbitrary for Frame {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with(_: ()) -> Self::Strategy {
        prop_oneof![
            (any::<u16>(), any::<Method>())
                .prop_map(|(channel, method)| Frame::Method { channel, method }),
            (any::<u16>(), any::<ContentHeader>())
                .prop_map(|(channel, header)| Frame::Header { channel, header }),
            (any::<u16>(), bytes()).prop_map(|(channel, payload)| Frame::Body { channel, payload }),
            Just(Frame::Heartbeat),
        ]
        .boxed()
    }
}

pub(super) fn bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from)
}

fn scalar_value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(FieldValue::F32),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>())
            .prop_map(|(scale, value)| { FieldValue::Decimal(Decimal { scale, value }) }),
        any::<LongString>().prop_map(FieldValue::LongString),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        bytes().prop_map(FieldValue::ByteArray),
    ]
}
