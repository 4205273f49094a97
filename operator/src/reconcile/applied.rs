//! Whether a cached child already is what server-side apply would make it, so the apply can be
//! skipped.
//!
//! Every change to a child (a Deployment's status moving as its pods start, say) reconciles its
//! TradingAgent again, and most of those reconciles want nothing changed. An unconditional apply
//! is a write the API server must decode, diff and often store; with 1,000 agents those no-op
//! writes crowded out the ones that mattered. A child is up to date when both hold:
//!
//! - its fingerprint annotation equals the desired object's: the desired state is the one last
//!   applied, so no field the operator used to set has since been dropped (apply would remove it);
//! - every field the desired object sets has the same value in the cached object: no one changed
//!   what the operator owns (drift). Fields the API server defaults or others own are ignored, as
//!   apply ignores them.
//!
//! A cache that lags behind our own write can make a child look up to date when it is not; the
//! write that it has not seen yet changes the child, so the watch delivers it and reconciles the
//! TradingAgent again, and that reconcile compares with the fresh copy.

use kube::Resource;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Annotation holding the fingerprint of the desired object last applied.
pub const FINGERPRINT_ANNOTATION: &str = "tradingagents.dev/applied-fingerprint";

/// Fingerprint `desired` (a hash of its JSON form) and record it in its annotations.
pub fn stamp<K: Resource + Serialize>(desired: &mut K) {
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .remove(FINGERPRINT_ANNOTATION);
    let json = serde_json::to_vec(desired).unwrap_or_default();
    let fingerprint = hex::encode(&Sha256::digest(&json)[..12]);
    desired
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(FINGERPRINT_ANNOTATION.to_owned(), fingerprint);
}

/// True when applying `desired` (stamped by [`stamp`]) to the object cached as `cached` would
/// change nothing.
pub fn up_to_date<K: Resource + Serialize>(desired: &K, cached: &K) -> bool {
    let fingerprint = |k: &K| {
        k.meta()
            .annotations
            .as_ref()
            .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
            .cloned()
    };
    let wanted = fingerprint(desired);
    if wanted.is_none() || wanted != fingerprint(cached) {
        return false;
    }
    match (serde_json::to_value(desired), serde_json::to_value(cached)) {
        (Ok(desired), Ok(cached)) => contains(&cached, &desired),
        _ => false,
    }
}

/// Whether `actual` holds every field of `wanted` with the same value. Lists must match element
/// by element (the operator owns every list it sets, and apply would replace a longer one).
fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, w)| actual.get(key).is_some_and(|a| contains(a, w))),
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len() && actual.iter().zip(wanted).all(|(a, w)| contains(a, w))
        }
        (actual, wanted) => actual == wanted,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;

    fn config_map(data: &[(&str, &str)]) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                name: Some("cm".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// What the API server hands back: our fields, plus its own metadata and defaults.
    fn as_served(mut desired: ConfigMap) -> ConfigMap {
        desired.metadata.uid = Some("0b3f".into());
        desired.metadata.resource_version = Some("42".into());
        desired
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("added-by".into(), "someone-else".into());
        desired
    }

    #[test]
    fn stamping_is_deterministic_and_idempotent() {
        let mut a = config_map(&[("k", "v")]);
        let mut b = config_map(&[("k", "v")]);
        stamp(&mut a);
        stamp(&mut b);
        assert_eq!(a, b);
        let once = a.clone();
        stamp(&mut a);
        assert_eq!(
            a, once,
            "stamping twice must not fingerprint the fingerprint"
        );
    }

    #[test]
    fn the_served_object_of_the_same_desired_state_is_up_to_date() {
        let mut desired = config_map(&[("k", "v")]);
        stamp(&mut desired);
        assert!(up_to_date(&desired, &as_served(desired.clone())));
    }

    #[test]
    fn drift_in_a_field_we_set_needs_an_apply() {
        let mut desired = config_map(&[("k", "v")]);
        stamp(&mut desired);
        let mut served = as_served(desired.clone());
        served
            .data
            .as_mut()
            .unwrap()
            .insert("k".into(), "edited".into());
        assert!(!up_to_date(&desired, &served));
    }

    #[test]
    fn a_field_we_no_longer_set_needs_an_apply() {
        // The served object still holds "old"; the subset check alone would call it up to date,
        // the fingerprint does not.
        let mut before = config_map(&[("k", "v"), ("old", "x")]);
        stamp(&mut before);
        let served = as_served(before);
        let mut desired = config_map(&[("k", "v")]);
        stamp(&mut desired);
        assert!(!up_to_date(&desired, &served));
    }

    #[test]
    fn an_object_without_our_fingerprint_needs_an_apply() {
        let mut desired = config_map(&[("k", "v")]);
        let unstamped = as_served(desired.clone());
        stamp(&mut desired);
        assert!(!up_to_date(&desired, &unstamped));
        assert!(
            !up_to_date(&unstamped, &unstamped),
            "an unstamped desired object is never up to date"
        );
    }

    #[test]
    fn lists_compare_element_by_element() {
        let spec = |names: &[&str]| -> Value {
            serde_json::to_value(PodSpec {
                containers: names
                    .iter()
                    .map(|n| Container {
                        name: (*n).to_owned(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
            .unwrap()
        };
        assert!(contains(&spec(&["a", "b"]), &spec(&["a", "b"])));
        assert!(!contains(&spec(&["a", "b", "c"]), &spec(&["a", "b"])));
        assert!(!contains(&spec(&["b", "a"]), &spec(&["a", "b"])));
        // Defaults the server adds inside an element are fine.
        assert!(contains(
            &json!([{"name": "a", "terminationMessagePath": "/dev/termination-log"}]),
            &json!([{"name": "a"}])
        ));
    }
}
