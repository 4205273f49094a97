//! The digest resolver against a real CNCF Distribution registry (Debian's `docker-registry`):
//! anonymous, Basic and Bearer-token auth, multi-arch indexes, the GET-and-hash fallback, 429 with
//! `Retry-After`, a registry that goes down and comes back, and request coalescing. Faults are
//! injected by a proxy in front of the real registry; the registry itself is never mocked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use trading_agent_operator::Error;
use trading_agent_operator::digest::ImageReference;
use trading_agent_operator::digest::{
    Credentials, Freshness, RegistryClient, RegistryClientConfig, TagResolver,
};
use trading_agent_tests::proxy::{Fault, FaultProxy};
use trading_agent_tests::registry::{Pusher, RegistryOptions, TempRegistry};
use trading_agent_tests::token_issuer::TokenIssuer;

fn resolver_for(hosts: &[&str]) -> TagResolver {
    let config = RegistryClientConfig {
        insecure_hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        request_timeout: Duration::from_secs(3),
    };
    TagResolver::new(RegistryClient::new(config).expect("client"))
}

fn image(host: &str, path: &str) -> ImageReference {
    ImageReference::parse(&format!("{host}/{path}")).expect("valid reference")
}

fn fresh() -> Freshness {
    Freshness::StartedAfter(Instant::now())
}

fn credentials(user: &str, password: &str) -> Credentials {
    Credentials::basic(user, password)
}

#[tokio::test]
async fn anonymous_tag_resolves_to_the_pushed_digest_and_follows_a_new_push() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pusher = Pusher::new(&registry.host());
    let resolver = resolver_for(&[&registry.host()]);
    let reference = image(&registry.host(), "acme/trading-agent:stable");

    let first = pusher
        .push_image("acme/trading-agent", "stable", "v1")
        .await
        .unwrap();
    let resolved = resolver
        .resolve(&reference, "stable", None, fresh())
        .await
        .unwrap();
    assert_eq!(resolved.as_str(), first);

    let second = pusher
        .push_image("acme/trading-agent", "stable", "v2")
        .await
        .unwrap();
    let resolved = resolver
        .resolve(&reference, "stable", None, fresh())
        .await
        .unwrap();
    assert_eq!(
        resolved.as_str(),
        second,
        "a new push under the same tag is seen"
    );

    let missing = resolver
        .resolve(&reference, "nope", None, fresh())
        .await
        .unwrap_err();
    assert_eq!(missing.reason(), "TagNotFound", "{missing}");
}

#[tokio::test]
async fn a_multi_arch_index_is_pinned_by_its_index_digest() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let index = Pusher::new(&registry.host())
        .push_index("acme/multi", "v1", "m")
        .await
        .unwrap();
    let resolver = resolver_for(&[&registry.host()]);
    let resolved = resolver
        .resolve(
            &image(&registry.host(), "acme/multi:v1"),
            "v1",
            None,
            fresh(),
        )
        .await
        .unwrap();
    assert_eq!(resolved.as_str(), index);
}

#[tokio::test]
async fn without_the_digest_header_the_manifest_is_fetched_and_hashed() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pushed = Pusher::new(&registry.host())
        .push_index("acme/app", "v1", "x")
        .await
        .unwrap();
    let proxy = FaultProxy::start(&registry.host()).await.unwrap();
    proxy.set_fault(Fault::StripDigestHeader);
    let resolver = resolver_for(&[&proxy.host()]);
    let resolved = resolver
        .resolve(&image(&proxy.host(), "acme/app:v1"), "v1", None, fresh())
        .await
        .unwrap();
    assert_eq!(resolved.as_str(), pushed);
    let methods: Vec<String> = proxy
        .manifest_requests()
        .into_iter()
        .map(|r| r.method)
        .collect();
    assert_eq!(methods, ["HEAD", "GET"]);
}

#[tokio::test]
async fn basic_auth_works_with_the_right_secret_and_fails_clearly_without() {
    let registry = TempRegistry::start(RegistryOptions {
        basic_auth: Some(("ci".into(), "right".into())),
        ..Default::default()
    })
    .unwrap();
    let pushed = Pusher::new(&registry.host())
        .with_basic_auth("ci", "right")
        .push_image("private/app", "v1", "p")
        .await
        .unwrap();
    let resolver = resolver_for(&[&registry.host()]);
    let reference = image(&registry.host(), "private/app:v1");

    let right = credentials("ci", "right");
    assert_eq!(
        resolver
            .resolve(&reference, "v1", Some(&right), fresh())
            .await
            .unwrap()
            .as_str(),
        pushed
    );

    let wrong = credentials("ci", "wrong");
    let refused = resolver
        .resolve(&reference, "v1", Some(&wrong), fresh())
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "RegistryUnauthorized");
    assert!(
        refused.to_string().contains("refused the credentials"),
        "{refused}"
    );

    let anonymous = resolver
        .resolve(&reference, "v1", None, fresh())
        .await
        .unwrap_err();
    assert_eq!(anonymous.reason(), "RegistryUnauthorized");
    assert!(
        anonymous.to_string().contains("imagePullSecret"),
        "tells the user what to add: {anonymous}"
    );
}

#[tokio::test]
async fn bearer_token_flow_with_the_registrys_token_auth() {
    // Push through an open registry, resolve through one that shares its storage and wants tokens.
    let open = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pushed = Pusher::new(&open.host())
        .push_image("private/app", "v1", "t")
        .await
        .unwrap();
    let issuer = TokenIssuer::start("robot", "token-pw").await.unwrap();
    let registry = TempRegistry::start(RegistryOptions {
        auth_yaml: Some(issuer.registry_auth_yaml()),
        storage_dir: Some(open.storage_dir()),
        ..Default::default()
    })
    .unwrap();
    // The realm is plain http: followed only because its host is on the insecure list too.
    let resolver = resolver_for(&[&registry.host(), &issuer.host()]);
    let reference = image(&registry.host(), "private/app:v1");

    let right = credentials("robot", "token-pw");
    let resolved = resolver
        .resolve(&reference, "v1", Some(&right), fresh())
        .await
        .unwrap();
    assert_eq!(
        resolved.as_str(),
        pushed,
        "registry log:\n{}",
        registry.log()
    );
    assert_eq!(issuer.issued(), 1);

    // The token is cached by scope until it expires: a second lookup fetches no new token.
    resolver
        .resolve(&reference, "v1", Some(&right), fresh())
        .await
        .unwrap();
    assert_eq!(issuer.issued(), 1, "token reused");

    let refused = resolver
        .resolve(
            &reference,
            "v1",
            Some(&credentials("robot", "bad")),
            fresh(),
        )
        .await
        .unwrap_err();
    assert_eq!(refused.reason(), "RegistryUnauthorized");
    assert!(refused.to_string().contains("token service"), "{refused}");
}

#[tokio::test]
async fn rate_limit_retry_after_is_honoured_before_any_new_request() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pushed = Pusher::new(&registry.host())
        .push_image("acme/app", "v1", "r")
        .await
        .unwrap();
    let proxy = FaultProxy::start(&registry.host()).await.unwrap();
    proxy.set_fault(Fault::RateLimit {
        retry_after_secs: 2,
        times: 1,
    });
    let resolver = resolver_for(&[&proxy.host()]);
    let reference = image(&proxy.host(), "acme/app:v1");

    let limited = resolver
        .resolve(&reference, "v1", None, fresh())
        .await
        .unwrap_err();
    assert!(
        matches!(limited, Error::RegistryRateLimited { .. }),
        "{limited}"
    );
    let limited_at = Instant::now();
    // Asking again at once (fresh) sends nothing: the host is backing off.
    let again = resolver
        .resolve(&reference, "v1", None, fresh())
        .await
        .unwrap_err();
    assert_eq!(again.reason(), "RegistryRateLimited");
    assert_eq!(proxy.manifest_requests().len(), 1);

    let resolved = loop {
        match resolver.resolve(&reference, "v1", None, fresh()).await {
            Ok(digest) => break digest,
            Err(Error::RegistryRateLimited { .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(other) => panic!("{other}"),
        }
    };
    assert_eq!(resolved.as_str(), pushed);
    let requests = proxy.manifest_requests();
    assert_eq!(requests.len(), 2, "exactly one request after the back-off");
    let waited = requests[1].at.duration_since(requests[0].at);
    assert!(
        waited >= Duration::from_secs(2),
        "second request only after Retry-After, waited {waited:?}"
    );
    println!(
        "429 Retry-After: 2 s honoured; next request after {waited:?} ({:?} after the error)",
        requests[1].at - limited_at
    );
}

#[tokio::test]
async fn registry_down_is_reported_and_recovery_is_automatic() {
    let mut registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pushed = Pusher::new(&registry.host())
        .push_image("acme/app", "v1", "d")
        .await
        .unwrap();
    let resolver = resolver_for(&[&registry.host()]);
    let reference = image(&registry.host(), "acme/app:v1");

    registry.stop();
    let down = resolver
        .resolve(&reference, "v1", None, fresh())
        .await
        .unwrap_err();
    assert_eq!(down.reason(), "RegistryUnreachable", "{down}");
    assert!(
        down.to_string().contains(&registry.host()),
        "names the host: {down}"
    );

    registry.restart().unwrap();
    assert_eq!(
        resolver
            .resolve(&reference, "v1", None, fresh())
            .await
            .unwrap()
            .as_str(),
        pushed
    );
}

#[tokio::test]
async fn plain_http_is_refused_for_hosts_not_marked_insecure() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    Pusher::new(&registry.host())
        .push_image("acme/app", "v1", "h")
        .await
        .unwrap();
    let resolver = resolver_for(&[]);
    let err = resolver
        .resolve(&image(&registry.host(), "acme/app:v1"), "v1", None, fresh())
        .await
        .unwrap_err();
    assert_eq!(
        err.reason(),
        "RegistryUnreachable",
        "HTTPS to a plain-HTTP registry fails: {err}"
    );
}

#[tokio::test]
async fn fifty_concurrent_lookups_of_one_image_cost_one_registry_request() {
    let registry = TempRegistry::start(RegistryOptions::default()).unwrap();
    let pushed = Pusher::new(&registry.host())
        .push_image("acme/app", "stable", "c")
        .await
        .unwrap();
    let proxy = FaultProxy::start(&registry.host()).await.unwrap();
    let resolver = Arc::new(resolver_for(&[&proxy.host()]));
    let reference = image(&proxy.host(), "acme/app:stable");
    let notified = fresh();
    let lookups = (0..50).map(|_| {
        let (resolver, reference) = (resolver.clone(), reference.clone());
        tokio::spawn(async move { resolver.resolve(&reference, "stable", None, notified).await })
    });
    for lookup in futures::future::join_all(lookups).await {
        assert_eq!(lookup.unwrap().unwrap().as_str(), pushed);
    }
    assert_eq!(proxy.manifest_requests().len(), 1);

    // Polling: within the interval the cached answer is used; after it, one new request.
    resolver
        .resolve(
            &reference,
            "stable",
            None,
            Freshness::MaxAge(Duration::from_secs(60)),
        )
        .await
        .unwrap();
    assert_eq!(proxy.manifest_requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    resolver
        .resolve(
            &reference,
            "stable",
            None,
            Freshness::MaxAge(Duration::from_millis(200)),
        )
        .await
        .unwrap();
    assert_eq!(proxy.manifest_requests().len(), 2);
}
