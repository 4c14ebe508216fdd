//! Per-queue and per-topic series on `/metrics`, read from the engine at each scrape, plus the
//! node's totals and the process's resident memory.
//!
//! Nothing is kept between scrapes: the engine's statistics are the truth, so a deleted queue's
//! series vanish with it and an idle server does no work. Cardinality stays bounded by
//! `metrics.resource_series_max`: when a kind has more resources than that, the scrape shows
//! the resources named in `metrics.queues` / `metrics.topics` first, then the busiest (queues by
//! messages held, topics by messages published) up to the bound, and says how many it left out
//! in `wharf_metrics_resources_omitted{kind}`. The totals (`wharf_queues`, `wharf_topics`,
//! `wharf_messages{state}`, `wharf_node_events_total{event}`,
//! `wharf_node_topic_events_total{event}`) always cover every resource.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Unit,
};
use std::collections::HashSet;
use wharf_engine::{broker::TopicStats, queue::QueueStats, Engine};

/// Default of `metrics.resource_series_max`: a hundred queues' series are about 1,500 lines,
/// which a scrape every 15 s carries easily; more is an operator's choice.
pub const RESOURCE_SERIES_MAX_DEFAULT: usize = 100;

/// Which resources get series of their own.
#[derive(Debug, Clone, Default)]
pub struct SeriesChoice {
    /// Most resources of one kind with series; 0 turns per-resource series off.
    pub max: usize,
    /// Queues always shown (within `max`).
    pub queues: Vec<String>,
    /// Topics always shown (within `max`).
    pub topics: Vec<String>,
}

/// The collector registered with the server's registry.
#[derive(Debug)]
pub struct ResourceMetrics {
    engine: Engine,
    choice: SeriesChoice,
}

impl ResourceMetrics {
    pub fn new(engine: Engine, choice: SeriesChoice) -> ResourceMetrics {
        ResourceMetrics { engine, choice }
    }
}

type Encoded = Result<(), std::fmt::Error>;

/// A statistic: its metric name, help and how to read it.
type Stat<S> = (&'static str, &'static str, fn(&S) -> u64);

const QUEUE_GAUGES: [Stat<QueueStats>; 4] = [
    ("wharf_queue_ready", "Messages ready to deliver", |s| {
        s.ready
    }),
    (
        "wharf_queue_delayed",
        "Messages waiting for a due time",
        |s| s.delayed,
    ),
    (
        "wharf_queue_leased",
        "Messages delivered and not yet settled",
        |s| s.leased,
    ),
    (
        "wharf_queue_consumers",
        "Consumers attached, waiting long polls included",
        |s| s.consumers,
    ),
];

const QUEUE_COUNTERS: [Stat<QueueStats>; 9] = [
    (
        "wharf_queue_sent",
        "Messages accepted (duplicates excluded)",
        |s| s.counters.sent,
    ),
    (
        "wharf_queue_delivered",
        "Deliveries, redeliveries included",
        |s| s.counters.delivered,
    ),
    ("wharf_queue_acked", "Messages acknowledged", |s| {
        s.counters.acked
    }),
    ("wharf_queue_nacked", "Negative acknowledgements", |s| {
        s.counters.nacked
    }),
    ("wharf_queue_expired", "Messages whose TTL ran out", |s| {
        s.counters.expired
    }),
    (
        "wharf_queue_dead_lettered",
        "Messages moved to the dead-letter queue",
        |s| s.counters.dead_lettered,
    ),
    (
        "wharf_queue_dropped",
        "Messages discarded for want of a dead-letter queue",
        |s| s.counters.dropped,
    ),
    (
        "wharf_queue_redriven",
        "Dead letters moved back to this queue",
        |s| s.counters.redriven,
    ),
    ("wharf_queue_purged", "Messages removed by purges", |s| {
        s.counters.purged
    }),
];

const TOPIC_COUNTERS: [Stat<TopicStats>; 3] = [
    ("wharf_topic_published", "Messages published", |s| {
        s.published
    }),
    (
        "wharf_topic_routed",
        "Deliveries to destinations (one per destination)",
        |s| s.routed,
    ),
    (
        "wharf_topic_unroutable",
        "Messages that reached no destination",
        |s| s.unroutable,
    ),
];

const TOPIC_GAUGES: [Stat<TopicStats>; 2] = [
    ("wharf_topic_subscribers", "Live subscriptions", |s| {
        s.subscribers
    }),
    ("wharf_topic_bindings", "Bindings", |s| s.bindings),
];

impl Collector for ResourceMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Encoded {
        let queues: Vec<(String, QueueStats)> = (self.engine.list_queues().into_iter())
            .map(|info| (info.name, info.stats))
            .collect();
        let topics: Vec<(String, TopicStats)> = (self.engine.list_topics().into_iter())
            .map(|info| (info.name, info.stats))
            .collect();
        encode_totals(&mut encoder, &queues, &topics)?;
        let (queues, queues_omitted) = choose(queues, &self.choice.queues, self.choice.max, |s| {
            s.ready + s.delayed + s.leased
        });
        let (topics, topics_omitted) = choose(topics, &self.choice.topics, self.choice.max, |s| {
            s.published
        });
        let streams_omitted =
            crate::stream_metrics::encode_streams(&mut encoder, &self.engine, self.choice.max)?;
        crate::event_metrics::encode_event_store(&mut encoder, &self.engine, self.choice.max)?;
        let omitted = [
            ("queue", queues_omitted),
            ("topic", topics_omitted),
            ("stream", streams_omitted),
        ];
        let mut family = encoder.encode_descriptor(
            "wharf_metrics_resources_omitted",
            "Resources left without series of their own by metrics.resource_series_max",
            None,
            MetricType::Gauge,
        )?;
        for (kind, count) in omitted {
            ConstGauge::new(count as i64).encode(family.encode_family(&[("kind", kind)])?)?;
        }
        encode_stats(
            &mut encoder,
            "queue",
            &queues,
            &QUEUE_GAUGES,
            MetricType::Gauge,
        )?;
        encode_stats(
            &mut encoder,
            "queue",
            &queues,
            &QUEUE_COUNTERS,
            MetricType::Counter,
        )?;
        encode_stats(
            &mut encoder,
            "topic",
            &topics,
            &TOPIC_GAUGES,
            MetricType::Gauge,
        )?;
        encode_stats(
            &mut encoder,
            "topic",
            &topics,
            &TOPIC_COUNTERS,
            MetricType::Counter,
        )?;
        encode_oldest_ready(&mut encoder, &queues)
    }
}

fn encode_oldest_ready(
    encoder: &mut DescriptorEncoder,
    queues: &[(String, QueueStats)],
) -> Encoded {
    let mut family = encoder.encode_descriptor(
        "wharf_queue_oldest_ready_age",
        "Age of the oldest ready message (0 when none is ready)",
        Some(&Unit::Seconds),
        MetricType::Gauge,
    )?;
    for (queue, stats) in queues {
        let age = stats.oldest_ready_age_ms.unwrap_or(0) as f64 / 1000.0;
        ConstGauge::new(age).encode(family.encode_family(&[("queue", queue.as_str())])?)?;
    }
    Ok(())
}

/// One family per statistic in `stats`, one series per resource labelled `kind`.
fn encode_stats<S>(
    encoder: &mut DescriptorEncoder,
    kind: &str,
    resources: &[(String, S)],
    stats: &[Stat<S>],
    metric_type: MetricType,
) -> Encoded {
    for (name, help, read) in stats {
        let mut family = encoder.encode_descriptor(name, help, None, metric_type)?;
        for (resource, value) in resources {
            let labels = [(kind, resource.as_str())];
            let series = family.encode_family(&labels)?;
            match metric_type {
                MetricType::Counter => ConstCounter::new(read(value)).encode(series)?,
                _ => ConstGauge::new(read(value) as i64).encode(series)?,
            }
        }
    }
    Ok(())
}

/// The node's totals over every resource, and the process's memory.
fn encode_totals(
    encoder: &mut DescriptorEncoder,
    queues: &[(String, QueueStats)],
    topics: &[(String, TopicStats)],
) -> Encoded {
    let counts = [
        ("wharf_queues", "Queues", queues.len() as i64),
        ("wharf_topics", "Topics", topics.len() as i64),
    ];
    for (name, help, count) in counts {
        let metric = ConstGauge::new(count);
        metric.encode(encoder.encode_descriptor(name, help, None, metric.metric_type())?)?;
    }
    let sum = |read: fn(&QueueStats) -> u64| queues.iter().map(|(_, s)| read(s)).sum::<u64>();
    let mut family = encoder.encode_descriptor(
        "wharf_node_events",
        "Queue events since the server started, summed over every queue (a deleted queue's \
         counts leave the sum), by event",
        None,
        MetricType::Counter,
    )?;
    for (event, read) in QUEUE_COUNTERS
        .iter()
        .map(|(name, _, read)| (event_name(name), read))
    {
        ConstCounter::new(sum(*read)).encode(family.encode_family(&[("event", event)])?)?;
    }
    let states = [
        ("ready", sum(|s| s.ready)),
        ("delayed", sum(|s| s.delayed)),
        ("leased", sum(|s| s.leased)),
    ];
    let mut family = encoder.encode_descriptor(
        "wharf_messages",
        "Messages held by all queues, by state",
        None,
        MetricType::Gauge,
    )?;
    for (state, count) in states {
        ConstGauge::new(count as i64).encode(family.encode_family(&[("state", state)])?)?;
    }
    let mut family = encoder.encode_descriptor(
        "wharf_node_topic_events",
        "Topic events since the server started, summed over every topic, by event",
        None,
        MetricType::Counter,
    )?;
    for (name, _, read) in &TOPIC_COUNTERS {
        let total = topics.iter().map(|(_, s)| read(s)).sum::<u64>();
        let labels = [("event", event_name(name))];
        ConstCounter::new(total).encode(family.encode_family(&labels)?)?;
    }
    if let Some(resident) = resident_memory_bytes() {
        let metric = ConstGauge::new(resident as i64);
        metric.encode(encoder.encode_descriptor(
            "wharf_process_resident_memory",
            "Resident memory of the server process",
            Some(&Unit::Bytes),
            metric.metric_type(),
        )?)?;
    }
    Ok(())
}

/// The event a per-resource counter counts: `wharf_queue_dead_lettered` is `dead_lettered`.
fn event_name(metric: &'static str) -> &'static str {
    let event = metric.trim_start_matches("wharf_queue_");
    event.trim_start_matches("wharf_topic_")
}

/// Resident set size from `/proc/self/statm` (Linux); `None` elsewhere or when unreadable.
pub fn resident_memory_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // The kernel's page size; 4 KiB on every platform this runs on but a few arm64 kernels.
    // SAFETY: sysconf has no preconditions and only reads a constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok()?)
}

/// The resources that get series: all when they fit in `max`, else those `listed` first and
/// then the heaviest by `weight`, ties by name. Returns them by name and how many were left out.
fn choose<T>(
    mut items: Vec<(String, T)>,
    listed: &[String],
    max: usize,
    weight: impl Fn(&T) -> u64,
) -> (Vec<(String, T)>, usize) {
    let total = items.len();
    if total > max {
        let listed: HashSet<&str> = listed.iter().map(String::as_str).collect();
        items.sort_by(|(a_name, a), (b_name, b)| {
            let rank = |name: &str, stats: &T| (!listed.contains(name), u64::MAX - weight(stats));
            (rank(a_name, a).cmp(&rank(b_name, b))).then_with(|| a_name.cmp(b_name))
        });
        items.truncate(max);
    }
    items.sort_by(|(a, _), (b, _)| a.cmp(b));
    let kept = items.len();
    (items, total - kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn named(weights: &[u64]) -> Vec<(String, u64)> {
        (weights.iter().enumerate())
            .map(|(i, w)| (format!("q{i}"), *w))
            .collect()
    }

    #[test]
    fn all_fit_so_all_are_kept_by_name() {
        let (kept, omitted) = choose(named(&[5, 1, 9]), &[], 3, |w| *w);
        let names: Vec<_> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!((names, omitted), (vec!["q0", "q1", "q2"], 0));
    }

    #[test]
    fn listed_come_first_then_the_heaviest() {
        let (kept, omitted) = choose(named(&[5, 1, 9, 7]), &["q1".to_string()], 2, |w| *w);
        let names: Vec<_> = kept.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!((names, omitted), (vec!["q1", "q2"], 2));
    }

    #[test]
    fn zero_turns_series_off() {
        let (kept, omitted) = choose(named(&[5, 1]), &[], 0, |w| *w);
        assert_eq!((kept.len(), omitted), (0, 2));
    }

    proptest! {
        #[test]
        fn never_more_than_max_and_none_heavier_left_out(
            weights in prop::collection::vec(0u64..100, 0..40),
            max in 0usize..50,
        ) {
            let (kept, omitted) = choose(named(&weights), &[], max, |w| *w);
            prop_assert_eq!(kept.len(), weights.len().min(max));
            prop_assert_eq!(kept.len() + omitted, weights.len());
            let lightest_kept = kept.iter().map(|(_, w)| *w).min();
            let kept_names: HashSet<_> = kept.iter().map(|(n, _)| n.clone()).collect();
            for (name, weight) in named(&weights) {
                if !kept_names.contains(&name) {
                    prop_assert!(lightest_kept.is_none_or(|least| weight <= least));
                }
            }
        }
    }
}
