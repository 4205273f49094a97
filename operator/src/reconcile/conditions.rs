//! Status conditions, the Kubernetes way: one per type, and `lastTransitionTime` moves only when
//! the condition's status does. Pure. The types and reasons are part of the API
//! ([`crate::resource::conditions`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::resource::TradingAgentStatus;
pub use crate::resource::conditions::{reasons, types};

/// Build a condition stamped with `generation` and `now`.
pub fn condition(
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    generation: Option<i64>,
    now: Timestamp,
) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: if status { "True" } else { "False" }.to_owned(),
        reason: reason.to_owned(),
        message: message.into(),
        observed_generation: generation,
        last_transition_time: Time(now),
    }
}

/// Insert or replace a condition of the same type, keeping the old `lastTransitionTime` when
/// the status did not change (the Kubernetes API conventions).
pub fn set_condition(conditions: &mut Vec<Condition>, mut new: Condition) {
    match conditions.iter_mut().find(|c| c.type_ == new.type_) {
        Some(existing) => {
            if existing.status == new.status {
                new.last_transition_time = existing.last_transition_time.clone();
            }
            *existing = new;
        }
        None => conditions.push(new),
    }
}

/// The condition of a type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Whether `status` says the resource is Ready.
pub fn is_ready(status: Option<&TradingAgentStatus>) -> bool {
    status
        .and_then(|s| find_condition(&s.conditions, types::READY))
        .is_some_and(|c| c.status == "True")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000 + seconds).unwrap()
    }

    #[test]
    fn set_condition_replaces_by_type() {
        let mut conditions = vec![condition("Ready", false, "A", "a", Some(1), t(0))];
        set_condition(
            &mut conditions,
            condition("Ready", false, "B", "b", Some(2), t(5)),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].reason, "B");
        assert_eq!(conditions[0].observed_generation, Some(2));
        assert_eq!(conditions[0].last_transition_time, Time(t(0)));
        set_condition(
            &mut conditions,
            condition("Ready", true, "C", "c", Some(2), t(9)),
        );
        assert_eq!(conditions[0].last_transition_time, Time(t(9)));
        set_condition(
            &mut conditions,
            condition("Degraded", false, "D", "d", Some(2), t(9)),
        );
        assert_eq!(conditions.len(), 2);
    }
}
