//! Message priority: 0 (the default, lowest) to 9 (highest, delivered first).

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How urgent a message is: 0..=9, higher first. Ten levels, like AMQP 0-9-1's `priority`
/// property (0-9): enough to separate urgent from bulk work, few enough that a queue can
/// keep one ordering key per level cheaply.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub struct Priority(u8);

/// A number outside the priority range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PriorityError {
    #[error("priority {value} is out of range; allowed are {min}..={max}", min = Priority::MIN.0, max = Priority::MAX.0)]
    OutOfRange { value: u64 },
    #[error("priority {text:?} is not a number")]
    NotANumber { text: String },
}

impl Priority {
    pub const MIN: Priority = Priority(0);
    pub const MAX: Priority = Priority(9);

    pub fn new(value: u8) -> Result<Priority, PriorityError> {
        if value > Priority::MAX.0 {
            return Err(PriorityError::OutOfRange {
                value: u64::from(value),
            });
        }
        Ok(Priority(value))
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for Priority {
    type Error = PriorityError;

    fn try_from(value: u8) -> Result<Self, Self::Error> {
        Priority::new(value)
    }
}

impl From<Priority> for u8 {
    fn from(priority: Priority) -> u8 {
        priority.0
    }
}

impl FromStr for Priority {
    type Err = PriorityError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let value: u64 = text.parse().map_err(|_| PriorityError::NotANumber {
            text: text.to_owned(),
        })?;
        let value = u8::try_from(value).map_err(|_| PriorityError::OutOfRange { value })?;
        Priority::new(value)
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_zero_the_lowest() {
        assert_eq!(Priority::default(), Priority::MIN);
        assert_eq!(Priority::default().get(), 0);
    }

    #[test]
    fn accepts_zero_to_nine_and_orders_higher_above() {
        for value in 0..=9 {
            assert_eq!(Priority::new(value).unwrap().get(), value);
        }
        assert!(Priority::new(9).unwrap() > Priority::new(1).unwrap());
    }

    #[test]
    fn rejects_ten_and_above() {
        assert_eq!(
            Priority::new(10),
            Err(PriorityError::OutOfRange { value: 10 })
        );
        assert_eq!(
            "300".parse::<Priority>(),
            Err(PriorityError::OutOfRange { value: 300 })
        );
        assert!(matches!(
            "high".parse::<Priority>(),
            Err(PriorityError::NotANumber { .. })
        ));
    }

    #[test]
    fn serializes_as_a_number_and_validates_on_deserialize() {
        assert_eq!(
            serde_json::to_string(&Priority::new(7).unwrap()).unwrap(),
            "7"
        );
        assert_eq!(serde_json::from_str::<Priority>("3").unwrap().get(), 3);
        assert!(serde_json::from_str::<Priority>("12").is_err());
    }
}
