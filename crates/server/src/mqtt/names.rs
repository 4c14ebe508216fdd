//! MQTT topic names and filters as Wharf routing keys and patterns.
//!
//! MQTT's level separator `/` is Wharf's word separator `.`, so that MQTT, AMQP and HTTP
//! clients meet on the same keys: MQTT `sensors/kitchen` is the key `sensors.kitchen`, and the
//! filter `sensors/+` the pattern `sensors.*` (`#` stays `#`; both match their parent level, as
//! MQTT's `#` does). A `.` inside an MQTT level becomes `/` in the key and back, so the mapping
//! is one to one: `v1.2/x` is `v1/2.x`. A level that is exactly `*` matches like `+` (a
//! deviation: AMQP has no way to say a literal `*` word).
//!
//! Shared subscriptions (`$share/{group}/{filter}`) name a group of competing consumers.

use std::fmt;

/// Why a topic name or filter is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameError {
    Empty,
    /// A wildcard in a topic name [MQTT-3.3.2-2].
    WildcardInName,
    /// `+` or `#` not alone in its level, or `#` not last [MQTT-4.7.1-1, -2].
    BadWildcard,
    /// `$share/` without a group or a filter, or a group with `+`, `#` or `/`.
    BadShare,
    NulCharacter,
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameError::Empty => "a topic name or filter must not be empty",
            NameError::WildcardInName => "a topic name must not contain + or #",
            NameError::BadWildcard => "a wildcard must fill its level (+) or be the last level (#)",
            NameError::BadShare => "a shared subscription is $share/{group}/{filter}",
            NameError::NulCharacter => "a topic must not contain the NUL character",
        })
    }
}

/// The routing key of MQTT topic name `name`.
pub fn key_of(name: &str) -> Result<String, NameError> {
    check_text(name)?;
    if name.contains(['+', '#']) {
        return Err(NameError::WildcardInName);
    }
    Ok(swap_separators(name))
}

/// The MQTT topic name of routing key `key` (any key: what an HTTP or AMQP client sent).
pub fn name_of(key: &str) -> String {
    swap_separators(key)
}

/// A subscription's filter: the group when shared, the MQTT filter and its Wharf pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub share: Option<String>,
    /// The filter without `$share/{group}/`.
    pub mqtt: String,
    pub pattern: String,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, NameError> {
        check_text(text)?;
        let (share, mqtt) = match text.strip_prefix("$share/") {
            Some(rest) => {
                let (group, filter) = rest.split_once('/').ok_or(NameError::BadShare)?;
                if group.is_empty() || filter.is_empty() || group.contains(['+', '#']) {
                    return Err(NameError::BadShare);
                }
                (Some(group.to_string()), filter)
            }
            None => (None, text),
        };
        let levels: Vec<&str> = mqtt.split('/').collect();
        for (index, level) in levels.iter().enumerate() {
            let wildcard = level.contains(['+', '#']);
            let alone = *level == "+" || (*level == "#" && index == levels.len() - 1);
            if wildcard && !alone {
                return Err(NameError::BadWildcard);
            }
        }
        let pattern = (levels.iter())
            .map(|level| match *level {
                "+" => "*".to_string(),
                level => level.replace('.', "/"),
            })
            .collect::<Vec<_>>()
            .join(".");
        Ok(Filter {
            share,
            mqtt: mqtt.to_string(),
            pattern,
        })
    }

    /// Whether MQTT topic name `name` matches the filter, `$` topics apart: a filter starting
    /// with a wildcard does not match a name starting with `$` [MQTT-4.7.2-1].
    pub fn matches(&self, name: &str) -> bool {
        if name.starts_with('$') && self.mqtt.starts_with(['+', '#']) {
            return false;
        }
        let mut names = name.split('/');
        for level in self.mqtt.split('/') {
            match (level, names.next()) {
                ("#", _) => return true,
                ("+", Some(_)) => {}
                (level, Some(name)) if level == name => {}
                _ => return false,
            }
        }
        names.next().is_none()
    }
}

fn check_text(text: &str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.contains('\0') {
        return Err(NameError::NulCharacter);
    }
    Ok(())
}

fn swap_separators(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '/' => '.',
            '.' => '/',
            c => c,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_keys_map_one_to_one() {
        assert_eq!(key_of("sensors/kitchen").unwrap(), "sensors.kitchen");
        assert_eq!(key_of("v1.2/x").unwrap(), "v1/2.x");
        assert_eq!(name_of("v1/2.x"), "v1.2/x");
        assert_eq!(name_of("orders.eu"), "orders/eu");
        assert_eq!(key_of("/a//b").unwrap(), ".a..b");
        assert_eq!(key_of("a/+"), Err(NameError::WildcardInName));
        assert_eq!(key_of(""), Err(NameError::Empty));
    }

    #[test]
    fn filters_become_patterns_and_match_as_mqtt_does() {
        let filter = Filter::parse("sensors/+/temp.c").unwrap();
        assert_eq!(filter.pattern, "sensors.*.temp/c");
        assert!(filter.matches("sensors/k/temp.c"));
        assert!(!filter.matches("sensors/k/l/temp.c"));
        let all = Filter::parse("a/#").unwrap();
        assert_eq!(all.pattern, "a.#");
        assert!(all.matches("a") && all.matches("a/b/c") && !all.matches("b"));
        assert!(!Filter::parse("#").unwrap().matches("$SYS/x"));
        assert!(!Filter::parse("+/x").unwrap().matches("$SYS/x"));
        assert!(Filter::parse("$SYS/#").unwrap().matches("$SYS/x"));
        for bad in ["a/#/b", "a+", "a/b#", ""] {
            assert!(Filter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shared_subscriptions_name_a_group() {
        let shared = Filter::parse("$share/g1/a/+").unwrap();
        assert_eq!(shared.share.as_deref(), Some("g1"));
        assert_eq!(shared.mqtt, "a/+");
        assert_eq!(shared.pattern, "a.*");
        for bad in ["$share/g1", "$share//a", "$share/g+/a"] {
            assert_eq!(Filter::parse(bad), Err(NameError::BadShare), "{bad}");
        }
    }
}
