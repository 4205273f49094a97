//! Image references and digests, parsed per the distribution reference grammar.
//!
//! Pure code: no I/O. The controller uses it to decide whether `spec.image` already carries a
//! digest; the tag resolver uses the normalised registry and repository to talk to the registry.
//!
//! Normalisation follows `docker/distribution`'s `ParseNormalizedNamed`: a name without a domain
//! lives on Docker Hub (`docker.io`), and a single-segment Docker Hub name is an official image
//! under `library/`. The first path segment is a domain when it contains `.` or `:`, is
//! `localhost`, or contains an upper-case letter.

use std::fmt;

use crate::error::Error;

/// Docker Hub's canonical domain.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves Docker Hub's distribution API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
/// Longest name (domain and path) the grammar allows.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A content digest, `sha256:<64 lower-case hex digits>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Parse `sha256:<64 hex>`; upper-case hex is refused, as registries emit lower case.
    pub fn parse(s: &str) -> Result<Self, Error> {
        let (algorithm, hex) = s
            .split_once(':')
            .ok_or_else(|| Error::DigestMalformed(s.to_owned()))?;
        let algorithm_ok = !algorithm.is_empty()
            && algorithm.split(['+', '.', '_', '-']).all(|c| {
                c.starts_with(|ch: char| ch.is_ascii_alphabetic())
                    && c.chars().all(|ch| ch.is_ascii_alphanumeric())
            });
        if !algorithm_ok || hex.len() < 32 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::DigestMalformed(s.to_owned()));
        }
        if algorithm != "sha256" {
            return Err(Error::DigestUnsupportedAlgorithm(algorithm.to_owned()));
        }
        if hex.len() != 64 || hex.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::DigestMalformed(s.to_owned()));
        }
        Ok(Self(s.to_owned()))
    }

    /// The full digest, `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hex part.
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }

    /// `sha256:` and the first 12 hex digits, the way `docker images` abbreviates.
    pub fn short(&self) -> String {
        format!("sha256:{}", &self.hex()[..12])
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A parsed, normalised image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl ImageReference {
    /// Parse a reference such as `nginx`, `ghcr.io/acme/app:1.2`, `localhost:5000/app@sha256:…`.
    pub fn parse(input: &str) -> Result<Self, Error> {
        if input.is_empty() {
            return Err(Error::ReferenceEmpty);
        }
        let (name_and_tag, digest) = match input.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest)?)),
            None => (input, None),
        };
        // A tag follows the last ':' after the last '/', so a registry port is not a tag.
        let last_slash = name_and_tag.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name_and_tag[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&name_and_tag[..at], Some(&name_and_tag[at + 1..]))
            }
            None => (name_and_tag, None),
        };
        if let Some(tag) = tag
            && !valid_tag(tag)
        {
            return Err(Error::ReferenceInvalidTag(tag.to_owned()));
        }
        if name.is_empty() {
            return Err(Error::ReferenceEmpty);
        }
        if name.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(Error::ReferenceNameTooLong);
        }

        let (registry, remainder) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == "localhost"
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                if !valid_domain(first) {
                    return Err(Error::ReferenceInvalidDomain(first.to_owned()));
                }
                (first, rest)
            }
            _ => (DOCKER_HUB, name),
        };
        let registry = if registry == "index.docker.io" {
            DOCKER_HUB
        } else {
            registry
        };
        if remainder.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(Error::ReferenceUppercase(remainder.to_owned()));
        }
        if let Some(bad) = remainder.split('/').find(|c| !valid_path_component(c)) {
            return Err(Error::ReferenceInvalidPathComponent(bad.to_owned()));
        }
        let repository = if registry == DOCKER_HUB && !remainder.contains('/') {
            format!("library/{remainder}")
        } else {
            remainder.to_owned()
        };

        Ok(Self {
            registry: registry.to_owned(),
            repository,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry, e.g. `docker.io`, `registry.example.com:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host serving the registry's distribution API (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path within the registry, e.g. `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if the reference has one.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if the reference has one.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The tag to resolve: the reference's own, or `latest` when it names neither tag nor digest.
    pub fn tag_to_resolve(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(tag), _) => Some(tag),
            (None, None) => Some(DEFAULT_TAG),
            (None, Some(_)) => None,
        }
    }

    /// `registry/repository`.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The same reference pinned to `digest` (the tag, if any, is kept for readers).
    pub fn pinned_to(&self, digest: Digest) -> PinnedImage {
        PinnedImage {
            reference: Self {
                digest: Some(digest.clone()),
                ..self.clone()
            },
            digest,
        }
    }
}

impl fmt::Display for ImageReference {
    /// The fully qualified form: `registry/repository[:tag][@digest]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// An image pinned to a digest: the only form the workloads ever run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PinnedImage {
    reference: ImageReference,
    digest: Digest,
}

impl PinnedImage {
    /// The digest the image is pinned to.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The reference, including tag and digest.
    pub fn reference(&self) -> &ImageReference {
        &self.reference
    }

    /// What goes into a container's `image`: `registry/repository[:tag]@sha256:…`.
    pub fn image(&self) -> String {
        self.reference.to_string()
    }
}

impl fmt::Display for PinnedImage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reference.fmt(f)
    }
}

/// The digest part of a container image string such as `…:tag@sha256:…`, if any.
pub fn digest_of(image: &str) -> Option<Digest> {
    image
        .rsplit_once('@')
        .and_then(|(_, digest)| Digest::parse(digest).ok())
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        match rest.split_once(']') {
            Some((v6, after)) => {
                if v6.is_empty() || !v6.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
                    return false;
                }
                match after {
                    "" => return true,
                    _ => match after.strip_prefix(':') {
                        Some(port) => ("", Some(port)),
                        None => return false,
                    },
                }
            }
            None => return false,
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    let host_ok = host.is_empty() && domain.starts_with('[')
        || (!host.is_empty() && host.split('.').all(valid_domain_component));
    port_ok && host_ok
}

fn valid_domain_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    !bytes.is_empty()
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
fn valid_path_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let lower_alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && lower_alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == bytes.len() {
            return true;
        }
        match bytes[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if bytes.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while bytes.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn digest() -> String {
        format!("sha256:{HEX}")
    }

    fn parts(input: &str) -> (String, String, Option<String>, Option<String>) {
        let r = ImageReference::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(ToString::to_string),
        )
    }

    #[test]
    fn docker_hub_official_image_gets_library_prefix() {
        assert_eq!(
            parts("nginx"),
            ("docker.io".into(), "library/nginx".into(), None, None)
        );
        assert_eq!(
            parts("nginx:1.27"),
            (
                "docker.io".into(),
                "library/nginx".into(),
                Some("1.27".into()),
                None
            )
        );
    }

    #[test]
    fn docker_hub_user_image_has_no_library_prefix() {
        assert_eq!(
            parts("acme/app:v1"),
            (
                "docker.io".into(),
                "acme/app".into(),
                Some("v1".into()),
                None
            )
        );
    }

    #[test]
    fn index_docker_io_is_docker_hub() {
        assert_eq!(parts("index.docker.io/nginx").1, "library/nginx");
        assert_eq!(parts("index.docker.io/nginx").0, "docker.io");
        assert_eq!(parts("docker.io/nginx").1, "library/nginx");
    }

    #[test]
    fn registry_with_port_is_not_a_tag() {
        assert_eq!(
            parts("localhost:5000/app"),
            ("localhost:5000".into(), "app".into(), None, None)
        );
        assert_eq!(
            parts("127.0.0.1:5000/team/app:stable"),
            (
                "127.0.0.1:5000".into(),
                "team/app".into(),
                Some("stable".into()),
                None
            )
        );
    }

    #[test]
    fn localhost_without_port_is_a_registry() {
        assert_eq!(parts("localhost/app").0, "localhost");
        assert_eq!(parts("localhost/app").1, "app");
    }

    #[test]
    fn ipv6_registry() {
        assert_eq!(
            parts("[::1]:5000/app:1"),
            ("[::1]:5000".into(), "app".into(), Some("1".into()), None)
        );
        assert_eq!(parts("[fe80::1]/app").0, "[fe80::1]");
    }

    #[test]
    fn nested_paths() {
        assert_eq!(
            parts("registry.example.com/a/b/c/trading-agent:stable").1,
            "a/b/c/trading-agent"
        );
    }

    #[test]
    fn uppercase_first_segment_is_a_domain() {
        assert_eq!(parts("MyRegistry/app").0, "MyRegistry");
    }

    #[test]
    fn tag_and_digest() {
        let input = format!("ghcr.io/acme/app:1.2@{}", digest());
        assert_eq!(
            parts(&input),
            (
                "ghcr.io".into(),
                "acme/app".into(),
                Some("1.2".into()),
                Some(digest())
            )
        );
    }

    #[test]
    fn digest_only() {
        let r = ImageReference::parse(&format!("ghcr.io/acme/app@{}", digest())).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.tag_to_resolve(), None);
        assert_eq!(r.digest().unwrap().as_str(), digest());
    }

    #[test]
    fn no_tag_means_latest() {
        assert_eq!(
            ImageReference::parse("ghcr.io/acme/app")
                .unwrap()
                .tag_to_resolve(),
            Some("latest")
        );
        assert_eq!(
            ImageReference::parse("ghcr.io/acme/app:v2")
                .unwrap()
                .tag_to_resolve(),
            Some("v2")
        );
    }

    #[test]
    fn separators_in_path_components() {
        for ok in ["a.b/c_d/e__f/g-h/i---j", "a0/b1.c2"] {
            ImageReference::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
    }

    #[test]
    fn refuses_bad_references() {
        let cases: &[(&str, Error)] = &[
            ("", Error::ReferenceEmpty),
            (":tag", Error::ReferenceEmpty),
            ("Nginx", Error::ReferenceUppercase("Nginx".into())),
            (
                "docker.io/Acme/app",
                Error::ReferenceUppercase("Acme/app".into()),
            ),
            ("acme//app", Error::ReferenceInvalidPathComponent("".into())),
            (
                "acme/-app",
                Error::ReferenceInvalidPathComponent("-app".into()),
            ),
            (
                "acme/app-",
                Error::ReferenceInvalidPathComponent("app-".into()),
            ),
            (
                "acme/a___b",
                Error::ReferenceInvalidPathComponent("a___b".into()),
            ),
            (
                "acme/a..b",
                Error::ReferenceInvalidPathComponent("a..b".into()),
            ),
            ("app:.bad", Error::ReferenceInvalidTag(".bad".into())),
            ("app:-bad", Error::ReferenceInvalidTag("-bad".into())),
            ("app:", Error::ReferenceInvalidTag("".into())),
            (
                "-bad.io/app",
                Error::ReferenceInvalidDomain("-bad.io".into()),
            ),
            (
                "host:port/app",
                Error::ReferenceInvalidDomain("host:port".into()),
            ),
            (
                "[zz::1]/app",
                Error::ReferenceInvalidDomain("[zz::1]".into()),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ImageReference::parse(input).as_ref(),
                Err(expected),
                "input {input:?}"
            );
        }
        let long_tag = format!("app:{}", "a".repeat(129));
        assert!(matches!(
            ImageReference::parse(&long_tag),
            Err(Error::ReferenceInvalidTag(_))
        ));
        let long_name = format!("registry.example.com/{}", "a".repeat(250));
        assert_eq!(
            ImageReference::parse(&long_name),
            Err(Error::ReferenceNameTooLong)
        );
    }

    #[test]
    fn refuses_bad_digests() {
        let short = "app@sha256:abc";
        assert!(matches!(
            ImageReference::parse(short),
            Err(Error::DigestMalformed(_))
        ));
        let sha512 = format!("app@sha512:{HEX}{HEX}");
        assert_eq!(
            ImageReference::parse(&sha512),
            Err(Error::DigestUnsupportedAlgorithm("sha512".into()))
        );
        let upper = format!("app@sha256:{}", HEX.to_uppercase());
        assert!(ImageReference::parse(&upper).is_err());
        assert!(Digest::parse(HEX).is_err());
    }

    #[test]
    fn display_is_fully_qualified() {
        let r = ImageReference::parse("nginx:1.27").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.27");
        assert_eq!(r.name(), "docker.io/library/nginx");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageReference::parse("localhost:5000/app").unwrap();
        assert_eq!(r.api_host(), "localhost:5000");
    }

    #[test]
    fn pinning_keeps_the_tag_and_adds_the_digest() {
        let r = ImageReference::parse("registry.example.com/acme/trading-agent:stable").unwrap();
        let pinned = r.pinned_to(Digest::parse(&digest()).unwrap());
        assert_eq!(
            pinned.image(),
            format!(
                "registry.example.com/acme/trading-agent:stable@{}",
                digest()
            )
        );
        assert_eq!(pinned.digest().as_str(), digest());
    }

    #[test]
    fn short_digest() {
        assert_eq!(
            Digest::parse(&digest()).unwrap().short(),
            "sha256:0123456789ab"
        );
    }

    #[test]
    fn digest_of_container_image() {
        assert_eq!(
            digest_of(&format!("a/b:c@{}", digest())).map(|d| d.to_string()),
            Some(digest())
        );
        assert_eq!(digest_of("a/b:c"), None);
    }
}
