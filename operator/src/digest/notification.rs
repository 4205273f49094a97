//! Registry notifications: what a registry webhook body says was pushed.
//!
//! Two forms are understood: the CNCF Distribution notification envelope (`{"events": [...]}`,
//! media type `application/vnd.docker.distribution.events.v1+json`), of which only pushes of
//! manifests under a tag count (pulls, blob uploads and untagged pushes are ignored); and a generic
//! `{"repository": "...", "tag": "..."}` for CI systems and other registries.
//!
//! A notification is only a hint to look again: the digest is always resolved at the registry, so
//! a forged or mistaken notification can cost a request but never pin anything.

use serde::Deserialize;

use crate::error::Error;

/// A tag that was (re)pushed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PushedTag {
    /// The repository path, e.g. `acme/trading-agent`.
    pub repository: String,
    /// The tag, e.g. `stable`.
    pub tag: String,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Envelope { events: Vec<Event> },
    Generic { repository: String, tag: String },
}

#[derive(Deserialize)]
struct Event {
    #[serde(default)]
    action: String,
    #[serde(default)]
    target: Target,
}

#[derive(Deserialize, Default)]
struct Target {
    #[serde(default, rename = "mediaType")]
    media_type: String,
    #[serde(default)]
    repository: String,
    #[serde(default)]
    tag: String,
}

/// Manifest media types whose push moves a tag (anything else, e.g. a layer blob, is ignored).
fn is_manifest(media_type: &str) -> bool {
    super::client::MANIFEST_MEDIA_TYPES.contains(&media_type)
        || media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
}

/// The tags a webhook body announces as pushed, deduplicated and sorted. An envelope of only
/// ignorable events gives an empty list (answered 202, nothing to do).
pub fn pushed_tags(body: &[u8]) -> Result<Vec<PushedTag>, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::NotificationNotJson(e.to_string()))?;
    let parsed: Body =
        serde_json::from_value(value).map_err(|_| Error::NotificationUnknownShape)?;
    let mut tags: Vec<PushedTag> = match parsed {
        Body::Generic { repository, tag } if !repository.is_empty() && !tag.is_empty() => {
            vec![PushedTag { repository, tag }]
        }
        Body::Generic { .. } => return Err(Error::NotificationUnknownShape),
        Body::Envelope { events } => events
            .into_iter()
            .filter(|e| {
                e.action == "push" && !e.target.tag.is_empty() && !e.target.repository.is_empty()
            })
            .filter(|e| is_manifest(&e.target.media_type))
            .map(|e| PushedTag {
                repository: e.target.repository,
                tag: e.target.tag,
            })
            .collect(),
    };
    tags.sort();
    tags.dedup();
    Ok(tags)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, media_type: &str, tag: &str) -> serde_json::Value {
        serde_json::json!({
            "id": "e1", "timestamp": "2026-11-24T02:00:00Z", "action": action,
            "target": {"mediaType": media_type, "size": 708, "digest": "sha256:aa", "repository": "acme/agent",
                       "url": "http://127.0.0.1:5000/v2/acme/agent/manifests/sha256:aa", "tag": tag},
            "request": {"id": "r1", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "skopeo"},
            "actor": {}, "source": {"addr": "host:5000", "instanceID": "i"}
        })
    }

    fn envelope(events: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap()
    }

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

    #[test]
    fn a_tagged_manifest_push_counts() {
        let body = envelope(vec![event("push", OCI_MANIFEST, "stable")]);
        assert_eq!(
            pushed_tags(&body),
            Ok(vec![PushedTag {
                repository: "acme/agent".into(),
                tag: "stable".into()
            }])
        );
    }

    #[test]
    fn index_and_docker_manifest_pushes_count_and_duplicates_collapse() {
        let body = envelope(vec![
            event("push", "application/vnd.oci.image.index.v1+json", "stable"),
            event(
                "push",
                "application/vnd.docker.distribution.manifest.v2+json",
                "stable",
            ),
            event(
                "push",
                "application/vnd.docker.distribution.manifest.list.v2+json",
                "v2",
            ),
        ]);
        let tags: Vec<String> = pushed_tags(&body)
            .unwrap()
            .into_iter()
            .map(|t| t.tag)
            .collect();
        assert_eq!(tags, ["stable", "v2"]);
    }

    #[test]
    fn pulls_blob_pushes_and_untagged_pushes_are_ignored() {
        let body = envelope(vec![
            event("pull", OCI_MANIFEST, "stable"),
            event("push", "application/octet-stream", ""),
            event("push", "application/vnd.oci.image.layer.v1.tar+gzip", ""),
            event("push", OCI_MANIFEST, ""),
            event("delete", OCI_MANIFEST, "stable"),
        ]);
        assert_eq!(pushed_tags(&body), Ok(vec![]));
    }

    #[test]
    fn generic_form() {
        assert_eq!(
            pushed_tags(br#"{"repository":"acme/agent","tag":"stable"}"#),
            Ok(vec![PushedTag {
                repository: "acme/agent".into(),
                tag: "stable".into()
            }])
        );
        assert_eq!(
            pushed_tags(br#"{"repository":"","tag":"stable"}"#),
            Err(Error::NotificationUnknownShape)
        );
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(matches!(
            pushed_tags(b"not json"),
            Err(Error::NotificationNotJson(_))
        ));
        assert_eq!(
            pushed_tags(br#"{"hello":"world"}"#),
            Err(Error::NotificationUnknownShape)
        );
        assert_eq!(pushed_tags(b"[]"), Err(Error::NotificationUnknownShape));
    }
}
