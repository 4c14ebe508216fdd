//! The routing table of one topic: which destinations a message goes to.
//!
//! Topic-kind bindings live in two tries (one per key separator: `.` for AMQP and NATS
//! patterns, `/` for MQTT), so routing costs grow with the depth of the key and the wildcards
//! on its path, not with the number of bindings. Direct bindings sit in a map by key; fanout and
//! headers bindings are scanned (their cost is the number of bindings by definition).

use super::{BindingSpec, Destination, HeadersMode, RulesMode, TopicKind, TopicOptions};
use crate::error::{EngineError, Field, FieldProblem};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use wharf_model::{
    filter::{Evaluation, Filter},
    pattern::{Pattern, Syntax, Trie},
};

/// A binding compiled for matching.
#[derive(Debug)]
struct Compiled {
    spec: BindingSpec,
    pattern: Option<Pattern>,
    filter: Option<Filter>,
}

/// What one message matched: the destinations (each once) and the bindings that matched.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Route {
    pub destinations: BTreeSet<Destination>,
    pub bindings: Vec<String>,
    /// Sent to the alternate destination because nothing else matched.
    pub alternate: bool,
    /// Filter evaluations a cost limit stopped, each counted as no match (docs/filters.md,
    /// "Cost of one evaluation"); callers add them to the topic's statistics.
    pub filters_stopped: u64,
}

#[derive(Debug)]
pub struct Router {
    options: TopicOptions,
    rules: Vec<(Filter, Destination)>,
    bindings: BTreeMap<String, Compiled>,
    dotted: Trie<String>,
    slashed: Trie<String>,
    exact: HashMap<String, Vec<String>>,
    /// Bindings with a filter: with none (and no rules) routing never reads a body.
    filtered_bindings: usize,
}

impl Router {
    pub fn new(options: TopicOptions) -> Result<Router, EngineError> {
        let rules = compile_rules(&options)?;
        Ok(Router {
            options,
            rules,
            bindings: BTreeMap::new(),
            dotted: Trie::new(),
            slashed: Trie::new(),
            exact: HashMap::new(),
            filtered_bindings: 0,
        })
    }

    pub fn options(&self) -> &TopicOptions {
        &self.options
    }

    /// Replaces rules, alternate and retain; the kind is fixed once bindings exist.
    pub fn set_options(&mut self, options: TopicOptions) -> Result<(), EngineError> {
        if options.kind != self.options.kind && !self.bindings.is_empty() {
            let problem = FieldProblem::FixedWhileBound {
                from: self.options.kind,
                to: options.kind,
            };
            return Err(EngineError::invalid_field(Field::TopicKind, problem));
        }
        self.rules = compile_rules(&options)?;
        self.options = options;
        Ok(())
    }

    /// Checks a binding spec for this topic's kind without adding it.
    pub fn check(&self, spec: &BindingSpec) -> Result<(), EngineError> {
        self.compile(spec).map(|_| ())
    }

    /// Adds the binding `id`, replacing one of the same id: a topic log may restate a binding
    /// (a compaction copy beside its original), and replaying both must leave one.
    pub fn add(&mut self, id: String, spec: BindingSpec) -> Result<(), EngineError> {
        let compiled = self.compile(&spec)?;
        self.remove(&id);
        match (self.options.kind, &compiled.pattern) {
            (TopicKind::Topic, Some(pattern)) => {
                self.trie_mut(spec.syntax).insert(pattern, id.clone());
            }
            (TopicKind::Direct, _) => {
                self.exact
                    .entry(spec.pattern.clone())
                    .or_default()
                    .push(id.clone());
            }
            _ => {}
        }
        self.filtered_bindings += usize::from(compiled.filter.is_some());
        self.bindings.insert(id, compiled);
        Ok(())
    }

    pub fn remove(&mut self, id: &str) -> Option<BindingSpec> {
        let compiled = self.bindings.remove(id)?;
        self.filtered_bindings -= usize::from(compiled.filter.is_some());
        let id = id.to_string();
        if let Some(pattern) = &compiled.pattern {
            self.trie_mut(compiled.spec.syntax).remove(pattern, &id);
        }
        if let Some(ids) = self.exact.get_mut(&compiled.spec.pattern) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                self.exact.remove(&compiled.spec.pattern);
            }
        }
        Some(compiled.spec)
    }

    /// Binding `id`'s spec.
    pub fn binding(&self, id: &str) -> Option<&BindingSpec> {
        self.bindings.get(id).map(|compiled| &compiled.spec)
    }

    pub fn bindings(&self) -> impl Iterator<Item = (&String, &BindingSpec)> {
        self.bindings.iter().map(|(id, c)| (id, &c.spec))
    }

    /// Bindings with ids after `after` (from the first when `None`), in id order: a walk over
    /// many bindings that takes them a batch at a time.
    pub fn bindings_after<'a>(
        &'a self,
        after: Option<&str>,
    ) -> impl Iterator<Item = (&'a String, &'a BindingSpec)> {
        let start = match after {
            Some(id) => std::ops::Bound::Excluded(id),
            None => std::ops::Bound::Unbounded,
        };
        self.bindings
            .range::<str, _>((start, std::ops::Bound::Unbounded))
            .map(|(id, c)| (id, &c.spec))
    }

    pub fn len(&self) -> usize {
        self.bindings.len()
    }

    /// Whether [`Router::route`] may look at a message's body (any filter to evaluate). When
    /// not, callers pass `None` and skip parsing it.
    pub fn reads_body(&self) -> bool {
        self.filtered_bindings > 0 || !self.rules.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    /// Where a message with this key, headers and (JSON) body goes.
    pub fn route(
        &self,
        key: &str,
        headers: &BTreeMap<String, String>,
        body: Option<&serde_json::Value>,
    ) -> Route {
        let mut route = Route::default();
        for id in self.candidates(key) {
            let Some(binding) = self.bindings.get(id) else {
                continue;
            };
            let evaluation = binding_matches(binding, headers, body);
            route.filters_stopped += u64::from(evaluation.stopped_by.is_some());
            if evaluation.matched {
                route.destinations.insert(binding.spec.destination.clone());
                route.bindings.push(id.clone());
            }
        }
        for (filter, destination) in &self.rules {
            let evaluation = filter.evaluate(headers, body);
            route.filters_stopped += u64::from(evaluation.stopped_by.is_some());
            if evaluation.matched {
                route.destinations.insert(destination.clone());
                if self.options.rules_mode == RulesMode::First {
                    break;
                }
            }
        }
        if route.destinations.is_empty() {
            if let Some(alternate) = &self.options.alternate {
                route.destinations.insert(alternate.clone());
                route.alternate = true;
            }
        }
        route
    }

    /// Bindings whose key part may match; filters and headers are checked by the caller.
    fn candidates<'a>(&'a self, key: &str) -> Vec<&'a String> {
        match self.options.kind {
            TopicKind::Topic => {
                let mut out = Vec::new();
                let mut words = Vec::new();
                for (syntax, trie) in [(Syntax::Amqp, &self.dotted), (Syntax::Mqtt, &self.slashed)]
                {
                    if !trie.is_empty() && syntax.split_key(key, &mut words).is_ok() {
                        trie.matches(&words, &mut out);
                    }
                }
                out
            }
            TopicKind::Direct => self
                .exact
                .get(key)
                .map(|ids| ids.iter().collect())
                .unwrap_or_default(),
            TopicKind::Fanout | TopicKind::Headers => self.bindings.keys().collect(),
        }
    }

    fn trie_mut(&mut self, syntax: Syntax) -> &mut Trie<String> {
        match syntax {
            Syntax::Amqp | Syntax::Nats => &mut self.dotted,
            Syntax::Mqtt => &mut self.slashed,
        }
    }

    fn compile(&self, spec: &BindingSpec) -> Result<Compiled, EngineError> {
        let pattern = match self.options.kind {
            TopicKind::Topic => Some(Pattern::parse(&spec.pattern, spec.syntax).map_err(
                |source| {
                    EngineError::invalid_field(
                        Field::Pattern,
                        FieldProblem::InvalidPattern { source },
                    )
                },
            )?),
            _ => None,
        };
        if self.options.kind == TopicKind::Headers
            && spec.headers.is_none()
            && spec.filter.is_none()
        {
            let problem = FieldProblem::Required {
                unless: Some(Field::Filter),
            };
            return Err(EngineError::invalid_field(Field::Headers, problem));
        }
        let filter = spec
            .filter
            .as_deref()
            .map(Filter::parse)
            .transpose()
            .map_err(|source| {
                EngineError::invalid_field(Field::Filter, FieldProblem::InvalidFilter { source })
            })?;
        Ok(Compiled {
            spec: spec.clone(),
            pattern,
            filter,
        })
    }
}

/// `spec` with its filter in canonical form, the form APIs show back (docs/filters.md); a
/// filter that does not parse is refused as the router refuses it.
pub fn canonical_spec(mut spec: BindingSpec) -> Result<BindingSpec, EngineError> {
    if let Some(text) = &spec.filter {
        let filter = Filter::parse(text).map_err(|source| {
            EngineError::invalid_field(Field::Filter, FieldProblem::InvalidFilter { source })
        })?;
        spec.filter = Some(filter.to_string());
    }
    Ok(spec)
}

/// `options` with every rule's filter in canonical form.
pub fn canonical_options(mut options: TopicOptions) -> Result<TopicOptions, EngineError> {
    for (index, rule) in options.rules.iter_mut().enumerate() {
        let filter = Filter::parse(&rule.filter).map_err(|source| {
            EngineError::invalid_field(
                Field::RuleFilter { index },
                FieldProblem::InvalidFilter { source },
            )
        })?;
        rule.filter = filter.to_string();
    }
    Ok(options)
}

/// The headers test first; the filter runs only when it passes.
fn binding_matches(
    binding: &Compiled,
    headers: &BTreeMap<String, String>,
    body: Option<&serde_json::Value>,
) -> Evaluation {
    let headers_pass = binding.spec.headers.as_ref().is_none_or(|wanted| {
        let mut checks = wanted
            .values
            .iter()
            .map(|(name, value)| headers.get(name) == Some(value));
        match wanted.mode {
            HeadersMode::All => checks.all(|ok| ok),
            HeadersMode::Any => checks.any(|ok| ok),
        }
    });
    match &binding.filter {
        Some(filter) if headers_pass => filter.evaluate(headers, body),
        _ => Evaluation {
            matched: headers_pass,
            stopped_by: None,
        },
    }
}

fn compile_rules(options: &TopicOptions) -> Result<Vec<(Filter, Destination)>, EngineError> {
    options
        .rules
        .iter()
        .enumerate()
        .map(|(index, rule)| {
            Filter::parse(&rule.filter)
                .map(|filter| (filter, rule.destination.clone()))
                .map_err(|source| {
                    EngineError::invalid_field(
                        Field::RuleFilter { index },
                        FieldProblem::InvalidFilter { source },
                    )
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic::{HeadersMatch, RuleSpec};
    use serde_json::json;
    use wharf_model::filter::{FILTER_EVALUATION_COST_MAX, FILTER_MATCH_TEXT_BYTES_MAX};

    fn queue(name: &str) -> Destination {
        Destination::Queue(name.into())
    }

    fn binding(pattern: &str, syntax: Syntax, to: &str) -> BindingSpec {
        BindingSpec {
            pattern: pattern.into(),
            syntax,
            filter: None,
            headers: None,
            destination: queue(to),
        }
    }

    fn names(route: &Route) -> Vec<String> {
        route
            .destinations
            .iter()
            .map(|d| d.name().to_string())
            .collect()
    }

    fn router(kind: TopicKind) -> Router {
        Router::new(TopicOptions {
            kind,
            ..TopicOptions::default()
        })
        .unwrap()
    }

    #[test]
    fn topic_kind_matches_wildcards_of_every_syntax() {
        let mut router = router(TopicKind::Topic);
        router
            .add("1".into(), binding("orders.*.created", Syntax::Amqp, "a"))
            .unwrap();
        router
            .add("2".into(), binding("orders/#", Syntax::Mqtt, "b"))
            .unwrap();
        router
            .add("3".into(), binding("orders.>", Syntax::Nats, "c"))
            .unwrap();
        router
            .add("4".into(), binding("payments.#", Syntax::Amqp, "d"))
            .unwrap();
        let none = BTreeMap::new();
        assert_eq!(
            names(&router.route("orders.eu.created", &none, None)),
            ["a", "c"]
        );
        assert_eq!(names(&router.route("orders/eu", &none, None)), ["b"]);
        assert!(router
            .route("shipping.eu", &none, None)
            .destinations
            .is_empty());
        router.remove("1");
        assert_eq!(
            names(&router.route("orders.eu.created", &none, None)),
            ["c"]
        );
    }

    /// Replaying a compacted log adds a binding again from its copy: one binding remains, and
    /// removing it leaves none.
    #[test]
    fn adding_a_binding_twice_keeps_one() {
        for kind in [TopicKind::Topic, TopicKind::Direct, TopicKind::Fanout] {
            let mut router = router(kind);
            let mut spec = binding("orders.eu", Syntax::Amqp, "a");
            spec.filter = Some("amount > 1".into());
            router.add("1".into(), spec.clone()).unwrap();
            router.add("1".into(), spec).unwrap();
            let none = BTreeMap::new();
            let body = json!({"amount": 5});
            let route = router.route("orders.eu", &none, Some(&body));
            assert_eq!(route.bindings, ["1"], "{kind:?}");
            assert_eq!(router.len(), 1);
            router.remove("1");
            assert!(!router.reads_body(), "{kind:?}");
            let route = router.route("orders.eu", &none, Some(&body));
            assert!(route.bindings.is_empty(), "{kind:?}");
        }
    }

    #[test]
    fn filters_narrow_bindings_and_destinations_are_counted_once() {
        let mut router = router(TopicKind::Topic);
        let mut big = binding("orders.#", Syntax::Amqp, "big");
        big.filter = Some("amount > 1000".into());
        router.add("1".into(), big).unwrap();
        router
            .add("2".into(), binding("orders.*", Syntax::Amqp, "all"))
            .unwrap();
        router
            .add("3".into(), binding("#", Syntax::Amqp, "all"))
            .unwrap();
        let none = BTreeMap::new();
        let large = json!({"amount": 5000});
        let small = json!({"amount": 5});
        assert_eq!(
            names(&router.route("orders.new", &none, Some(&large))),
            ["all", "big"]
        );
        assert_eq!(
            names(&router.route("orders.new", &none, Some(&small))),
            ["all"]
        );
    }

    #[test]
    fn filters_stopped_by_a_limit_fall_to_the_alternate_and_are_counted() {
        let options = TopicOptions {
            rules: vec![RuleSpec {
                filter: "text contains 'x'".into(),
                destination: queue("rule"),
            }],
            alternate: Some(queue("lost")),
            ..TopicOptions::default()
        };
        let mut router = Router::new(options).unwrap();
        let mut filtered = binding("orders.#", Syntax::Amqp, "filtered");
        filtered.filter = Some("not text matches 'x'".into());
        router.add("1".into(), filtered).unwrap();
        let none = BTreeMap::new();

        // Past both the text cap of `matches` and the budget of `contains`.
        let text = "a".repeat(FILTER_EVALUATION_COST_MAX + FILTER_MATCH_TEXT_BYTES_MAX);
        let route = router.route("orders.new", &none, Some(&json!({ "text": text })));
        assert_eq!(names(&route), ["lost"]);
        assert_eq!(route.filters_stopped, 2);

        let route = router.route("orders.new", &none, Some(&json!({ "text": "x" })));
        assert_eq!(names(&route), ["rule"]);
        assert_eq!(route.filters_stopped, 0);
    }

    #[test]
    fn routing_reads_bodies_only_while_a_filter_exists() {
        let mut router = router(TopicKind::Topic);
        router
            .add("1".into(), binding("a.*", Syntax::Amqp, "q"))
            .unwrap();
        assert!(!router.reads_body());
        let mut filtered = binding("a.#", Syntax::Amqp, "q");
        filtered.filter = Some("amount > 1".into());
        router.add("2".into(), filtered).unwrap();
        assert!(router.reads_body());
        router.remove("2");
        assert!(!router.reads_body());
    }

    #[test]
    fn direct_fanout_and_headers_kinds() {
        let none = BTreeMap::new();
        let mut direct = router(TopicKind::Direct);
        direct
            .add("1".into(), binding("exact.key", Syntax::Amqp, "a"))
            .unwrap();
        assert_eq!(names(&direct.route("exact.key", &none, None)), ["a"]);
        assert!(direct.route("exact.*", &none, None).destinations.is_empty());

        let mut fanout = router(TopicKind::Fanout);
        fanout
            .add("1".into(), binding("", Syntax::Amqp, "a"))
            .unwrap();
        fanout
            .add("2".into(), binding("ignored", Syntax::Amqp, "b"))
            .unwrap();
        assert_eq!(names(&fanout.route("anything", &none, None)), ["a", "b"]);

        let mut headers = router(TopicKind::Headers);
        let mut spec = binding("", Syntax::Amqp, "eu");
        spec.headers = Some(HeadersMatch {
            mode: HeadersMode::All,
            values: [("region".to_string(), "eu".to_string())].into(),
        });
        headers.add("1".into(), spec).unwrap();
        let eu: BTreeMap<_, _> = [("region".to_string(), "eu".to_string())].into();
        assert_eq!(names(&headers.route("", &eu, None)), ["eu"]);
        assert!(headers.route("", &none, None).destinations.is_empty());
        assert!(headers.check(&binding("", Syntax::Amqp, "x")).is_err());
    }

    #[test]
    fn rules_first_or_all_then_alternate() {
        let options = TopicOptions {
            rules: vec![
                RuleSpec {
                    filter: "kind == 'a'".into(),
                    destination: queue("rule-a"),
                },
                RuleSpec {
                    filter: "exists kind".into(),
                    destination: queue("rule-any"),
                },
            ],
            alternate: Some(queue("lost")),
            ..TopicOptions::default()
        };
        let none = BTreeMap::new();
        let mut router = Router::new(options.clone()).unwrap();
        let a = json!({"kind": "a"});
        assert_eq!(
            names(&router.route("k", &none, Some(&a))),
            ["rule-a", "rule-any"]
        );
        router
            .set_options(TopicOptions {
                rules_mode: RulesMode::First,
                ..options
            })
            .unwrap();
        assert_eq!(names(&router.route("k", &none, Some(&a))), ["rule-a"]);
        let route = router.route("k", &none, Some(&json!({})));
        assert!(route.alternate);
        assert_eq!(names(&route), ["lost"]);
    }

    #[test]
    fn bad_patterns_and_filters_name_their_field() {
        let mut router = router(TopicKind::Topic);
        let bad = binding("a.#.b#", Syntax::Mqtt, "x");
        assert!(matches!(
            router.add("1".into(), bad),
            Err(EngineError::InvalidField {
                field: Field::Pattern,
                problem: FieldProblem::InvalidPattern { .. }
            })
        ));
        let mut bad_filter = binding("a", Syntax::Amqp, "x");
        bad_filter.filter = Some("amount >".into());
        assert!(matches!(
            router.add("1".into(), bad_filter),
            Err(EngineError::InvalidField {
                field: Field::Filter,
                problem: FieldProblem::InvalidFilter { .. }
            })
        ));
    }
}
