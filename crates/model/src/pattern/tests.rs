//! Spec examples per syntax, parse errors, and property tests of the trie and
//! `Pattern::matches` against a direct recursive reference matcher.

use super::*;
use proptest::prelude::*;
use std::collections::BTreeSet;

/// The reference: a straight transcription of the rules, exponential in the worst case and
/// only fed small inputs.
fn reference_matches(segments: &[Segment], words: &[&str]) -> bool {
    if starts_reserved(words) && starts_with_wildcard(segments) {
        return false;
    }
    reference_matches_from(segments, words)
}

fn reference_matches_from(segments: &[Segment], words: &[&str]) -> bool {
    match segments.split_first() {
        None => words.is_empty(),
        Some((Segment::Literal(literal), rest)) => {
            words.first() == Some(&literal.as_str()) && reference_matches_from(rest, &words[1..])
        }
        Some((Segment::One, rest)) => {
            !words.is_empty() && reference_matches_from(rest, &words[1..])
        }
        Some((Segment::Many, rest)) => {
            (0..=words.len()).any(|k| reference_matches_from(rest, &words[k..]))
        }
    }
}

fn key(text: &str, syntax: Syntax) -> Vec<&str> {
    let mut words = Vec::new();
    syntax.split_key(text, &mut words).expect("valid key");
    words
}

/// Checks `pattern` against each key with `Pattern::matches`, the trie and the reference.
fn assert_matching(syntax: Syntax, pattern: &str, matching: &[&str], not_matching: &[&str]) {
    let parsed = Pattern::parse(pattern, syntax).expect("valid pattern");
    let mut trie = Trie::new();
    trie.insert(&parsed, 0);
    for (keys, expected) in [(matching, true), (not_matching, false)] {
        for text in keys {
            let words = key(text, syntax);
            let mut out = Vec::new();
            trie.matches(&words, &mut out);
            assert_eq!(
                parsed.matches(&words),
                expected,
                "{syntax} {pattern:?} vs {text:?}"
            );
            assert_eq!(
                !out.is_empty(),
                expected,
                "trie: {syntax} {pattern:?} vs {text:?}"
            );
            assert_eq!(
                reference_matches(parsed.segments(), &words),
                expected,
                "reference: {pattern:?} vs {text:?}"
            );
        }
    }
}

#[test]
fn amqp_topic_tutorial_examples() {
    // RabbitMQ tutorial 5 (topic exchange): Q1 `*.orange.*`, Q2 `*.*.rabbit` and `lazy.#`.
    let amqp = Syntax::Amqp;
    assert_matching(
        amqp,
        "*.orange.*",
        &[
            "quick.orange.rabbit",
            "lazy.orange.elephant",
            "quick.orange.fox",
        ],
        &[
            "quick.brown.fox",
            "orange",
            "quick.orange.male.rabbit",
            "lazy.brown.fox",
        ],
    );
    assert_matching(
        amqp,
        "*.*.rabbit",
        &["quick.orange.rabbit", "lazy.pink.rabbit"],
        &["quick.orange.male.rabbit"],
    );
    assert_matching(
        amqp,
        "lazy.#",
        &[
            "lazy",
            "lazy.orange.elephant",
            "lazy.pink.rabbit",
            "lazy.orange.male.rabbit",
        ],
        &["quick.brown.fox", "lazyx", ""],
    );
}

#[test]
fn amqp_hash_matches_every_key_including_the_empty_one() {
    assert_matching(
        Syntax::Amqp,
        "#",
        &["", "a", "a.b.c", "a..b", "."],
        &["$SYS.a"],
    );
    assert_matching(Syntax::Amqp, "", &[""], &["a", "."]);
    assert_matching(
        Syntax::Amqp,
        "a.#.b",
        &["a.b", "a.x.b", "a.x.y.b"],
        &["a", "b", "a.b.c"],
    );
    assert_matching(Syntax::Amqp, "a..b", &["a..b"], &["a.b", "a.x.b"]);
    assert_matching(Syntax::Amqp, "a.*", &["a.", "a.b"], &["a", "a.b.c"]);
}

#[test]
fn amqp_word_with_wildcard_characters_is_literal() {
    assert_matching(Syntax::Amqp, "a*.#x", &["a*.#x"], &["ab.cx", "a*.x"]);
}

#[test]
fn mqtt_spec_examples() {
    // MQTT 5 §4.7.1.2 and §4.7.1.3, non-normative examples.
    let mqtt = Syntax::Mqtt;
    assert_matching(
        mqtt,
        "sport/tennis/player1/#",
        &[
            "sport/tennis/player1",
            "sport/tennis/player1/ranking",
            "sport/tennis/player1/score/wimbledon",
        ],
        &["sport/tennis/player2", "sport/tennis"],
    );
    assert_matching(
        mqtt,
        "sport/#",
        &["sport", "sport/", "sport/tennis"],
        &["sports", "/sport"],
    );
    assert_matching(
        mqtt,
        "sport/tennis/+",
        &[
            "sport/tennis/player1",
            "sport/tennis/player2",
            "sport/tennis/",
        ],
        &["sport/tennis/player1/ranking", "sport/tennis"],
    );
    assert_matching(mqtt, "sport/+", &["sport/"], &["sport"]);
    assert_matching(mqtt, "+/+", &["/finance"], &["finance"]);
    assert_matching(mqtt, "/+", &["/finance"], &["finance", "x/finance"]);
    assert_matching(mqtt, "+", &["finance"], &["/finance"]);
    assert_matching(
        mqtt,
        "+/tennis/#",
        &["sport/tennis", "sport/tennis/x/y"],
        &["sport/golf"],
    );
    assert_matching(mqtt, "#", &["a", "/", "a/b/c"], &[]);
}

#[test]
fn mqtt_wildcards_at_first_level_skip_dollar_topics() {
    // MQTT 5 §4.7.2 [MQTT-4.7.2-1].
    let mqtt = Syntax::Mqtt;
    assert_matching(mqtt, "#", &["SYS/x"], &["$SYS/monitor/Clients", "$SYS"]);
    assert_matching(
        mqtt,
        "+/monitor/Clients",
        &["a/monitor/Clients"],
        &["$SYS/monitor/Clients"],
    );
    assert_matching(
        mqtt,
        "$SYS/#",
        &["$SYS/monitor/Clients", "$SYS"],
        &["SYS/x"],
    );
    assert_matching(mqtt, "$SYS/monitor/+", &["$SYS/monitor/Clients"], &[]);
    assert_matching(mqtt, "a/+", &["a/$b"], &[]);
    // The rule follows the first segment in every syntax: one engine, one reserved namespace.
    assert_matching(Syntax::Nats, ">", &["SYS.x"], &["$SYS.x"]);
    assert_matching(Syntax::Amqp, "#.a", &["a", "x.a"], &["$x.a", "$a"]);
}

#[test]
fn nats_subject_examples() {
    // NATS docs, "Subject-Based Messaging": wildcards.
    let nats = Syntax::Nats;
    assert_matching(
        nats,
        "foo.*",
        &["foo.bar", "foo.baz"],
        &["foo", "foo.bar.baz"],
    );
    assert_matching(
        nats,
        "foo.>",
        &["foo.bar", "foo.bar.baz"],
        &["foo", "bar.foo"],
    );
    assert_matching(
        nats,
        "*.*.east.>",
        &["time.us.east.atlanta", "time.eu.east.x.y"],
        &["time.us.east"],
    );
    assert_matching(nats, ">", &["a", "a.b"], &[]);
    assert_matching(nats, "foo*.>x", &["foo*.>x"], &["foo.x"]);
}

#[test]
fn nats_greater_than_is_one_then_many() {
    let nats = Pattern::parse("foo.>", Syntax::Nats).unwrap();
    assert_eq!(
        nats.segments(),
        Pattern::parse("foo.*.#", Syntax::Amqp).unwrap().segments()
    );
    assert_eq!(nats.to_text(Syntax::Amqp).unwrap(), "foo.*.#");
    assert_eq!(nats.to_text(Syntax::Mqtt).unwrap(), "foo/+/#");
    let amqp = Pattern::parse("foo.#", Syntax::Amqp).unwrap();
    assert_eq!(
        amqp.to_text(Syntax::Nats),
        Err(PatternError::NotExpressible {
            syntax: Syntax::Nats
        })
    );
}

#[test]
fn to_text_refuses_what_a_syntax_cannot_say() {
    let cases = [
        ("a.#.b", Syntax::Amqp, Syntax::Mqtt),
        ("a/b.c", Syntax::Mqtt, Syntax::Nats),
        ("a..b", Syntax::Amqp, Syntax::Nats),
        ("a.b/c", Syntax::Amqp, Syntax::Mqtt),
        ("a+", Syntax::Amqp, Syntax::Mqtt),
    ];
    for (text, from, to) in cases {
        let pattern = Pattern::parse(text, from).unwrap();
        assert_eq!(
            pattern.to_text(to),
            Err(PatternError::NotExpressible { syntax: to }),
            "{text:?}"
        );
    }
}

#[test]
fn parse_errors_per_syntax() {
    use PatternError::*;
    let (amqp, mqtt, nats) = (Syntax::Amqp, Syntax::Mqtt, Syntax::Nats);
    let cases = [
        ("", mqtt, Empty { syntax: mqtt }),
        ("", nats, Empty { syntax: nats }),
        (
            "sport/tennis#",
            mqtt,
            WildcardInWord {
                syntax: mqtt,
                level: 1,
            },
        ),
        (
            "sport+",
            mqtt,
            WildcardInWord {
                syntax: mqtt,
                level: 0,
            },
        ),
        (
            "sport/tennis/#/ranking",
            mqtt,
            ManyNotLast {
                syntax: mqtt,
                level: 2,
            },
        ),
        (
            "#/a",
            mqtt,
            ManyNotLast {
                syntax: mqtt,
                level: 0,
            },
        ),
        (
            "a/\0",
            mqtt,
            InvalidCharacter {
                syntax: mqtt,
                character: '\0',
                position: 2,
            },
        ),
        (
            "foo.>.bar",
            nats,
            ManyNotLast {
                syntax: nats,
                level: 1,
            },
        ),
        (
            "foo..bar",
            nats,
            EmptyWord {
                syntax: nats,
                level: 1,
            },
        ),
        (
            ".foo",
            nats,
            EmptyWord {
                syntax: nats,
                level: 0,
            },
        ),
        (
            "foo.",
            nats,
            EmptyWord {
                syntax: nats,
                level: 1,
            },
        ),
        (
            "foo bar",
            nats,
            InvalidCharacter {
                syntax: nats,
                character: ' ',
                position: 3,
            },
        ),
    ];
    for (text, syntax, error) in cases {
        assert_eq!(
            Pattern::parse(text, syntax),
            Err(error),
            "{syntax} {text:?}"
        );
    }
    let long = "a".repeat(PATTERN_BYTES_MAX + 1);
    assert_eq!(
        Pattern::parse(&long, amqp),
        Err(TooLong {
            length: PATTERN_BYTES_MAX + 1
        })
    );
    let deep = vec!["a"; PATTERN_LEVELS_MAX + 1].join("/");
    assert_eq!(
        Pattern::parse(&deep, mqtt),
        Err(TooManyLevels {
            levels: PATTERN_LEVELS_MAX + 1
        })
    );
    let deepest = vec!["a"; PATTERN_LEVELS_MAX].join(".");
    assert!(Pattern::parse(&deepest, amqp).is_ok());
}

#[test]
fn split_key_rejects_wildcards_where_the_protocol_does() {
    let mut words = vec!["stale"];
    assert_eq!(Syntax::Amqp.split_key("", &mut words), Ok(()));
    assert!(words.is_empty());
    assert_eq!(Syntax::Amqp.split_key("a.*.#", &mut words), Ok(()));
    assert_eq!(words, ["a", "*", "#"]);
    // MQTT 5 [MQTT-4.7.0-1]: no wildcard characters in a topic name.
    let wildcard_in_key = |syntax, level| Err(PatternError::WildcardInKey { syntax, level });
    assert_eq!(
        Syntax::Mqtt.split_key("a/b+", &mut words),
        wildcard_in_key(Syntax::Mqtt, 1)
    );
    assert_eq!(
        Syntax::Mqtt.split_key("#", &mut words),
        wildcard_in_key(Syntax::Mqtt, 0)
    );
    assert_eq!(
        Syntax::Nats.split_key("a.>", &mut words),
        wildcard_in_key(Syntax::Nats, 1)
    );
    assert_eq!(Syntax::Nats.split_key("a.b*", &mut words), Ok(()));
    assert_eq!(
        Syntax::Nats.split_key("a..b", &mut words),
        Err(PatternError::EmptyWord {
            syntax: Syntax::Nats,
            level: 1
        })
    );
    assert_eq!(
        Syntax::Mqtt.split_key("", &mut words),
        Err(PatternError::Empty {
            syntax: Syntax::Mqtt
        })
    );
}

#[test]
fn syntax_names_parse_print_and_serialize_lowercase() {
    for syntax in [Syntax::Amqp, Syntax::Mqtt, Syntax::Nats] {
        assert_eq!(syntax.to_string().parse::<Syntax>(), Ok(syntax));
        let json = serde_json::to_string(&syntax).unwrap();
        assert_eq!(json, format!("\"{syntax}\""));
        assert_eq!(serde_json::from_str::<Syntax>(&json).unwrap(), syntax);
    }
    assert_eq!(Syntax::default(), Syntax::Amqp);
    assert_eq!(
        "AMQP".parse::<Syntax>(),
        Err(PatternError::UnknownSyntax {
            name: "AMQP".into()
        })
    );
}

#[test]
fn trie_reports_an_entry_once_however_many_paths_reach_it() {
    let mut trie = Trie::new();
    for (text, value) in [
        ("a.#.#", 1),
        ("#.a.#", 2),
        ("#.#.#.#.a", 3),
        ("#", 4),
        ("a.b", 5),
    ] {
        assert!(trie.insert(&Pattern::parse(text, Syntax::Amqp).unwrap(), value));
    }
    let mut out = Vec::new();
    trie.matches(&key("a.a.a.a", Syntax::Amqp), &mut out);
    out.sort();
    assert_eq!(out, [&1, &2, &3, &4]);
}

#[test]
fn trie_reports_a_value_once_per_matching_pattern() {
    // RabbitMQ delivers `lazy.pink.rabbit` once to Q2; that deduplication is the engine's.
    let mut trie = Trie::new();
    for text in ["*.*.rabbit", "lazy.#"] {
        trie.insert(&Pattern::parse(text, Syntax::Amqp).unwrap(), "q2");
    }
    let mut out = Vec::new();
    trie.matches(&key("lazy.pink.rabbit", Syntax::Amqp), &mut out);
    assert_eq!(out, [&"q2", &"q2"]);
}

#[test]
fn trie_insert_and_remove_are_idempotent_and_prune() {
    let mut trie = Trie::new();
    let pattern = Pattern::parse("a.*.#", Syntax::Amqp).unwrap();
    assert!(trie.insert(&pattern, 7));
    assert!(!trie.insert(&pattern, 7));
    assert_eq!(trie.len(), 1);
    assert!(!trie.remove(&pattern, &8));
    assert!(!trie.remove(&Pattern::parse("a.*", Syntax::Amqp).unwrap(), &7));
    assert!(trie.remove(&pattern, &7));
    assert!(!trie.remove(&pattern, &7));
    assert!(trie.is_empty());
    assert!(trie.is_pruned(), "empty nodes are dropped");
}

#[test]
fn pathological_many_chains_stay_linear() {
    let text = ["#"; PATTERN_LEVELS_MAX - 1].join(".") + ".a";
    let pattern = Pattern::parse(&text, Syntax::Amqp).unwrap();
    let key_text = ["b"; PATTERN_LEVELS_MAX].join(".");
    let words = key(&key_text, Syntax::Amqp);
    let mut trie = Trie::new();
    trie.insert(&pattern, ());
    let mut out = Vec::new();
    trie.matches(&words, &mut out);
    assert!(out.is_empty());
    assert!(!pattern.matches(&words));
    let mut ending_in_a = words.clone();
    *ending_in_a.last_mut().unwrap() = "a";
    trie.matches(&ending_in_a, &mut out);
    assert_eq!(out.len(), 1);
    assert!(pattern.matches(&ending_in_a));
}

/// Pattern texts that are valid in `syntax`, over a small alphabet so that matches happen.
fn pattern_text(syntax: Syntax) -> impl Strategy<Value = String> {
    let words: Vec<&'static str> = match syntax {
        Syntax::Amqp => vec!["a", "b", "$a", "", "*", "#", "#"],
        Syntax::Mqtt => vec!["a", "b", "$a", "", "+"],
        Syntax::Nats => vec!["a", "b", "$a", "*"],
    };
    let last: Vec<&'static str> = match syntax {
        Syntax::Amqp => words.clone(),
        Syntax::Mqtt => [words.as_slice(), &["#", "#"]].concat(),
        Syntax::Nats => [words.as_slice(), &[">", ">"]].concat(),
    };
    let minimum = usize::from(syntax != Syntax::Amqp);
    (
        prop::collection::vec(prop::sample::select(words), 0..5),
        prop::sample::select(last),
    )
        .prop_map(move |(mut levels, last)| {
            levels.push(last);
            levels.join(&syntax.separator().to_string())
        })
        .prop_filter("MQTT needs at least one character", move |text| {
            minimum == 0 || !text.is_empty()
        })
}

/// Routing keys valid in `syntax`.
fn key_text(syntax: Syntax) -> impl Strategy<Value = String> {
    let words: Vec<&'static str> = match syntax {
        Syntax::Amqp => vec!["a", "b", "$a", "", "*"],
        Syntax::Mqtt => vec!["a", "b", "$a", ""],
        Syntax::Nats => vec!["a", "b", "$a"],
    };
    let minimum = usize::from(syntax != Syntax::Amqp);
    prop::collection::vec(prop::sample::select(words), minimum..7)
        .prop_map(move |levels| levels.join(&syntax.separator().to_string()))
        .prop_filter("MQTT needs at least one character", move |text| {
            minimum == 0 || !text.is_empty()
        })
}

fn syntax_with_patterns_and_keys() -> impl Strategy<Value = (Syntax, Vec<String>, Vec<String>)> {
    prop::sample::select(vec![Syntax::Amqp, Syntax::Mqtt, Syntax::Nats]).prop_flat_map(|syntax| {
        (
            Just(syntax),
            prop::collection::vec(pattern_text(syntax), 0..24),
            prop::collection::vec(key_text(syntax), 1..12),
        )
    })
}

/// The ids of the (pattern, id) entries the trie reports, sorted.
fn trie_result(trie: &Trie<usize>, words: &[&str]) -> Vec<usize> {
    let mut out = Vec::new();
    trie.matches(words, &mut out);
    let mut ids: Vec<usize> = out.into_iter().copied().collect();
    ids.sort_unstable();
    ids
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn text_round_trips_through_pattern((syntax, texts, _) in syntax_with_patterns_and_keys()) {
        for text in texts {
            let pattern = Pattern::parse(&text, syntax).unwrap();
            prop_assert_eq!(pattern.to_text(syntax), Ok(text));
        }
    }

    #[test]
    fn trie_and_single_pattern_agree_with_reference((syntax, texts, keys) in syntax_with_patterns_and_keys()) {
        let patterns: Vec<Pattern> = texts.iter().map(|text| Pattern::parse(text, syntax).unwrap()).collect();
        let mut trie = Trie::new();
        for (id, pattern) in patterns.iter().enumerate() {
            prop_assert!(trie.insert(pattern, id));
        }
        prop_assert_eq!(trie.len(), patterns.len());
        for text in &keys {
            let words = key(text, syntax);
            let expected: Vec<usize> = (0..patterns.len())
                .filter(|&id| reference_matches(patterns[id].segments(), &words))
                .collect();
            for (id, pattern) in patterns.iter().enumerate() {
                prop_assert_eq!(pattern.matches(&words), expected.contains(&id), "{} vs {}", &texts[id], text);
            }
            prop_assert_eq!(trie_result(&trie, &words), expected, "key {}", text);
        }
    }

    #[test]
    fn insert_remove_sequences_match_a_set_of_entries(
        (syntax, texts, keys) in syntax_with_patterns_and_keys(),
        operations in prop::collection::vec((any::<bool>(), 0..24usize, 0..3usize), 0..64),
    ) {
        prop_assume!(!texts.is_empty());
        let patterns: Vec<Pattern> = texts.iter().map(|text| Pattern::parse(text, syntax).unwrap()).collect();
        let mut trie = Trie::new();
        let mut entries: BTreeSet<(usize, usize)> = BTreeSet::new();
        for (insert, index, value) in operations {
            let index = index % patterns.len();
            // One value per (pattern index, value) so equal pattern texts stay distinct entries.
            let id = index * 3 + value;
            if insert {
                prop_assert_eq!(trie.insert(&patterns[index], id), entries.insert((index, id)));
            } else {
                prop_assert_eq!(trie.remove(&patterns[index], &id), entries.remove(&(index, id)));
            }
            prop_assert_eq!(trie.len(), entries.len());
        }
        for text in &keys {
            let words = key(text, syntax);
            let expected: Vec<usize> = entries
                .iter()
                .filter(|(index, _)| reference_matches(patterns[*index].segments(), &words))
                .map(|&(_, id)| id)
                .collect();
            prop_assert_eq!(trie_result(&trie, &words), expected, "key {}", text);
        }
        for (index, id) in entries {
            prop_assert!(trie.remove(&patterns[index], &id));
        }
        prop_assert!(trie.is_empty());
        prop_assert!(trie.is_pruned());
    }
}
