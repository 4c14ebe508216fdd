//! Streams: partitioned, append-only logs read by consumer groups at their own offsets.
//!
//! This module holds the pure state of a stream's consumer groups ([`group::Group`]): who is
//! in a group, which partitions each member reads, and in which generation. It leaves to the
//! stream runtime (added separately) the records, the committed offsets, the clock and the
//! timer that calls [`group::Group::expire`].

pub mod group;
