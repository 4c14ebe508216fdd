//! Queue names: the checked string that names a queue in every door and on disk.
//!
//! The character set is narrow on purpose: a name appears in URL paths, AMQP and MQTT
//! frames, metric labels and possibly file names, and these characters need no escaping in
//! any of them. `@` is among them because Celery names its control queues
//! `celery@HOST.celery.pidbox`, and a URL path segment takes it as it is (RFC 3986 `pchar`).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Longest queue name in bytes. 255 matches AMQP's `shortstr` queue names, so every AMQP
/// queue name Wharf accepts fits the wire and vice versa.
pub const QUEUE_NAME_BYTES_MAX: usize = 255;

/// The name of a queue: 1..=255 bytes of ASCII letters, digits, `.`, `-`, `_` and `@`, and not
/// `.` or `..` (those would mean something else wherever a name becomes a path segment).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

/// Why a string is not a valid queue name (or topic name: topics follow the same rules, so
/// the wording names neither).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueueNameError {
    #[error("name is empty")]
    Empty,
    #[error("name is {length} bytes long; at most {max} are allowed", max = QUEUE_NAME_BYTES_MAX)]
    TooLong { length: usize },
    #[error(
        "name has {character:?} at byte {position}; \
         allowed are ASCII letters, digits, '.', '-', '_' and '@'"
    )]
    InvalidCharacter { character: char, position: usize },
    #[error("name {name:?} is reserved")]
    Reserved { name: String },
}

impl QueueName {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Checks `name` without allocating; `TryFrom<String>` and `FromStr` both go through here.
    fn check(name: &str) -> Result<(), QueueNameError> {
        check_resource_name(name)
    }
}

/// Checks a resource name by the rules of [`QueueName`] (queues, topics, event streams): the
/// one rule for names that become path segments.
pub fn check_resource_name(name: &str) -> Result<(), QueueNameError> {
    if name.is_empty() {
        return Err(QueueNameError::Empty);
    }
    if name.len() > QUEUE_NAME_BYTES_MAX {
        return Err(QueueNameError::TooLong { length: name.len() });
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@');
    if let Some((position, character)) = name.char_indices().find(|&(_, c)| !allowed(c)) {
        return Err(QueueNameError::InvalidCharacter {
            character,
            position,
        });
    }
    if name == "." || name == ".." {
        return Err(QueueNameError::Reserved {
            name: name.to_owned(),
        });
    }
    Ok(())
}

impl TryFrom<String> for QueueName {
    type Error = QueueNameError;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        QueueName::check(&name)?;
        Ok(QueueName(name))
    }
}

impl FromStr for QueueName {
    type Err = QueueNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        QueueName::check(name)?;
        Ok(QueueName(name.to_owned()))
    }
}

impl From<QueueName> for String {
    fn from(name: QueueName) -> String {
        name.0
    }
}

impl AsRef<str> for QueueName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_letters_digits_dot_dash_underscore() {
        let name: QueueName = "Orders.eu-west_2".parse().unwrap();
        assert_eq!(name.as_str(), "Orders.eu-west_2");
        assert_eq!(name.to_string(), "Orders.eu-west_2");
    }

    #[test]
    fn rejects_empty_name() {
        assert_eq!("".parse::<QueueName>(), Err(QueueNameError::Empty));
    }

    #[test]
    fn accepts_255_bytes_and_rejects_256() {
        assert!(QueueName::try_from("a".repeat(255)).is_ok());
        assert_eq!(
            QueueName::try_from("a".repeat(256)),
            Err(QueueNameError::TooLong { length: 256 })
        );
    }

    #[test]
    fn rejection_names_the_bad_character_and_its_position() {
        let error = "orders/eu".parse::<QueueName>().unwrap_err();
        assert_eq!(
            error,
            QueueNameError::InvalidCharacter {
                character: '/',
                position: 6
            }
        );
        assert!(error.to_string().contains("'/'"), "{error}");
        assert!(matches!(
            "café".parse::<QueueName>(),
            Err(QueueNameError::InvalidCharacter {
                character: 'é',
                position: 3
            })
        ));
        assert!("a b".parse::<QueueName>().is_err());
    }

    #[test]
    fn rejects_dot_and_dot_dot() {
        assert!(matches!(
            ".".parse::<QueueName>(),
            Err(QueueNameError::Reserved { .. })
        ));
        assert!(matches!(
            "..".parse::<QueueName>(),
            Err(QueueNameError::Reserved { .. })
        ));
        assert!("...".parse::<QueueName>().is_ok());
    }

    #[test]
    fn serializes_as_a_plain_string_and_validates_on_deserialize() {
        let name: QueueName = "jobs".parse().unwrap();
        assert_eq!(serde_json::to_string(&name).unwrap(), "\"jobs\"");
        let back: QueueName = serde_json::from_str("\"jobs\"").unwrap();
        assert_eq!(back, name);
        assert!(serde_json::from_str::<QueueName>("\"no spaces\"").is_err());
    }
}
