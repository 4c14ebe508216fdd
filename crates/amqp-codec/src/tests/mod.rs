//! Unit and property tests.
