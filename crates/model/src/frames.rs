//! Message frames: the binary batch body (`application/vnd.wharf.batch`) that the HTTP door
//! takes and gives beside JSON, for clients that want speed.
//!
//! A batch is frames back to back, nothing before, between or after them:
//!
//! ```text
//! bytes  field
//!     4  meta_len   big-endian u32
//!     -  meta       a JSON object with the message's fields other than its body, or nothing
//!                   (meta_len 0) for none
//!     4  body_len   big-endian u32
//!     -  body       the body's bytes, as they are
//! ```
//!
//! A body crosses as it is, never escaped or base64-encoded; the metadata stays JSON, so every
//! field and every check is the JSON door's. This module is the pure codec: what the meta holds
//! is the door's business. Decoding never panics and never reads past its input.

use bytes::{BufMut, Bytes};

/// The media type of a batch of message frames.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.wharf.batch";

/// Bytes a frame adds to its meta and body: two lengths.
pub const FRAME_OVERHEAD_BYTES: usize = 8;

/// One message of a batch: its metadata (JSON text, possibly empty) and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub meta: Bytes,
    pub body: Bytes,
}

/// Why a batch does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("frame {index} is cut short at byte {at}: {needed} more bytes were announced than the body has")]
    Truncated {
        index: usize,
        at: usize,
        needed: usize,
    },
    #[error("the batch has more than {max} frames")]
    TooMany { max: usize },
}

/// Appends one frame to `out`.
///
/// # Panics
/// When `meta` or `body` is 4 GiB or more, which no caller can hold in a request.
pub fn encode_frame(out: &mut impl BufMut, meta: &[u8], body: &[u8]) {
    out.put_u32(u32::try_from(meta.len()).expect("a frame's meta is under 4 GiB"));
    out.put_slice(meta);
    out.put_u32(u32::try_from(body.len()).expect("a frame's body is under 4 GiB"));
    out.put_slice(body);
}

/// Appends one frame to `out` whose meta `write_meta` writes in place (no buffer of its own):
/// the meta's length is filled in after it.
///
/// # Panics
/// As [`encode_frame`].
pub fn encode_frame_with(out: &mut Vec<u8>, write_meta: impl FnOnce(&mut Vec<u8>), body: &[u8]) {
    let start = out.len();
    out.put_u32(0);
    write_meta(out);
    let meta_len = u32::try_from(out.len() - start - 4).expect("a frame's meta is under 4 GiB");
    out[start..start + 4].copy_from_slice(&meta_len.to_be_bytes());
    out.put_u32(u32::try_from(body.len()).expect("a frame's body is under 4 GiB"));
    out.put_slice(body);
}

/// Splits `batch` into its frames, at most `max` of them. Meta and body share `batch`'s
/// buffer: nothing is copied.
pub fn decode_frames(batch: &Bytes, max: usize) -> Result<Vec<Frame>, FrameError> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < batch.len() {
        if frames.len() == max {
            return Err(FrameError::TooMany { max });
        }
        let index = frames.len();
        let meta = take_sized(batch, &mut at, index)?;
        let body = take_sized(batch, &mut at, index)?;
        frames.push(Frame { meta, body });
    }
    Ok(frames)
}

/// Reads a length at `at`, then that many bytes; advances `at` past both.
fn take_sized(batch: &Bytes, at: &mut usize, index: usize) -> Result<Bytes, FrameError> {
    let truncated = |needed: usize| FrameError::Truncated {
        index,
        at: *at,
        needed,
    };
    let rest = batch.len() - *at;
    let Some(length) = batch.get(*at..*at + 4) else {
        return Err(truncated(4 - rest));
    };
    let length = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    let start = *at + 4;
    if batch.len() - start < length {
        return Err(truncated(length - (batch.len() - start)));
    }
    *at = start + length;
    Ok(batch.slice(start..start + length))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn batch_of(frames: &[(Vec<u8>, Vec<u8>)]) -> Bytes {
        let mut out = Vec::new();
        for (meta, body) in frames {
            encode_frame(&mut out, meta, body);
        }
        Bytes::from(out)
    }

    #[test]
    fn an_empty_batch_has_no_frames() {
        assert_eq!(decode_frames(&Bytes::new(), 10), Ok(Vec::new()));
    }

    #[test]
    fn a_frame_is_two_big_endian_lengths_around_meta_and_body() {
        let batch = batch_of(&[(b"{}".to_vec(), b"abc".to_vec())]);
        assert_eq!(&batch[..], b"\0\0\0\x02{}\0\0\0\x03abc");
        assert_eq!(FRAME_OVERHEAD_BYTES + 2 + 3, batch.len());
    }

    #[test]
    fn a_cut_short_frame_is_refused_with_its_index() {
        let batch = batch_of(&[(vec![], b"one".to_vec()), (vec![], b"two".to_vec())]);
        let cut = batch.slice(..batch.len() - 1);
        assert_eq!(
            decode_frames(&cut, 10),
            Err(FrameError::Truncated {
                index: 1,
                at: 15,
                needed: 1
            })
        );
        // Frame 0 is 11 bytes; two bytes of frame 1's first length follow.
        let half_a_length = batch.slice(..13);
        assert_eq!(
            decode_frames(&half_a_length, 10),
            Err(FrameError::Truncated {
                index: 1,
                at: 11,
                needed: 2
            })
        );
    }

    #[test]
    fn more_frames_than_allowed_are_refused() {
        let batch = batch_of(&[(vec![], vec![]), (vec![], vec![]), (vec![], vec![])]);
        assert_eq!(
            decode_frames(&batch, 2),
            Err(FrameError::TooMany { max: 2 })
        );
        assert_eq!(decode_frames(&batch, 3).map(|frames| frames.len()), Ok(3));
    }

    proptest! {
        #[test]
        fn frames_round_trip(frames in proptest::collection::vec(
            (proptest::collection::vec(any::<u8>(), 0..40), proptest::collection::vec(any::<u8>(), 0..300)),
            0..20,
        )) {
            let decoded = decode_frames(&batch_of(&frames), 20).expect("decodes");
            let decoded: Vec<_> = decoded.into_iter().map(|frame| (frame.meta.to_vec(), frame.body.to_vec())).collect();
            prop_assert_eq!(decoded, frames);
        }

        #[test]
        fn a_meta_written_in_place_makes_the_same_frame(
            meta in proptest::collection::vec(any::<u8>(), 0..300),
            body in proptest::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut in_place = vec![7u8];
            encode_frame_with(&mut in_place, |out| out.extend_from_slice(&meta), &body);
            let mut expected = vec![7u8];
            encode_frame(&mut expected, &meta, &body);
            prop_assert_eq!(in_place, expected);
        }

        #[test]
        fn any_bytes_decode_or_fail_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let batch = Bytes::from(bytes);
            if let Ok(frames) = decode_frames(&batch, 1000) {
                let total: usize = frames.iter().map(|frame| FRAME_OVERHEAD_BYTES + frame.meta.len() + frame.body.len()).sum();
                prop_assert_eq!(total, batch.len());
            }
        }
    }
}
