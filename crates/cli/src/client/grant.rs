//! The `--grant ACTIONS@RESOURCE` argument of `wharf user add` and `wharf token create`.
//!
//! ACTIONS is a comma-separated list of `read`, `write`, `manage`, `admin`; RESOURCE is the
//! server's `KIND:PATTERN` (`queue:orders.*`, `topic:#`, `*:*`). `@` separates them because
//! resources contain `:` and actions never contain `@`: the first `@` always splits, whatever
//! the pattern holds. Actions are checked here, so a typo fails before any request; the
//! resource is left to the server, which alone knows the pattern rules and names the grant
//! (`grants[1].resource`) when one is bad.

use serde_json::{json, Value};

/// The actions a grant may hold, as the API spells them.
const ACTIONS: [&str; 4] = ["read", "write", "manage", "admin"];

/// One parsed `--grant`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantArg {
    actions: Vec<String>,
    resource: String,
}

impl GrantArg {
    /// The grant as the API's JSON: `{"actions": [...], "resource": "..."}`.
    pub fn to_json(&self) -> Value {
        json!({ "actions": self.actions, "resource": self.resource })
    }
}

impl std::str::FromStr for GrantArg {
    type Err = String;

    fn from_str(text: &str) -> Result<GrantArg, String> {
        let Some((actions, resource)) = text.split_once('@') else {
            return Err(format!(
                "`{text}` is not ACTIONS@RESOURCE (e.g. read,write@queue:orders.*)"
            ));
        };
        if resource.is_empty() {
            return Err(format!("`{text}` names no resource after `@`"));
        }
        let actions = actions
            .split(',')
            .map(|action| match ACTIONS.contains(&action) {
                true => Ok(action.to_string()),
                false => Err(format!(
                    "`{action}` is not an action; use {}",
                    ACTIONS.join(", ")
                )),
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(GrantArg {
            actions,
            resource: resource.to_string(),
        })
    }
}

/// The grants of a command line as the API's JSON array.
pub fn grants_json(grants: &[GrantArg]) -> Value {
    Value::Array(grants.iter().map(GrantArg::to_json).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_at_sign_splits_actions_from_a_resource_with_colons() {
        let grant: GrantArg = "read,write@queue:orders.*".parse().expect("valid");
        assert_eq!(
            grant.to_json(),
            json!({"actions": ["read", "write"], "resource": "queue:orders.*"})
        );
        let grant: GrantArg = "admin@*:*".parse().expect("valid");
        assert_eq!(grant.to_json()["resource"], "*:*");
    }

    #[test]
    fn unknown_actions_and_missing_parts_are_refused() {
        assert!("queue:orders".parse::<GrantArg>().is_err());
        assert!("read@".parse::<GrantArg>().is_err());
        assert!("reed@queue:x".parse::<GrantArg>().is_err());
        assert!("@queue:x".parse::<GrantArg>().is_err());
    }
}
