//! Transports and doors.
