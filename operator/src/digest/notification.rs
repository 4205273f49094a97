//! Registry notifications: what a registry webhook body says was pushed.
//!
//! Two forms are understood: the CNCF Distribution notification envelope (`{"events": [...]}`,
//! media type `application/vnd.docker.distribution.events.v1+json`), of which only pushes of
//! manifests under a tag count (pulls, blob uploads and untagged pushes are ignored); and a generic
//! `{"repository": "...", "tag": "..."}` for CI systems and other registries.
//!
//! A notification is only a hint to look again: the digest is always resolved at the registry, so
//! a forged or mistaken notification can cost a request but never pin anything. The digest it
//! announces (`target.digest`, or the generic form's optional `digest`) is kept as what the lookup
//! should expect: CNCF Distribution sends the notification before it moves the tag in storage, so
//! a lookup right after it may still see the old digest ([`super::pinner`] looks again, briefly).

use serde::Deserialize;

use super::reference::Digest;
use crate::error::Error;

/// A tag that was (re)pushed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PushedTag {
    /// The repository path, e.g. `acme/trading-agent`.
    pub repository: String,
    /// The tag, e.g. `stable`.
    pub tag: String,
    /// The digest of the pushed manifest, when the notification names a valid one.
    pub digest: Option<Digest>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Body {
    Envelope {
        events: Vec<Event>,
    },
    Generic {
        repository: String,
        tag: String,
        #[serde(default)]
        digest: String,
    },
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
    #[serde(default)]
    digest: String,
}

/// Manifest media types whose push moves a tag (anything else, e.g. a layer blob, is ignored).
fn is_manifest(media_type: &str) -> bool {
    super::client::MANIFEST_MEDIA_TYPES.contains(&media_type)
        || media_type == "application/vnd.docker.distribution.manifest.v1+prettyjws"
}

/// The tags a webhook body announces as pushed, one per `repository:tag` (the last event of a tag
/// wins: events are in push order), sorted. An envelope of only ignorable events gives an empty
/// list (answered 202, nothing to do). A malformed digest is dropped, not refused: the push still
/// asks for a fresh lookup.
pub fn pushed_tags(body: &[u8]) -> Result<Vec<PushedTag>, Error> {
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| Error::NotificationNotJson(e.to_string()))?;
    let parsed: Body =
        serde_json::from_value(value).map_err(|_| Error::NotificationUnknownShape)?;
    let pushes: Vec<(String, String, String)> = match parsed {
        Body::Generic {
            repository,
            tag,
            digest,
        } if !repository.is_empty() && !tag.is_empty() => vec![(repository, tag, digest)],
        Body::Generic { .. } => return Err(Error::NotificationUnknownShape),
        Body::Envelope { events } => events
            .into_iter()
            .filter(|e| {
                e.action == "push" && !e.target.tag.is_empty() && !e.target.repository.is_empty()
            })
            .filter(|e| is_manifest(&e.target.media_type))
            .map(|e| (e.target.repository, e.target.tag, e.target.digest))
            .collect(),
    };
    let mut last: std::collections::BTreeMap<(String, String), Option<Digest>> =
        std::collections::BTreeMap::new();
    for (repository, tag, digest) in pushes {
        last.insert((repository, tag), Digest::parse(&digest).ok());
    }
    Ok(last
        .into_iter()
        .map(|((repository, tag), digest)| PushedTag {
            repository,
            tag,
            digest,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(action: &str, media_type: &str, tag: &str) -> serde_json::Value {
        serde_json::json!({
            "id": "e1", "timestamp": "2026-11-24T02:00:00Z", "action": action,
            "target": {"mediaType": media_type, "size": 708, "digest": DIGEST, "repository": "acme/agent",
                       "url": "http://127.0.0.1:5000/v2/acme/agent/manifests/sha256:aa", "tag": tag},
            "request": {"id": "r1", "addr": "127.0.0.1:1", "host": "127.0.0.1:5000", "method": "PUT", "useragent": "skopeo"},
            "actor": {}, "source": {"addr": "host:5000", "instanceID": "i"}
        })
    }

    fn envelope(events: Vec<serde_json::Value>) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "events": events })).unwrap()
    }

    const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    const DIGEST: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn a_tagged_manifest_push_counts() {
        let body = envelope(vec![event("push", OCI_MANIFEST, "stable")]);
        assert_eq!(
            pushed_tags(&body),
            Ok(vec![PushedTag {
                repository: "acme/agent".into(),
                tag: "stable".into(),
                digest: Some(Digest::parse(DIGEST).unwrap()),
            }])
        );
    }

    #[test]
    fn the_last_push_of_a_tag_names_the_digest_and_a_bad_digest_is_dropped() {
        let mut second = event("push", OCI_MANIFEST, "stable");
        second["target"]["digest"] = serde_json::json!(format!("sha256:{}", "b".repeat(64)));
        let body = envelope(vec![event("push", OCI_MANIFEST, "stable"), second]);
        let tags = pushed_tags(&body).unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(
            tags[0].digest.as_ref().map(Digest::as_str),
            Some(format!("sha256:{}", "b".repeat(64)).as_str())
        );
        let mut forged = event("push", OCI_MANIFEST, "stable");
        forged["target"]["digest"] = serde_json::json!("sha256:zz");
        let tags = pushed_tags(&envelope(vec![forged])).unwrap();
        assert_eq!(
            (tags[0].tag.as_str(), tags[0].digest.clone()),
            ("stable", None)
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
                tag: "stable".into(),
                digest: None,
            }])
        );
        let with_digest =
            format!(r#"{{"repository":"acme/agent","tag":"stable","digest":"{DIGEST}"}}"#);
        assert_eq!(
            pushed_tags(with_digest.as_bytes()).unwrap()[0].digest,
            Some(Digest::parse(DIGEST).unwrap())
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
