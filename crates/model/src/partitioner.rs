//! Which partition of a stream a keyed record goes to: Kafka's default partitioner.
//!
//! Kafka's Java producer hashes a record's key with its own murmur2 variant
//! (`org.apache.kafka.common.utils.Utils.murmur2`) and takes the positive hash modulo the
//! partition count (KIP-480 kept this for keyed records). Matching it bit for bit means a key
//! lands on the same partition whether a Kafka client or a Wharf door chose it, so per-key
//! order holds across doors and a topic migrated from Kafka keeps its key placement.

/// The seed Kafka's `Utils.murmur2` starts from.
const SEED: u32 = 0x9747_b28c;
/// murmur2's multiplier and shift (Austin Appleby's MurmurHash2).
const MULTIPLIER: u32 = 0x5bd1_e995;
const SHIFT: u32 = 24;

/// Kafka's `Utils.murmur2`: MurmurHash2 (32-bit) of `data` with seed `0x9747b28c`, reading
/// 4-byte little-endian words, returned as Java's signed `int`.
pub fn murmur2(data: &[u8]) -> i32 {
    // Java mixes the length in as an `int`; keys longer than 2 GiB cannot exist there.
    let mut hash = SEED ^ data.len() as u32;
    let mut words = data.chunks_exact(4);
    for word in &mut words {
        let mut k = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        k = k.wrapping_mul(MULTIPLIER);
        k ^= k >> SHIFT;
        k = k.wrapping_mul(MULTIPLIER);
        hash = hash.wrapping_mul(MULTIPLIER);
        hash ^= k;
    }
    // The 1-3 trailing bytes, as Java's fall-through switch mixes them: the multiply happens
    // once, after all of them, and only when there is a tail.
    let tail = words.remainder();
    if !tail.is_empty() {
        for (index, &byte) in tail.iter().enumerate() {
            hash ^= u32::from(byte) << (8 * index);
        }
        hash = hash.wrapping_mul(MULTIPLIER);
    }
    hash ^= hash >> 13;
    hash = hash.wrapping_mul(MULTIPLIER);
    hash ^= hash >> 15;
    hash as i32
}

/// The partition, in `0..partitions`, that Kafka's default partitioner picks for `key`:
/// `toPositive(murmur2(key)) % partitions`, where Java's `toPositive` clears the sign bit
/// (not `abs`, which would send `i32::MIN` below zero).
///
/// # Panics
/// If `partitions` is 0: a stream always has at least one partition.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    assert!(partitions > 0, "a stream has at least one partition");
    (murmur2(key) as u32 & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors (clients/.../common/utils/UtilsTest.java, `testMurmur2`).
    const KAFKA_VECTORS: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];

    #[test]
    fn murmur2_matches_kafka_utils_test() {
        for (key, expected) in KAFKA_VECTORS {
            assert_eq!(murmur2(key), expected, "{:?}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn murmur2_covers_every_tail_length() {
        // Kafka's vectors above have tails of 0, 2 and 3 bytes; these add 1-byte tails, with
        // and without a whole word before them (values that akka's Murmur2Spec took from
        // Kafka's implementation).
        assert_eq!(murmur2(b"1"), -1_993_445_489);
        assert_eq!(murmur2(b"12"), 126_087_238);
        assert_eq!(murmur2(b"123"), -267_702_483);
        assert_eq!(murmur2(b"1234"), -1_614_185_708);
        assert_eq!(murmur2(b"12345"), -1_188_365_604);
    }

    #[test]
    fn keys_go_to_kafkas_partitions() {
        // toPositive(hash) % partitions, worked out from the vectors above.
        assert_eq!(partition_for_key(b"21", 100), 40);
        assert_eq!(partition_for_key(b"foobar", 12), 6);
        assert_eq!(partition_for_key(b"foobar", 100), 66);
        assert_eq!(partition_for_key(b"abc", 6), 3);
        assert_eq!(partition_for_key(b"a-little-bit-long-string", 3), 2);
        assert_eq!(partition_for_key(b"a-little-bit-long-string", 12), 8);
        assert_eq!(
            partition_for_key(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 100),
            77
        );
    }

    #[test]
    fn one_partition_takes_every_key() {
        for (key, _) in KAFKA_VECTORS {
            assert_eq!(partition_for_key(key, 1), 0);
        }
    }

    proptest::proptest! {
        #[test]
        fn partitions_stay_in_range(key: Vec<u8>, partitions in 1u32..10_000) {
            proptest::prop_assert!(partition_for_key(&key, partitions) < partitions);
        }
    }
}
