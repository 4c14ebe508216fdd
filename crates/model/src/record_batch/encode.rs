//! Encoding records into one batch.

use super::record::{self, RecordInput};
use super::{
    check_offset_range, position, BatchError, Compression, Producer, HEADER_BYTES, LOG_OVERHEAD,
    MAGIC, NO_TIMESTAMP, PARTITION_LEADER_EPOCH_NONE, RECORDS_BYTES_MAX,
};
use bytes::{BufMut, Bytes, BytesMut};

/// Encodes records as one batch based at `base_offset`.
///
/// `last_offset_delta` is given apart from the records because a compacted batch keeps
/// covering its original offset range after its last records were removed; for a fresh batch
/// it is the last record's offset delta. Records must come in strictly increasing offset
/// delta order, each at most `last_offset_delta`. The batch's baseTimestamp is the first
/// record's timestamp and its maxTimestamp the largest ([`NO_TIMESTAMP`] for both when there
/// are no records: Kafka keeps empty batches to remember a producer's sequence). Timestamps
/// are create time; the batch is neither transactional nor control.
pub fn encode(
    base_offset: u64,
    last_offset_delta: u32,
    records: &[RecordInput],
    producer: Producer,
    compression: Compression,
) -> Result<Bytes, BatchError> {
    let base_timestamp = records
        .first()
        .map_or(NO_TIMESTAMP, |record| record.timestamp);
    let max_timestamp = records
        .iter()
        .map(|record| record.timestamp)
        .max()
        .unwrap_or(NO_TIMESTAMP);
    let fields = BatchFields {
        base_offset,
        last_offset_delta,
        base_timestamp,
        max_timestamp,
        producer,
        compression,
        attribute_flags: 0,
    };
    encode_batch(&fields, records)
}

/// Header fields of a batch to encode; batchLength, crc and recordsCount are derived.
pub(super) struct BatchFields {
    pub base_offset: u64,
    pub last_offset_delta: u32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer: Producer,
    pub compression: Compression,
    /// Attribute bits 3 and up; the compression bits come from `compression`.
    pub attribute_flags: i16,
}

pub(super) fn encode_batch(
    fields: &BatchFields,
    records: &[RecordInput],
) -> Result<Bytes, BatchError> {
    if i32::try_from(fields.last_offset_delta).is_err() {
        return Err(BatchError::LastOffsetDeltaOutOfRange {
            last_offset_delta: fields.last_offset_delta,
        });
    }
    check_offset_range(fields.base_offset, fields.last_offset_delta)?;
    let record_count = i32::try_from(records.len()).map_err(|_| BatchError::TooManyRecords {
        count: records.len(),
    })?;
    let plans = plan_records(fields, records)?;
    let section_len: usize = plans
        .iter()
        .map(|plan| record::encoded_len(plan.body_len))
        .sum();
    if section_len > RECORDS_BYTES_MAX {
        return Err(BatchError::RecordsTooLarge {
            bytes: section_len,
            limit: RECORDS_BYTES_MAX,
        });
    }
    let batch = match fields.compression {
        Compression::None => {
            let mut batch = BytesMut::with_capacity(HEADER_BYTES + section_len);
            put_header(&mut batch, fields, record_count, section_len);
            put_records(&mut batch, records, &plans);
            batch
        }
        compression => {
            let mut section = Vec::with_capacity(section_len);
            put_records(&mut section, records, &plans);
            let compressed = compression.compress(&section)?;
            let mut batch = BytesMut::with_capacity(HEADER_BYTES + compressed.len());
            put_header(&mut batch, fields, record_count, compressed.len());
            batch.put_slice(&compressed);
            batch
        }
    };
    Ok(seal(batch))
}

/// What one record needs before it is written: its timestamp delta and body size.
struct RecordPlan {
    timestamp_delta: i64,
    body_len: usize,
}

/// Checks every record against the batch's fields and sizes it.
fn plan_records(
    fields: &BatchFields,
    records: &[RecordInput],
) -> Result<Vec<RecordPlan>, BatchError> {
    let mut plans = Vec::with_capacity(records.len());
    let mut previous: Option<u32> = None;
    for (index, record) in records.iter().enumerate() {
        if record.offset_delta > fields.last_offset_delta {
            return Err(BatchError::OffsetDeltaOutOfRange {
                index,
                offset_delta: record.offset_delta,
                last_offset_delta: fields.last_offset_delta,
            });
        }
        if let Some(previous) = previous.filter(|previous| record.offset_delta <= *previous) {
            return Err(BatchError::OffsetDeltasNotIncreasing {
                index,
                offset_delta: record.offset_delta,
                previous,
            });
        }
        previous = Some(record.offset_delta);
        let timestamp_delta = record.timestamp.checked_sub(fields.base_timestamp).ok_or(
            BatchError::TimestampOutOfRange {
                index,
                timestamp: record.timestamp,
                base_timestamp: fields.base_timestamp,
            },
        )?;
        plans.push(RecordPlan {
            timestamp_delta,
            body_len: record::encoded_body_len(record, timestamp_delta),
        });
    }
    Ok(plans)
}

fn put_records(buffer: &mut impl BufMut, records: &[RecordInput], plans: &[RecordPlan]) {
    for (record, plan) in records.iter().zip(plans) {
        record::encode(buffer, record, plan.timestamp_delta, plan.body_len);
    }
}

/// Writes the header with a zero crc; [`seal`] fills it in once the records follow.
fn put_header(batch: &mut BytesMut, fields: &BatchFields, record_count: i32, section_len: usize) {
    let batch_length = HEADER_BYTES - LOG_OVERHEAD + section_len;
    let attributes = fields.attribute_flags | fields.compression.attribute_code();
    batch.put_i64(fields.base_offset as i64);
    batch.put_i32(i32::try_from(batch_length).expect("bounded by RECORDS_BYTES_MAX"));
    batch.put_i32(PARTITION_LEADER_EPOCH_NONE);
    batch.put_i8(MAGIC);
    batch.put_u32(0);
    batch.put_i16(attributes);
    batch.put_i32(fields.last_offset_delta as i32);
    batch.put_i64(fields.base_timestamp);
    batch.put_i64(fields.max_timestamp);
    batch.put_i64(fields.producer.id);
    batch.put_i16(fields.producer.epoch);
    batch.put_i32(fields.producer.base_sequence);
    batch.put_i32(record_count);
    debug_assert_eq!(batch.len(), HEADER_BYTES);
}

fn seal(mut batch: BytesMut) -> Bytes {
    let crc = crc32c::crc32c(&batch[position::ATTRIBUTES..]);
    batch[position::CRC..position::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    batch.freeze()
}
