//! What this process runs: the build (package version and commit) and the image the operator
//! pinned it to. `/healthz` reports it, and every worker heartbeat records it, so "is it running
//! the new code?" has a one-line answer per instance.

use std::sync::LazyLock;

/// The commit this binary was built from: `TRADING_AGENT_COMMIT` at build time (the scripts set it
/// from git), else `unknown`.
pub const COMMIT: &str = match option_env!("TRADING_AGENT_COMMIT") {
    Some(commit) => commit,
    None => "unknown",
};

/// A build identity and the image it runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Build {
    pub version: String,
    pub commit: String,
    /// The pinned image reference (`…/trading-agent:tag@sha256:…`) from `IMAGE_REF`.
    pub image_ref: Option<String>,
    /// Its digest (`sha256:…`), the part after the last `@`.
    pub image_digest: Option<String>,
}

impl Build {
    /// This process: the compiled-in version and commit, and `IMAGE_REF` as read once at start.
    pub fn current() -> &'static Build {
        static CURRENT: LazyLock<Build> = LazyLock::new(|| {
            Build::new(
                env!("CARGO_PKG_VERSION"),
                COMMIT,
                std::env::var("IMAGE_REF").ok().as_deref(),
            )
        });
        &CURRENT
    }

    /// A build from its parts; an empty or blank image reference counts as none.
    pub fn new(version: &str, commit: &str, image_ref: Option<&str>) -> Build {
        let image_ref = image_ref
            .map(str::trim)
            .filter(|r| !r.is_empty())
            .map(str::to_owned);
        Build {
            version: version.to_owned(),
            commit: commit.to_owned(),
            image_digest: image_ref.as_deref().and_then(digest_of),
            image_ref,
        }
    }
}

/// The digest of a pinned reference (`repo:tag@sha256:…` → `sha256:…`); `None` for a reference by
/// tag only.
pub fn digest_of(reference: &str) -> Option<String> {
    let (_, digest) = reference.rsplit_once('@')?;
    let (algorithm, hex) = digest.split_once(':')?;
    (!algorithm.is_empty() && !hex.is_empty()).then(|| digest.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_is_read_from_a_pinned_reference() {
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let b = Build::new(
            "1.2.3",
            "abc1234",
            Some(&format!("127.0.0.1:5000/acme/trading-agent:latest@{d}")),
        );
        assert_eq!(b.image_digest.as_deref(), Some(d));
        assert_eq!(b.version, "1.2.3");
        assert_eq!(
            Build::new("1", "c", Some("registry/x:tag")).image_digest,
            None
        );
        assert_eq!(Build::new("1", "c", Some("registry/x@")).image_digest, None);
        assert_eq!(Build::new("1", "c", Some("  ")).image_ref, None);
        assert_eq!(Build::new("1", "c", None).image_digest, None);
    }
}
