//! The event store's series on `/metrics`, read from the engine at each scrape:
//!
//! - `wharf_event_streams`, `wharf_events`: streams ever written and events ever appended;
//! - `wharf_event_projection_lag_events{projection}`: positions of `$all` after a checkpointed
//!   projection's checkpoint;
//! - `wharf_event_projection_lag_ms{projection}`: how long ago the first event after its
//!   checkpoint was appended (0 when caught up), measured just before the scrape.
//!
//! Projections beyond `metrics.resource_series_max` get no series (by name order).

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{gauge::ConstGauge, MetricType},
};
use wharf_engine::{broker::eventstore::Projection, Engine};

pub fn encode_event_store(
    encoder: &mut DescriptorEncoder,
    engine: &Engine,
    max: usize,
) -> Result<(), std::fmt::Error> {
    let (streams, events) = engine.event_store_counts();
    for (name, help, count) in [
        (
            "wharf_event_streams",
            "Event streams ever written",
            streams as i64,
        ),
        (
            "wharf_events",
            "Events ever appended to the event store",
            events as i64,
        ),
    ] {
        let metric = ConstGauge::new(count);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    let projections = engine.projections(max);
    type Read = fn(&Projection) -> u64;
    let gauges: [(&str, &str, Read); 2] = [
        (
            "wharf_event_projection_lag_events",
            "Positions of $all after a checkpointed projection's checkpoint",
            |p| p.lag_events,
        ),
        (
            "wharf_event_projection_lag_ms",
            "How long ago the first event after a projection's checkpoint was appended",
            |p| p.lag_ms,
        ),
    ];
    for (name, help, read) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for projection in &projections {
            let labels = [("projection", projection.name.as_str())];
            ConstGauge::new(read(projection) as i64).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
