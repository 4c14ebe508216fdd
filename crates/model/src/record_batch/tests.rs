use super::encode::{encode_batch, BatchFields};
use super::*;
use bytes::BufMut;
use proptest::prelude::*;

fn bytes(text: &str) -> Option<Bytes> {
    Some(Bytes::copy_from_slice(text.as_bytes()))
}

fn input(offset_delta: u32, timestamp: i64, key: &str, value: &str) -> RecordInput {
    RecordInput {
        offset_delta,
        timestamp,
        key: bytes(key),
        value: bytes(value),
        headers: Vec::new(),
    }
}

/// Recomputes the crc of a batch whose bytes a test changed on purpose, so the change
/// reaches the checks behind the CRC.
fn reseal(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[position::ATTRIBUTES..]);
    batch[position::CRC..position::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// A batch with the given attributes, counts and raw records section, with a valid CRC.
fn handmade_batch(attributes: i16, last_offset_delta: i32, count: i32, section: &[u8]) -> Bytes {
    let mut batch = BytesMut::new();
    batch.put_i64(0);
    batch.put_i32((HEADER_BYTES - LOG_OVERHEAD + section.len()) as i32);
    batch.put_i32(-1);
    batch.put_i8(2);
    batch.put_u32(0);
    batch.put_i16(attributes);
    batch.put_i32(last_offset_delta);
    batch.put_i64(1_000);
    batch.put_i64(1_000);
    batch.put_i64(-1);
    batch.put_i16(-1);
    batch.put_i32(-1);
    batch.put_i32(count);
    batch.put_slice(section);
    reseal(&mut batch);
    batch.freeze()
}

/// Two records, worked out by hand from Kafka's protocol guide.
#[rustfmt::skip]
const KNOWN_BATCH: [u8; 81] = [
    0, 0, 0, 0, 0, 0, 0, 5,             // baseOffset 5
    0, 0, 0, 69,                        // batchLength: 49 header bytes after it + 20 of records
    0xff, 0xff, 0xff, 0xff,             // partitionLeaderEpoch -1
    2,                                  // magic
    0x3c, 0xf9, 0x46, 0x0d,             // crc: CRC-32C of the 60 bytes after it
    0, 0,                               // attributes: no compression, create time
    0, 0, 0, 2,                         // lastOffsetDelta 2
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // baseTimestamp 1000
    0, 0, 0, 0, 0, 0, 0x03, 0xe8,       // maxTimestamp 1000
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // producerId -1
    0xff, 0xff,                         // producerEpoch -1
    0xff, 0xff, 0xff, 0xff,             // baseSequence -1
    0, 0, 0, 2,                         // recordsCount 2
    // record 0
    0x18,                               // length 12, ZigZag
    0,                                  // attributes
    0,                                  // timestampDelta 0
    0,                                  // offsetDelta 0
    0x02, b'k',                         // key "k"
    0x02, b'v',                         // value "v"
    0x02,                               // 1 header
    0x02, b'h', 0x02, b'x',             // "h" = "x"
    // record 1
    0x0c,                               // length 6
    0,                                  // attributes
    0x01,                               // timestampDelta -1
    0x04,                               // offsetDelta 2
    0x01,                               // key null
    0x01,                               // value null: a tombstone
    0x00,                               // no headers
];

fn known_inputs() -> Vec<RecordInput> {
    vec![
        RecordInput {
            offset_delta: 0,
            timestamp: 1_000,
            key: bytes("k"),
            value: bytes("v"),
            headers: vec![Header {
                key: "h".to_owned(),
                value: bytes("x"),
            }],
        },
        RecordInput {
            offset_delta: 2,
            timestamp: 999,
            key: None,
            value: None,
            headers: Vec::new(),
        },
    ]
}

#[test]
fn crc_is_castagnoli() {
    // The CRC-32C check value (RFC 3720, B.4); plain CRC-32 gives 0xcbf43926.
    assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
}

#[test]
fn encodes_a_small_batch_byte_for_byte() {
    let encoded = encode(5, 2, &known_inputs(), Producer::NONE, Compression::None).unwrap();
    assert_eq!(&encoded[..], &KNOWN_BATCH[..]);
}

#[test]
fn decodes_a_small_batch_from_known_bytes() {
    let batch = RecordBatch::parse(Bytes::from_static(&KNOWN_BATCH)).unwrap();
    let header = batch.header();
    assert_eq!(
        *header,
        BatchHeader {
            base_offset: 5,
            batch_length: 81,
            last_offset_delta: 2,
            base_timestamp: 1_000,
            max_timestamp: 1_000,
            producer: Producer::NONE,
            record_count: 2,
            compression: Compression::None,
            attributes: 0,
        }
    );
    assert_eq!((header.last_offset(), header.next_offset()), (7, 8));
    let records = batch.records().unwrap();
    assert_eq!(
        records,
        vec![
            Record {
                offset: 5,
                timestamp: 1_000,
                key: bytes("k"),
                value: bytes("v"),
                headers: vec![Header {
                    key: "h".to_owned(),
                    value: bytes("x"),
                }],
            },
            Record {
                offset: 7,
                timestamp: 999,
                key: None,
                value: None,
                headers: Vec::new(),
            },
        ]
    );
}

#[test]
fn uncompressed_records_are_slices_of_the_batch() {
    let batch = RecordBatch::parse(Bytes::from_static(&KNOWN_BATCH)).unwrap();
    let records = batch.records().unwrap();
    let value = records[0].value.as_ref().unwrap();
    let batch_range = batch.bytes().as_ptr_range();
    assert!(batch_range.contains(&value.as_ptr()), "value was copied");
}

#[test]
fn compressed_batches_round_trip_and_shrink() {
    let records: Vec<RecordInput> = (0..5_000)
        .map(|index| {
            input(
                index,
                1_700_000_000_000 + i64::from(index),
                "key",
                "the same value again",
            )
        })
        .collect();
    let plain = encode(0, 4_999, &records, Producer::NONE, Compression::None).unwrap();
    for compression in [Compression::Lz4, Compression::Zstd] {
        let encoded = encode(0, 4_999, &records, Producer::NONE, compression).unwrap();
        assert!(
            encoded.len() * 4 < plain.len(),
            "{compression} did not compress"
        );
        let batch = RecordBatch::parse(encoded).unwrap();
        assert_eq!(batch.header().compression, compression);
        assert_eq!(batch.header().attributes, compression.attribute_code());
        let decoded = batch.records().unwrap();
        assert_eq!(decoded.len(), 5_000);
        assert_eq!(
            decoded,
            RecordBatch::parse(plain.clone())
                .unwrap()
                .records()
                .unwrap()
        );
    }
}

#[test]
fn empty_batches_keep_their_range_and_producer() {
    let producer = Producer {
        id: 42,
        epoch: 3,
        base_sequence: 17,
    };
    let encoded = encode(100, 9, &[], producer, Compression::Zstd).unwrap();
    let batch = RecordBatch::parse(encoded).unwrap();
    assert_eq!(batch.header().next_offset(), 110);
    assert_eq!(batch.header().producer, producer);
    assert_eq!(batch.header().base_timestamp, NO_TIMESTAMP);
    assert_eq!(batch.records().unwrap(), Vec::new());
}

#[test]
fn with_records_keeps_offsets_times_and_range() {
    let producer = Producer {
        id: 7,
        epoch: 1,
        base_sequence: 0,
    };
    let records = vec![
        input(0, 5_000, "a", "1"),
        input(1, 5_010, "b", "2"),
        input(2, 4_990, "a", "3"),
        input(3, 5_020, "c", "4"),
    ];
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let original = encode(1_000, 3, &records, producer, compression).unwrap();
        let original = RecordBatch::parse(original).unwrap();
        let compacted = original
            .with_records(|record| record.key.as_deref() != Some(b"c") && record.offset != 1_000)
            .unwrap();
        let compacted = RecordBatch::parse(compacted).unwrap();
        let header = compacted.header();
        assert_eq!(header.base_offset, 1_000);
        assert_eq!(
            header.last_offset_delta, 3,
            "the batch still covers offset 1003"
        );
        assert_eq!(header.base_timestamp, 5_000);
        assert_eq!(header.max_timestamp, 5_010);
        assert_eq!(header.producer, producer);
        assert_eq!(header.compression, compression);
        assert_eq!(header.record_count, 2);
        let kept: Vec<(u64, i64, Option<Bytes>)> = compacted
            .records()
            .unwrap()
            .into_iter()
            .map(|record| (record.offset, record.timestamp, record.value))
            .collect();
        assert_eq!(
            kept,
            vec![(1_001, 5_010, bytes("2")), (1_002, 4_990, bytes("3"))]
        );

        let emptied = RecordBatch::parse(original.with_records(|_| false).unwrap()).unwrap();
        assert_eq!(emptied.header().next_offset(), 1_004);
        assert_eq!(emptied.header().max_timestamp, 5_020);
        assert_eq!(emptied.header().record_count, 0);
    }
}

#[test]
fn log_append_time_batches_report_the_append_time_and_keep_it_through_compaction() {
    let fields = BatchFields {
        base_offset: 0,
        last_offset_delta: 1,
        base_timestamp: 10,
        max_timestamp: 99_999,
        producer: Producer::NONE,
        compression: Compression::None,
        attribute_flags: ATTRIBUTE_LOG_APPEND_TIME | ATTRIBUTE_TRANSACTIONAL,
    };
    let records = [input(0, 10, "a", "1"), input(1, 20, "b", "2")];
    let batch = RecordBatch::parse(encode_batch(&fields, &records).unwrap()).unwrap();
    assert!(batch.header().is_log_append_time() && batch.header().is_transactional());
    assert!(!batch.header().is_control() && !batch.header().has_delete_horizon());
    let timestamps: Vec<i64> = batch
        .records()
        .unwrap()
        .iter()
        .map(|r| r.timestamp)
        .collect();
    assert_eq!(timestamps, [99_999, 99_999]);

    let compacted = batch.with_records(|record| record.offset == 1).unwrap();
    let compacted = RecordBatch::parse(compacted).unwrap();
    assert_eq!(compacted.header().attributes, batch.header().attributes);
    assert_eq!(compacted.header().max_timestamp, 99_999);
    assert_eq!(compacted.records().unwrap()[0].timestamp, 99_999);
}

#[test]
fn set_base_offset_keeps_the_crc_valid() {
    let records = [input(0, 1, "a", "1"), input(1, 2, "b", "2")];
    for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
        let mut encoded =
            BytesMut::from(&encode(0, 1, &records, Producer::NONE, compression).unwrap()[..]);
        set_base_offset(&mut encoded, 1 << 40);
        let batch = RecordBatch::parse(encoded.freeze()).unwrap();
        assert_eq!(batch.header().base_offset, 1 << 40);
        let offsets: Vec<u64> = batch.records().unwrap().iter().map(|r| r.offset).collect();
        assert_eq!(offsets, [1 << 40, (1 << 40) + 1]);

        let moved = batch.with_base_offset(77).unwrap();
        assert_eq!(moved.header().base_offset, 77);
        assert_eq!(RecordBatch::parse(moved.bytes().clone()).unwrap(), moved);
        assert!(matches!(
            batch.with_base_offset(i64::MAX as u64),
            Err(BatchError::BaseOffsetOutOfRange { .. })
        ));
    }
}

#[test]
fn split_separates_concatenated_batches() {
    let first = encode(
        0,
        1,
        &[input(0, 1, "a", "1"), input(1, 1, "b", "2")],
        Producer::NONE,
        Compression::None,
    )
    .unwrap();
    let second = encode(
        2,
        0,
        &[input(0, 2, "c", "3")],
        Producer::NONE,
        Compression::Lz4,
    )
    .unwrap();
    let third = encode(3, 4, &[], Producer::NONE, Compression::Zstd).unwrap();
    let mut all = BytesMut::new();
    for batch in [&first, &second, &third] {
        all.put_slice(batch);
    }
    let all = all.freeze();
    let batches = split(all.clone()).unwrap();
    let found: Vec<(&Bytes, u64)> = batches
        .iter()
        .map(|batch| (batch.bytes(), batch.header().next_offset()))
        .collect();
    assert_eq!(found, vec![(&first, 2), (&second, 3), (&third, 8)]);
    assert_eq!(split(Bytes::new()).unwrap(), Vec::new());

    let cut = all.slice(..all.len() - 1);
    assert!(matches!(
        split(cut),
        Err(BatchError::TooShort { need, have }) if need == third.len() && have == third.len() - 1
    ));
    let mut tail = BytesMut::from(&all[..]);
    tail.put_slice(&[0; 5]);
    assert!(matches!(
        split(tail.freeze()),
        Err(BatchError::TooShort { need: 12, have: 5 })
    ));
}

#[test]
fn parse_refuses_damaged_batches() {
    let known = || BytesMut::from(&KNOWN_BATCH[..]);
    assert!(matches!(
        RecordBatch::parse(Bytes::from_static(&KNOWN_BATCH[..60])),
        Err(BatchError::TooShort { need: 61, have: 60 })
    ));
    assert!(matches!(
        RecordBatch::parse(Bytes::from_static(&KNOWN_BATCH[..80])),
        Err(BatchError::LengthMismatch {
            declared: 69,
            actual: 68
        })
    ));
    let mut bad_magic = known();
    bad_magic[position::MAGIC] = 1;
    assert!(matches!(
        RecordBatch::parse(bad_magic.freeze()),
        Err(BatchError::BadMagic { found: 1 })
    ));
    let mut flipped = known();
    flipped[70] ^= 0x01;
    assert!(matches!(
        RecordBatch::parse(flipped.freeze()),
        Err(BatchError::ChecksumMismatch {
            expected: 0x3cf9_460d,
            ..
        })
    ));
    let mut negative_base = known();
    negative_base[0] = 0x80;
    assert!(matches!(
        RecordBatch::parse(negative_base.freeze()),
        Err(BatchError::HeaderFieldOutOfRange {
            field: "baseOffset",
            ..
        })
    ));
    assert!(matches!(
        RecordBatch::parse(handmade_batch(0, 1, 3, &[])),
        Err(BatchError::HeaderFieldOutOfRange {
            field: "recordsCount",
            value: 3
        })
    ));
    assert!(matches!(
        RecordBatch::parse(handmade_batch(0, -1, 0, &[])),
        Err(BatchError::HeaderFieldOutOfRange {
            field: "lastOffsetDelta",
            value: -1
        })
    ));
}

#[test]
fn names_the_compressions_it_does_not_support() {
    for (code, name) in [(1, "gzip"), (2, "snappy")] {
        assert!(matches!(
            RecordBatch::parse(handmade_batch(code, 0, 0, &[])),
            Err(BatchError::UnsupportedCompression { name: found }) if found == name
        ));
    }
    for code in 5..=7 {
        assert!(matches!(
            RecordBatch::parse(handmade_batch(code, 0, 0, &[])),
            Err(BatchError::UnknownCompression { code: found }) if i16::from(found) == code
        ));
    }
}

#[test]
fn reports_which_record_is_malformed_and_why() {
    // Record 1 claims 9 body bytes but only 6 follow.
    let mut section = KNOWN_BATCH[HEADER_BYTES..].to_vec();
    section[13] = 0x12;
    let batch = RecordBatch::parse(handmade_batch(0, 2, 2, &section)).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::RecordMalformed {
            index: 1,
            problem: RecordProblem::Truncated {
                field: RecordField::Length
            }
        })
    ));

    // A header key that is not UTF-8.
    let mut section = KNOWN_BATCH[HEADER_BYTES..].to_vec();
    section[10] = 0xff;
    let batch = RecordBatch::parse(handmade_batch(0, 2, 2, &section)).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::HeaderKeyNotUtf8 {
            index: 0,
            header: 0,
            ..
        })
    ));

    // A six-byte offsetDelta varint.
    let section = [0x10, 0, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00];
    let batch = RecordBatch::parse(handmade_batch(0, 0, 1, &section)).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::VarintOverflow {
            index: 0,
            field: RecordField::OffsetDelta
        })
    ));
}

#[test]
fn refuses_offset_deltas_out_of_range_or_order_and_uncounted_records() {
    // An offset delta beyond lastOffsetDelta, then one going backwards.
    let batch = RecordBatch::parse(handmade_batch(0, 1, 2, &KNOWN_BATCH[HEADER_BYTES..])).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::RecordMalformed {
            index: 1,
            problem: RecordProblem::OffsetDeltaOutOfRange {
                offset_delta: 2,
                last_offset_delta: 1
            }
        })
    ));
    let mut backwards = KNOWN_BATCH[HEADER_BYTES..].to_vec();
    backwards[16] = 0x00;
    let batch = RecordBatch::parse(handmade_batch(0, 2, 2, &backwards)).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::RecordMalformed {
            index: 1,
            problem: RecordProblem::OffsetDeltaNotIncreasing {
                offset_delta: 0,
                previous: 0
            }
        })
    ));

    // A record beyond recordsCount.
    let batch = RecordBatch::parse(handmade_batch(0, 2, 1, &KNOWN_BATCH[HEADER_BYTES..])).unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::RecordsTrailingBytes {
            record_count: 1,
            bytes: 7
        })
    ));
}

#[test]
fn refuses_records_that_inflate_past_the_limit() {
    let inflated = vec![0u8; RECORDS_BYTES_MAX + 1];
    let bomb = zstd::bulk::compress(&inflated, 1).unwrap();
    assert!(bomb.len() < 64 * 1024, "the test needs a small input");
    let batch = RecordBatch::parse(handmade_batch(
        Compression::Zstd.attribute_code(),
        0,
        1,
        &bomb,
    ))
    .unwrap();
    assert!(matches!(
        batch.records(),
        Err(BatchError::DecompressedTooLarge {
            limit: RECORDS_BYTES_MAX
        })
    ));
}

#[test]
fn reports_corrupt_compressed_records() {
    for code in [
        Compression::Lz4.attribute_code(),
        Compression::Zstd.attribute_code(),
    ] {
        let batch =
            RecordBatch::parse(handmade_batch(code, 0, 1, b"not compressed at all")).unwrap();
        assert!(matches!(
            batch.records(),
            Err(BatchError::DecompressionFailed { .. })
        ));
    }
}

#[test]
fn encode_refuses_records_a_batch_cannot_hold() {
    let none = Producer::NONE;
    let plain = Compression::None;
    assert!(matches!(
        encode(
            0,
            1,
            &[input(0, 1, "", ""), input(2, 1, "", "")],
            none,
            plain
        ),
        Err(BatchError::OffsetDeltaOutOfRange {
            index: 1,
            offset_delta: 2,
            last_offset_delta: 1
        })
    ));
    assert!(matches!(
        encode(
            0,
            5,
            &[input(3, 1, "", ""), input(3, 1, "", "")],
            none,
            plain
        ),
        Err(BatchError::OffsetDeltasNotIncreasing {
            index: 1,
            offset_delta: 3,
            previous: 3
        })
    ));
    assert!(matches!(
        encode(0, 1 << 31, &[], none, plain),
        Err(BatchError::LastOffsetDeltaOutOfRange { .. })
    ));
    assert!(matches!(
        encode(i64::MAX as u64, 1, &[], none, plain),
        Err(BatchError::BaseOffsetOutOfRange { .. })
    ));
    assert!(matches!(
        encode(
            0,
            1,
            &[input(0, i64::MIN, "", ""), input(1, i64::MAX, "", "")],
            none,
            plain
        ),
        Err(BatchError::TimestampOutOfRange { index: 1, .. })
    ));
    let huge = RecordInput {
        value: Some(Bytes::from(vec![0u8; RECORDS_BYTES_MAX])),
        ..input(0, 0, "", "")
    };
    assert!(matches!(
        encode(0, 0, &[huge], none, plain),
        Err(BatchError::RecordsTooLarge {
            limit: RECORDS_BYTES_MAX,
            ..
        })
    ));
}

#[test]
fn compression_names_parse_print_and_serialize_lowercase() {
    for (compression, name) in [
        (Compression::None, "none"),
        (Compression::Lz4, "lz4"),
        (Compression::Zstd, "zstd"),
    ] {
        assert_eq!(name.parse::<Compression>().unwrap(), compression);
        assert_eq!(compression.to_string(), name);
        assert_eq!(
            serde_json::to_string(&compression).unwrap(),
            format!("\"{name}\"")
        );
        assert_eq!(
            serde_json::from_str::<Compression>(&format!("\"{name}\"")).unwrap(),
            compression
        );
    }
    assert_eq!(
        "gzip".parse::<Compression>(),
        Err(CompressionNameError {
            name: "gzip".to_owned()
        })
    );
}

fn header_strategy() -> impl Strategy<Value = Header> {
    (
        "[a-z\u{e9}\u{1f600}]{0,6}",
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..12)),
    )
        .prop_map(|(key, value)| Header {
            key,
            value: value.map(Bytes::from),
        })
}

fn optional_bytes() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from))
}

fn compression_strategy() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Lz4),
        Just(Compression::Zstd)
    ]
}

/// Records with increasing offset deltas (gaps included) and timestamps around a base.
fn records_strategy() -> impl Strategy<Value = Vec<RecordInput>> {
    let record = (
        0u32..3,
        -(1i64 << 40)..(1i64 << 40),
        optional_bytes(),
        optional_bytes(),
        proptest::collection::vec(header_strategy(), 0..3),
    );
    proptest::collection::vec(record, 0..40).prop_map(|records| {
        let mut offset_delta = 0;
        records
            .into_iter()
            .enumerate()
            .map(|(index, (gap, timestamp, key, value, headers))| {
                offset_delta += if index == 0 { gap } else { gap + 1 };
                RecordInput {
                    offset_delta,
                    timestamp: 1_700_000_000_000 + timestamp,
                    key,
                    value,
                    headers,
                }
            })
            .collect()
    })
}

fn expected_records(base_offset: u64, records: &[RecordInput]) -> Vec<Record> {
    records
        .iter()
        .map(|record| Record {
            offset: base_offset + u64::from(record.offset_delta),
            timestamp: record.timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record.headers.clone(),
        })
        .collect()
}

fn encoded_batch_strategy() -> impl Strategy<Value = Bytes> {
    (
        0u64..1 << 40,
        records_strategy(),
        0u32..3,
        compression_strategy(),
    )
        .prop_map(|(base_offset, records, extra, compression)| {
            let last = records.last().map_or(0, |record| record.offset_delta) + extra;
            encode(base_offset, last, &records, Producer::NONE, compression).unwrap()
        })
}

/// Runs every decoding entry point; they may fail but never panic.
fn decode_everything(bytes: Bytes) {
    if let Ok(batch) = RecordBatch::parse(bytes.clone()) {
        let records = batch.records();
        let _ = batch.with_records(|record| record.offset % 2 == 0);
        if let Ok(records) = records {
            assert_eq!(records.len(), batch.header().record_count as usize);
        }
    }
    if let Ok(batches) = split(bytes) {
        for batch in batches {
            let _ = batch.records();
        }
    }
}

proptest! {
    #[test]
    fn batches_round_trip(
        base_offset in 0u64..1 << 50,
        records in records_strategy(),
        extra in 0u32..5,
        producer_id in -1i64..1 << 40,
        compression in compression_strategy(),
    ) {
        let last_offset_delta = records.last().map_or(0, |record| record.offset_delta) + extra;
        let producer = Producer { id: producer_id, epoch: 2, base_sequence: 9 };
        let encoded = encode(base_offset, last_offset_delta, &records, producer, compression).unwrap();
        let batch = RecordBatch::parse(encoded.clone()).unwrap();
        let header = batch.header();
        prop_assert_eq!(header.base_offset, base_offset);
        prop_assert_eq!(header.last_offset_delta, last_offset_delta);
        prop_assert_eq!(header.batch_length as usize, encoded.len());
        prop_assert_eq!(header.record_count as usize, records.len());
        prop_assert_eq!(header.producer, producer);
        prop_assert_eq!(header.compression, compression);
        prop_assert_eq!(
            header.max_timestamp,
            records.iter().map(|record| record.timestamp).max().unwrap_or(NO_TIMESTAMP)
        );
        prop_assert_eq!(batch.records().unwrap(), expected_records(base_offset, &records));
        prop_assert_eq!(batch.bytes(), &encoded);
    }

    #[test]
    fn with_records_keeps_exactly_the_chosen_records(
        records in records_strategy(),
        keep_mask: u64,
        compression in compression_strategy(),
    ) {
        let last_offset_delta = records.last().map_or(0, |record| record.offset_delta);
        let encoded = encode(10, last_offset_delta, &records, Producer::NONE, compression).unwrap();
        let batch = RecordBatch::parse(encoded).unwrap();
        let keep = |record: &Record| keep_mask >> ((record.offset - 10) % 64) & 1 == 1;
        let compacted = RecordBatch::parse(batch.with_records(keep).unwrap()).unwrap();
        let expected: Vec<Record> =
            batch.records().unwrap().into_iter().filter(|record| keep(record)).collect();
        prop_assert_eq!(compacted.records().unwrap(), expected);
        prop_assert_eq!(compacted.header().next_offset(), batch.header().next_offset());
        prop_assert_eq!(compacted.header().base_timestamp, batch.header().base_timestamp);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        decode_everything(Bytes::from(bytes));
    }

    #[test]
    fn decoding_mutated_batches_never_panics(
        batch in encoded_batch_strategy(),
        mutations in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..6),
        truncate in proptest::option::of(any::<proptest::sample::Index>()),
        fix_crc: bool,
    ) {
        let mut mutated = BytesMut::from(&batch[..]);
        for (index, byte) in mutations {
            let at = index.index(mutated.len());
            mutated[at] = byte;
        }
        if fix_crc {
            // Past the CRC, mutations reach the record and decompression code.
            reseal(&mut mutated);
        }
        if let Some(cut) = truncate {
            mutated.truncate(cut.index(mutated.len()));
        }
        decode_everything(mutated.freeze());
    }
}
