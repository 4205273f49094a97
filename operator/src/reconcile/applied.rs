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
//!
//! The other way round, a reconciliation that runs before the watch delivered our own apply (one
//! started by the TradingAgent's status write, say) sees the child as it was and would apply the
//! same object again: a write and a second `Updated` event for nothing. [`OwnApplies`] remembers
//! each apply of a child that existed and the version it was decided on; while the cache still
//! holds that version, the API server's answer to our apply stands in for it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kube::Resource;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// How long an apply is remembered ([`OwnApplies`]): far longer than a watch takes to deliver it.
pub const OWN_APPLY_MEMORY: Duration = Duration::from_secs(5);

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

/// The fingerprint [`stamp`] recorded in `object`.
fn fingerprint<K: Resource>(object: &K) -> Option<String> {
    object
        .meta()
        .annotations
        .as_ref()
        .and_then(|a| a.get(FINGERPRINT_ANNOTATION))
        .cloned()
}

/// True when applying `desired` (stamped by [`stamp`]) to the object cached as `cached` would
/// change nothing.
pub fn up_to_date<K: Resource + Serialize>(desired: &K, cached: &K) -> bool {
    let wanted = fingerprint(desired);
    if wanted.is_none() || wanted != fingerprint(cached) {
        return false;
    }
    match (serde_json::to_value(desired), serde_json::to_value(cached)) {
        (Ok(desired), Ok(cached)) => contains(&cached, &desired),
        _ => false,
    }
}

/// Our recent applies of one kind of child, by namespace and name (see the module's doc).
#[derive(Debug)]
pub struct OwnApplies<K> {
    entries: Mutex<HashMap<(String, String), OwnApply<K>>>,
}

#[derive(Debug)]
struct OwnApply<K> {
    /// The fingerprint of what was applied.
    fingerprint: Option<String>,
    /// The `resourceVersion` of the cached child the apply was decided on.
    over: String,
    /// What the API server answered.
    answered: K,
    at: Instant,
}

impl<K> Default for OwnApplies<K> {
    fn default() -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
        }
    }
}

impl<K: Resource + Clone> OwnApplies<K> {
    /// Remember that `desired` was applied at `at` over the child cached as `cached`, and that the
    /// API server answered `answered`. Applies older than [`OWN_APPLY_MEMORY`] are forgotten.
    ///
    /// A child we created is not remembered: a cache without it cannot tell "not delivered yet"
    /// from "deleted since", and a deleted child must be created again at once. An updated one
    /// can: the watch delivers in order, so once our write (or a later one, or the deletion)
    /// arrives, the cache never shows the version the apply was decided on again.
    pub fn record(&self, desired: &K, cached: Option<&K>, answered: &K, at: Instant) {
        let mut entries = self.lock();
        entries.retain(|_, own| at.saturating_duration_since(own.at) < OWN_APPLY_MEMORY);
        let Some(over) = cached.and_then(|c| c.meta().resource_version.clone()) else {
            entries.remove(&key(desired));
            return;
        };
        entries.insert(
            key(desired),
            OwnApply {
                fingerprint: fingerprint(desired),
                over,
                answered: answered.clone(),
                at,
            },
        );
    }

    /// The API server's answer to our last apply of exactly `desired`, while the cache still
    /// shows the child as it was before that apply (`cached`): the cache is behind our own write.
    /// `None` once the cache moved on (our write arrived, or someone else's: compare with it).
    pub fn behind(&self, desired: &K, cached: Option<&K>, now: Instant) -> Option<K> {
        let mut entries = self.lock();
        let key = key(desired);
        let own = entries.get(&key)?;
        let cached_version = cached.and_then(|c| c.meta().resource_version.as_ref());
        if cached_version != Some(&own.over)
            || now.saturating_duration_since(own.at) >= OWN_APPLY_MEMORY
        {
            entries.remove(&key);
            return None;
        }
        (own.fingerprint.is_some() && own.fingerprint == fingerprint(desired))
            .then(|| own.answered.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), OwnApply<K>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn key<K: Resource>(object: &K) -> (String, String) {
    let meta = object.meta();
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
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
    fn our_own_apply_stands_in_for_a_cache_that_has_not_seen_it() {
        let own = OwnApplies::<ConfigMap>::default();
        let now = Instant::now();
        let mut before = as_served(config_map(&[("k", "v1")]));
        before.metadata.resource_version = Some("41".into());
        let mut desired = config_map(&[("k", "v2")]);
        stamp(&mut desired);
        let answered = as_served(desired.clone());
        assert_eq!(
            own.behind(&desired, Some(&before), now),
            None,
            "nothing applied yet"
        );
        own.record(&desired, Some(&before), &answered, now);
        // The cache still holds version 41: our answer stands in for it.
        assert_eq!(
            own.behind(&desired, Some(&before), now),
            Some(answered.clone())
        );
        // Another desired state is not what we applied.
        let mut other = config_map(&[("k", "v3")]);
        stamp(&mut other);
        assert_eq!(own.behind(&other, Some(&before), now), None);
        // Too long ago: the cache is not behind, something else is going on; compare again.
        let late = now + OWN_APPLY_MEMORY;
        assert_eq!(own.behind(&desired, Some(&before), late), None);
        // The cache moved on (our write arrived, or someone else's): it is compared as it is, and
        // the memory is gone.
        own.record(&desired, Some(&before), &answered, now);
        assert_eq!(own.behind(&desired, Some(&answered), now), None);
        assert_eq!(own.behind(&desired, Some(&before), now), None);
        // Deleted since our apply: compared as missing, so it is applied (created) again.
        own.record(&desired, Some(&before), &answered, now);
        assert_eq!(own.behind(&desired, None, now), None);
        // A child we created is not remembered: a cache without it may mean it was deleted since.
        own.record(&desired, None, &answered, now);
        assert_eq!(own.behind(&desired, None, now), None);
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
