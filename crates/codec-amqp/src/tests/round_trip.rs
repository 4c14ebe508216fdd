//! Round trips: every value the codec encodes decodes to itself, through whole frames and
//! through a read buffer filled a few bytes at a time.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::{decode_all, encode};
use crate::method::{basic, channel, confirm, connection, exchange, queue, tx};
use crate::{ContentHeader, FieldTable, FieldValue, Frame, FrameDecoder, Method};

/// Every method of the spec with default arguments, its class id, method id and name.
pub(super) fn every_method() -> Vec<(Method, u16, u16, &'static str)> {
    use Method as M;
    vec![
        (
            M::Connection(connection::Method::Start(Default::default())),
            10,
            10,
            "connection.start",
        ),
        (
            M::Connection(connection::Method::StartOk(Default::default())),
            10,
            11,
            "connection.start-ok",
        ),
        (
            M::Connection(connection::Method::Secure(Default::default())),
            10,
            20,
            "connection.secure",
        ),
        (
            M::Connection(connection::Method::SecureOk(Default::default())),
            10,
            21,
            "connection.secure-ok",
        ),
        (
            M::Connection(connection::Method::Tune(Default::default())),
            10,
            30,
            "connection.tune",
        ),
        (
            M::Connection(connection::Method::TuneOk(Default::default())),
            10,
            31,
            "connection.tune-ok",
        ),
        (
            M::Connection(connection::Method::Open(Default::default())),
            10,
            40,
            "connection.open",
        ),
        (
            M::Connection(connection::Method::OpenOk(Default::default())),
            10,
            41,
            "connection.open-ok",
        ),
        (
            M::Connection(connection::Method::Close(Default::default())),
            10,
            50,
            "connection.close",
        ),
        (
            M::Connection(connection::Method::CloseOk(Default::default())),
            10,
            51,
            "connection.close-ok",
        ),
        (
            M::Connection(connection::Method::Blocked(Default::default())),
            10,
            60,
            "connection.blocked",
        ),
        (
            M::Connection(connection::Method::Unblocked(Default::default())),
            10,
            61,
            "connection.unblocked",
        ),
        (
            M::Connection(connection::Method::UpdateSecret(Default::default())),
            10,
            70,
            "connection.update-secret",
        ),
        (
            M::Connection(connection::Method::UpdateSecretOk(Default::default())),
            10,
            71,
            "connection.update-secret-ok",
        ),
        (
            M::Channel(channel::Method::Open(Default::default())),
            20,
            10,
            "channel.open",
        ),
        (
            M::Channel(channel::Method::OpenOk(Default::default())),
            20,
            11,
            "channel.open-ok",
        ),
        (
            M::Channel(channel::Method::Flow(Default::default())),
            20,
            20,
            "channel.flow",
        ),
        (
            M::Channel(channel::Method::FlowOk(Default::default())),
            20,
            21,
            "channel.flow-ok",
        ),
        (
            M::Channel(channel::Method::Close(Default::default())),
            20,
            40,
            "channel.close",
        ),
        (
            M::Channel(channel::Method::CloseOk(Default::default())),
            20,
            41,
            "channel.close-ok",
        ),
        (
            M::Exchange(exchange::Method::Declare(Default::default())),
            40,
            10,
            "exchange.declare",
        ),
        (
            M::Exchange(exchange::Method::DeclareOk(Default::default())),
            40,
            11,
            "exchange.declare-ok",
        ),
        (
            M::Exchange(exchange::Method::Delete(Default::default())),
            40,
            20,
            "exchange.delete",
        ),
        (
            M::Exchange(exchange::Method::DeleteOk(Default::default())),
            40,
            21,
            "exchange.delete-ok",
        ),
        (
            M::Exchange(exchange::Method::Bind(Default::default())),
            40,
            30,
            "exchange.bind",
        ),
        (
            M::Exchange(exchange::Method::BindOk(Default::default())),
            40,
            31,
            "exchange.bind-ok",
        ),
        (
            M::Exchange(exchange::Method::Unbind(Default::default())),
            40,
            40,
            "exchange.unbind",
        ),
        (
            M::Exchange(exchange::Method::UnbindOk(Default::default())),
            40,
            51,
            "exchange.unbind-ok",
        ),
        (
            M::Queue(queue::Method::Declare(Default::default())),
            50,
            10,
            "queue.declare",
        ),
        (
            M::Queue(queue::Method::DeclareOk(Default::default())),
            50,
            11,
            "queue.declare-ok",
        ),
        (
            M::Queue(queue::Method::Bind(Default::default())),
            50,
            20,
            "queue.bind",
        ),
        (
            M::Queue(queue::Method::BindOk(Default::default())),
            50,
            21,
            "queue.bind-ok",
        ),
        (
            M::Queue(queue::Method::Purge(Default::default())),
            50,
            30,
            "queue.purge",
        ),
        (
            M::Queue(queue::Method::PurgeOk(Default::default())),
            50,
            31,
            "queue.purge-ok",
        ),
        (
            M::Queue(queue::Method::Delete(Default::default())),
            50,
            40,
            "queue.delete",
        ),
        (
            M::Queue(queue::Method::DeleteOk(Default::default())),
            50,
            41,
            "queue.delete-ok",
        ),
        (
            M::Queue(queue::Method::Unbind(Default::default())),
            50,
            50,
            "queue.unbind",
        ),
        (
            M::Queue(queue::Method::UnbindOk(Default::default())),
            50,
            51,
            "queue.unbind-ok",
        ),
        (
            M::Basic(basic::Method::Qos(Default::default())),
            60,
            10,
            "basic.qos",
        ),
        (
            M::Basic(basic::Method::QosOk(Default::default())),
            60,
            11,
            "basic.qos-ok",
        ),
        (
            M::Basic(basic::Method::Consume(Default::default())),
            60,
            20,
            "basic.consume",
        ),
        (
            M::Basic(basic::Method::ConsumeOk(Default::default())),
            60,
            21,
            "basic.consume-ok",
        ),
        (
            M::Basic(basic::Method::Cancel(Default::default())),
            60,
            30,
            "basic.cancel",
        ),
        (
            M::Basic(basic::Method::CancelOk(Default::default())),
            60,
            31,
            "basic.cancel-ok",
        ),
        (
            M::Basic(basic::Method::Publish(Default::default())),
            60,
            40,
            "basic.publish",
        ),
        (
            M::Basic(basic::Method::Return(Default::default())),
            60,
            50,
            "basic.return",
        ),
        (
            M::Basic(basic::Method::Deliver(Default::default())),
            60,
            60,
            "basic.deliver",
        ),
        (
            M::Basic(basic::Method::Get(Default::default())),
            60,
            70,
            "basic.get",
        ),
        (
            M::Basic(basic::Method::GetOk(Default::default())),
            60,
            71,
            "basic.get-ok",
        ),
        (
            M::Basic(basic::Method::GetEmpty(Default::default())),
            60,
            72,
            "basic.get-empty",
        ),
        (
            M::Basic(basic::Method::Ack(Default::default())),
            60,
            80,
            "basic.ack",
        ),
        (
            M::Basic(basic::Method::Reject(Default::default())),
            60,
            90,
            "basic.reject",
        ),
        (
            M::Basic(basic::Method::RecoverAsync(Default::default())),
            60,
            100,
            "basic.recover-async",
        ),
        (
            M::Basic(basic::Method::Recover(Default::default())),
            60,
            110,
            "basic.recover",
        ),
        (
            M::Basic(basic::Method::RecoverOk(Default::default())),
            60,
            111,
            "basic.recover-ok",
        ),
        (
            M::Basic(basic::Method::Nack(Default::default())),
            60,
            120,
            "basic.nack",
        ),
        (
            M::Confirm(confirm::Method::Select(Default::default())),
            85,
            10,
            "confirm.select",
        ),
        (
            M::Confirm(confirm::Method::SelectOk(Default::default())),
            85,
            11,
            "confirm.select-ok",
        ),
        (
            M::Tx(tx::Method::Select(Default::default())),
            90,
            10,
            "tx.select",
        ),
        (
            M::Tx(tx::Method::SelectOk(Default::default())),
            90,
            11,
            "tx.select-ok",
        ),
        (
            M::Tx(tx::Method::Commit(Default::default())),
            90,
            20,
            "tx.commit",
        ),
        (
            M::Tx(tx::Method::CommitOk(Default::default())),
            90,
            21,
            "tx.commit-ok",
        ),
        (
            M::Tx(tx::Method::Rollback(Default::default())),
            90,
            30,
            "tx.rollback",
        ),
        (
            M::Tx(tx::Method::RollbackOk(Default::default())),
            90,
            31,
            "tx.rollback-ok",
        ),
    ]
}

#[test]
fn every_method_is_listed_once() {
    let methods = every_method();
    assert_eq!(methods.len(), 64);
    let mut ids: Vec<_> = methods.iter().map(|(_, c, m, _)| (*c, *m)).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 64);
}

fn assert_method_round_trip(method: Method, channel: u16) -> Result<(), TestCaseError> {
    let mut payload = BytesMut::new();
    method.encode(&mut payload);
    prop_assert_eq!(Method::decode(payload.freeze()), Ok(method.clone()));
    let frame = Frame::Method { channel, method };
    prop_assert_eq!(decode_all(&encode(&frame), 0), vec![frame]);
    Ok(())
}

proptest! {
    #[test]
    fn connection_methods_round_trip(method in connection::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn channel_methods_round_trip(method in channel::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn exchange_methods_round_trip(method in exchange::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn queue_methods_round_trip(method in queue::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn basic_methods_round_trip(method in basic::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn confirm_methods_round_trip(method in confirm::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn tx_methods_round_trip(method in tx::Method::strategy(), channel: u16) {
        assert_method_round_trip(method.into(), channel)?;
    }

    #[test]
    fn field_tables_round_trip(table: FieldTable) {
        let mut bytes = BytesMut::new();
        table.encode(&mut bytes);
        let bytes = bytes.freeze();
        let decoded = FieldTable::decode(bytes.clone()).unwrap();
        prop_assert_eq!(&decoded, &table);
        let mut again = BytesMut::new();
        decoded.encode(&mut again);
        prop_assert_eq!(again.freeze(), bytes);
    }

    /// Floats are compared bit for bit, NaNs included, through their encoding.
    #[test]
    fn floats_keep_their_bits(bits32: u32, bits64: u64) {
        let table = FieldTable::from(vec![
            (super::short("f"), FieldValue::F32(f32::from_bits(bits32))),
            (super::short("d"), FieldValue::F64(f64::from_bits(bits64))),
        ]);
        let mut bytes = BytesMut::new();
        table.encode(&mut bytes);
        let decoded = FieldTable::decode(bytes.freeze()).unwrap();
        let values: Vec<_> = decoded.iter().map(|(_, value)| value.clone()).collect();
        match values.as_slice() {
            [FieldValue::F32(f), FieldValue::F64(d)] => {
                prop_assert_eq!(f.to_bits(), bits32);
                prop_assert_eq!(d.to_bits(), bits64);
            }
            other => prop_assert!(false, "decoded {:?}", other),
        }
    }

    #[test]
    fn content_headers_round_trip(header: ContentHeader, channel: u16) {
        let frame = Frame::Header { channel, header };
        prop_assert_eq!(decode_all(&encode(&frame), 0), vec![frame]);
    }

    /// A stream of frames read in pieces of any size decodes to the same frames.
    #[test]
    fn frames_decode_from_a_stream_in_pieces(
        frames in prop::collection::vec(any::<Frame>(), 1..8),
        piece in 1usize..64,
    ) {
        let mut stream = BytesMut::new();
        for frame in &frames {
            frame.encode(&mut stream);
        }
        let decoder = FrameDecoder::new(0);
        let mut buf = BytesMut::new();
        let mut decoded = Vec::new();
        for chunk in stream.chunks(piece) {
            buf.extend_from_slice(chunk);
            while let Some(frame) = decoder.decode(&mut buf).unwrap() {
                decoded.push(frame);
            }
        }
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, frames);
    }

    /// `encoded_len` counts what `encode` appends, bits packed and lengths included.
    #[test]
    fn encoded_len_is_the_length_encoded(frame: Frame, table: FieldTable) {
        prop_assert_eq!(frame.encoded_len(), encode(&frame).len());
        let mut bytes = BytesMut::new();
        table.encode(&mut bytes);
        prop_assert_eq!(table.encoded_len(), bytes.len());
    }

    /// Every method's payload cut short is an error, never a panic or a different method.
    #[test]
    fn truncated_methods_are_errors(method: Method, cut: prop::sample::Index) {
        let mut payload = BytesMut::new();
        method.encode(&mut payload);
        let payload: Bytes = payload.freeze();
        let cut = cut.index(payload.len());
        prop_assert!(Method::decode(payload.slice(..cut)).is_err());
    }
}
