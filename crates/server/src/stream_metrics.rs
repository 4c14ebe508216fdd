//! Per-stream and per-group series on `/metrics`, read from the engine at each scrape, like
//! `resource_metrics` for queues and topics (and bounded by the same
//! `metrics.resource_series_max`: the streams with the most records produced first).
//!
//! - `wharf_streams`, `wharf_stream_partitions`: how many exist on the node;
//! - `wharf_stream_records{stream}`, `wharf_stream_bytes{stream}`: what each stores now;
//! - `wharf_stream_produced_total{stream}`: records produced since the server started;
//! - `wharf_stream_group_lag{stream,group}`: records a consumer group's committed offsets are
//!   behind the partitions' ends, summed over the partitions it committed.

use prometheus_client::{
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
};
use wharf_engine::{broker::StreamInfo, Engine};

type Encoded = Result<(), std::fmt::Error>;

/// Encodes the stream families; returns how many streams were left without series.
pub fn encode_streams(
    encoder: &mut DescriptorEncoder,
    engine: &Engine,
    max: usize,
) -> Result<usize, std::fmt::Error> {
    let mut streams = engine.list_streams();
    let partitions: usize = streams.iter().map(|s| s.partitions.len()).sum();
    for (name, help, count) in [
        ("wharf_streams", "Streams", streams.len()),
        (
            "wharf_stream_partitions",
            "Stream partitions, over every stream",
            partitions,
        ),
    ] {
        let metric = ConstGauge::new(count as i64);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    streams.sort_by(|a, b| {
        b.produced
            .cmp(&a.produced)
            .then_with(|| a.name.cmp(&b.name))
    });
    let omitted = streams.len().saturating_sub(max);
    streams.truncate(max);
    encode_sizes(encoder, &streams)?;
    encode_lags(encoder, engine, &streams, max)?;
    Ok(omitted)
}

fn encode_sizes(encoder: &mut DescriptorEncoder, streams: &[StreamInfo]) -> Encoded {
    type Read = fn(&StreamInfo) -> u64;
    let gauges: [(&str, &str, Read); 2] = [
        ("wharf_stream_records", "Records a stream stores now", |s| {
            s.partitions.iter().map(|p| p.records).sum()
        }),
        (
            "wharf_stream_bytes",
            "Bytes of record batches a stream stores now",
            |s| s.partitions.iter().map(|p| p.bytes).sum(),
        ),
    ];
    for (name, help, read) in gauges {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for stream in streams {
            let labels = [("stream", stream.name.as_str())];
            ConstGauge::new(read(stream) as i64).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "wharf_stream_produced",
        "Records produced to a stream since the server started",
        None,
        MetricType::Counter,
    )?;
    for stream in streams {
        let labels = [("stream", stream.name.as_str())];
        ConstCounter::new(stream.produced).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// One series per consumer group of `streams`, at most `max` in all.
fn encode_lags(
    encoder: &mut DescriptorEncoder,
    engine: &Engine,
    streams: &[StreamInfo],
    max: usize,
) -> Encoded {
    let mut family = encoder.encode_descriptor(
        "wharf_stream_group_lag",
        "Records a consumer group's committed offsets are behind the partitions' ends",
        None,
        MetricType::Gauge,
    )?;
    let mut shown = 0;
    for stream in streams {
        // A stream deleted since the listing has no groups any more.
        let groups = engine.list_groups(&stream.name).unwrap_or_default();
        for group in groups {
            if shown == max {
                return Ok(());
            }
            shown += 1;
            let labels = [
                ("stream", stream.name.as_str()),
                ("group", group.name.as_str()),
            ];
            ConstGauge::new(group.lag as i64).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
