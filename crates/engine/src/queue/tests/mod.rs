//! Tests of the queue state: one per rule, and a model-based property test.

mod delivery;
mod lifecycle;
mod model;
mod support;
