//! The Helm chart `charts/trading-agent-operator`, checked with the project's own helm and
//! kubectl against the harness API server:
//!
//! - its `crds/` copy is byte-for-byte the repository's generated CRD;
//! - `helm lint --strict` is clean, and bad values fail `helm template` naming the value;
//! - what it renders is accepted by the API server (`kubectl apply --dry-run=server`), hardened,
//!   and grants only named groups, resources and verbs;
//! - after a real `helm install`, `kubectl auth can-i` shows no wildcard for its ServiceAccount and
//!   exactly the rights the operator needs; upgrade and uninstall work and leave nothing behind;
//! - the operator itself, run on the host as that ServiceAccount (kwok pods run no process),
//!   takes the Lease, reconciles a TradingAgent to Ready, publishes events and prunes a
//!   PodDisruptionBudget: the chart's RBAC is enough.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use trading_agent_operator::{Config, Operator};
use trading_agent_tests::cluster::{self, TestNamespace};

const CHART_NAME: &str = "trading-agent-operator";
const CRD_NAME: &str = "tradingagents.tradingagents.dev";
/// For offline rendering: any version the chart's `kubeVersion` accepts.
const OFFLINE_KUBE_VERSION: &str = "1.34.0";
const DIGEST: &str = "sha256:abababababababababababababababababababababababababababababababab";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

fn chart_dir() -> PathBuf {
    repo_root().join("charts").join(CHART_NAME)
}

/// helm and kubectl as built and cached by `tests/harness/build-tools.sh`.
fn tool(name: &str) -> PathBuf {
    let cache = std::env::var_os("TRADING_AGENT_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
                .join(".cache/trading-agent")
        });
    let path = cache.join("bin").join(name);
    assert!(
        path.exists(),
        "{} is missing: run `make tools` (tests/harness/build-tools.sh)",
        path.display()
    );
    path
}

/// What a finished command said.
#[derive(Debug)]
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Panics with the command's output unless it succeeded.
    fn expect_ok(self, what: &str) -> Self {
        assert!(
            self.ok,
            "{what} failed:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs helm or kubectl with the harness kubeconfig only (never `~/.kube/config`). Inside a
/// multi-threaded Tokio test the wait happens off the runtime's workers.
fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Ran {
    let exec = || {
        let mut command = Command::new(tool(program));
        command
            .args(args)
            .env("KUBECONFIG", cluster::kubeconfig_path())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {program}: {e}"));
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("piped stdin")
                .write_all(input.as_bytes())
                .expect("writing stdin");
        }
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for {program}: {e}"));
        Ran {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(_) => tokio::task::block_in_place(exec),
        Err(_) => exec(),
    }
}

fn helm(args: &[&str]) -> Ran {
    run("helm", args, None)
}

fn kubectl(args: &[&str]) -> Ran {
    run("kubectl", args, None)
}

/// `helm template` of the chart with `--set` values.
fn template(release: &str, namespace: &str, kube_version: &str, sets: &[&str]) -> Ran {
    let chart = chart_dir();
    let mut args = vec![
        "template",
        release,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
        "--kube-version",
        kube_version,
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    helm(&args)
}

/// The API server's version, for `helm template --kube-version`.
fn server_version() -> String {
    let version = kubectl(&["version", "-o", "json"])
        .expect_ok("kubectl version")
        .json();
    version["serverVersion"]["gitVersion"]
        .as_str()
        .expect("serverVersion.gitVersion")
        .trim_start_matches('v')
        .to_owned()
}

/// The repository's CRD, applied for real (server-side apply is idempotent), and established.
fn apply_crd() {
    let crd = repo_root().join("crds/tradingagents.yaml");
    kubectl(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        crd.to_str().expect("UTF-8 path"),
    ])
    .expect_ok("applying crds/tradingagents.yaml");
    kubectl(&[
        "wait",
        "--for=condition=Established",
        &format!("crd/{CRD_NAME}"),
        "--timeout=60s",
    ])
    .expect_ok("waiting for the CRD to be established");
}

/// Uninstalls releases and deletes namespaces when the test ends, passed or failed, so a
/// failure leaves no ClusterRole behind for the next run.
#[derive(Default)]
struct Cleanup {
    releases: Vec<(String, String)>,
    namespaces: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (release, namespace) in &self.releases {
            let _ = helm(&[
                "uninstall",
                release,
                "--namespace",
                namespace,
                "--ignore-not-found",
            ]);
        }
        for namespace in &self.namespaces {
            let _ = kubectl(&[
                "delete",
                "namespace",
                namespace,
                "--wait=false",
                "--ignore-not-found",
            ]);
        }
    }
}

async fn namespace(cleanup: &mut Cleanup, prefix: &str, restricted: bool) -> String {
    let client = cluster::client()
        .await
        .expect("the local cluster is up (make cluster-up)");
    let namespace = if restricted {
        TestNamespace::create_restricted(&client, prefix).await
    } else {
        TestNamespace::create(&client, prefix).await
    }
    .expect("creating a test namespace");
    cleanup.namespaces.push(namespace.name.clone());
    namespace.name
}

fn fullname(release: &str) -> String {
    format!("{release}-{CHART_NAME}")
}

fn service_account(release: &str, namespace: &str) -> String {
    format!("system:serviceaccount:{namespace}:{}", fullname(release))
}

fn helm_install(cleanup: &mut Cleanup, release: &str, namespace: &str, sets: &[&str]) {
    let chart = chart_dir();
    let mut args = vec![
        "install",
        release,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        namespace,
        "--wait=false",
    ];
    for set in sets {
        args.extend(["--set", set]);
    }
    cleanup
        .releases
        .push((release.to_owned(), namespace.to_owned()));
    helm(&args).expect_ok("helm install");
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule of RBAC objects as `(apiGroup/resource, resourceNames) -> verbs`, after asserting
/// that no rule uses a wildcard or a non-resource URL.
fn rules_of(objects: &[&Value]) -> BTreeMap<(String, Vec<String>), BTreeSet<String>> {
    let mut granted = BTreeMap::new();
    for object in objects {
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        for rule in object["rules"].as_array().expect("rules") {
            assert!(
                rule.get("nonResourceURLs").is_none(),
                "{name}: a non-resource URL rule {rule}"
            );
            let groups = strings(&rule["apiGroups"]);
            let resources = strings(&rule["resources"]);
            let verbs = strings(&rule["verbs"]);
            let names = strings(&rule["resourceNames"]);
            for field in [&groups, &resources, &verbs, &names] {
                assert!(
                    !field.iter().any(|v| v.contains('*')),
                    "{name}: wildcard in rule {rule}"
                );
            }
            assert!(
                !groups.is_empty() && !resources.is_empty() && !verbs.is_empty(),
                "{name}: incomplete rule {rule}"
            );
            for group in &groups {
                for resource in &resources {
                    let key = if group.is_empty() {
                        resource.clone()
                    } else {
                        format!("{group}/{resource}")
                    };
                    granted
                        .entry((key, names.clone()))
                        .or_insert_with(BTreeSet::new)
                        .extend(verbs.iter().cloned());
                }
            }
        }
    }
    granted
}

/// What the operator's code calls, and nothing more (`operator/src/reconcile/`, `operator/src/digest/`,
/// `operator/src/runtime/`, kube-runtime's event Recorder, kube-lease-manager).
fn expected_rules(
    lease_name: &str,
    webhook_slice: Option<&str>,
) -> BTreeMap<(String, Vec<String>), BTreeSet<String>> {
    let rule = |key: &str, names: &[&str], verbs: &[&str]| {
        (
            (
                key.to_owned(),
                names.iter().map(|n| (*n).to_owned()).collect(),
            ),
            verbs.iter().map(|v| (*v).to_owned()).collect(),
        )
    };
    let mut rules = BTreeMap::from([
        rule(
            "tradingagents.dev/tradingagents",
            &[],
            &["get", "list", "watch"],
        ),
        rule(
            "tradingagents.dev/tradingagents/status",
            &[],
            &["get", "patch"],
        ),
        rule(
            "tradingagents.dev/tradingagents/finalizers",
            &[],
            &["update"],
        ),
        rule(
            "apps/deployments",
            &[],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule(
            "services",
            &[],
            &["get", "list", "watch", "create", "patch"],
        ),
        rule(
            "policy/poddisruptionbudgets",
            &[],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule(
            "networking.k8s.io/networkpolicies",
            &[],
            &["get", "list", "watch", "create", "patch", "delete"],
        ),
        rule("secrets", &[], &["get"]),
        rule("pods", &[], &["get", "list", "watch"]),
        // The Backtest controller (operator/src/backtest/controller.rs).
        rule(
            "tradingagents.dev/backtests",
            &[],
            &["get", "list", "watch"],
        ),
        rule("tradingagents.dev/backtests/status", &[], &["get", "patch"]),
        rule("tradingagents.dev/backtests/finalizers", &[], &["update"]),
        rule("batch/jobs", &[], &["get", "list", "watch", "create"]),
        rule("events.k8s.io/events", &[], &["create", "patch"]),
        rule("coordination.k8s.io/leases", &[], &["create"]),
        rule(
            "coordination.k8s.io/leases",
            &[lease_name],
            &["get", "patch"],
        ),
    ]);
    // Only the leader receives webhook traffic: it writes its address into this one slice.
    if let Some(slice) = webhook_slice {
        rules.extend([rule(
            "discovery.k8s.io/endpointslices",
            &[slice],
            &["patch"],
        )]);
    }
    rules
}

/// Whether an RBAC object is one of the chart's aggregated roles for people (not the operator's).
fn is_aggregated(object: &Value) -> bool {
    object["metadata"]["labels"]
        .as_object()
        .is_some_and(|labels| {
            labels
                .keys()
                .any(|k| k.starts_with("rbac.authorization.k8s.io/aggregate-to-"))
        })
}

fn items_of_kind<'a>(list: &'a Value, kind: &str) -> Vec<&'a Value> {
    list["items"]
        .as_array()
        .map(|items| items.iter().filter(|i| i["kind"] == kind).collect())
        .unwrap_or_default()
}

#[test]
fn chart_crd_is_the_repository_crd() {
    for file in ["crds/tradingagents.yaml", "crds/backtests.yaml"] {
        let repository = repo_root().join(file);
        let chart = chart_dir().join(file);
        let expected = std::fs::read(&repository).expect("reading the repository's CRD");
        let actual = std::fs::read(&chart).expect("reading the chart's CRD");
        assert!(
            expected == actual,
            "{} differs from {}: run `make crd`",
            chart.display(),
            repository.display(),
        );
    }
}

#[test]
fn helm_lint_strict_is_clean() {
    let chart = chart_dir();
    let lint = helm(&["lint", "--strict", chart.to_str().expect("UTF-8 path")])
        .expect_ok("helm lint --strict");
    let output = format!("{}{}", lint.stdout, lint.stderr);
    assert!(
        !output.contains("[WARNING]") && !output.contains("[ERROR]"),
        "{output}"
    );
    assert!(
        output.contains("1 chart(s) linted, 0 chart(s) failed"),
        "{output}"
    );
}

#[test]
fn bad_values_fail_with_a_message_naming_the_value() {
    let cases: &[(&str, &[&str])] = &[
        ("replicaCount=0", &["/replicaCount", "minimum"]),
        ("replicaCount=two", &["/replicaCount"]),
        ("logFormat=xml", &["/logFormat", "'json', 'text'"]),
        ("image.digest=sha256:abc", &["/image/digest", "pattern"]),
        ("image.pullPolicy=Sometimes", &["/image/pullPolicy"]),
        ("replicasCount=2", &["'replicasCount' not allowed"]),
        (
            "resources.request.cpu=1",
            &["/resources", "'request' not allowed"],
        ),
        (
            "resources.limits.memory=lots",
            &["/resources/limits/memory"],
        ),
        ("metrics.port=70000", &["/metrics/port", "maximum"]),
        ("watchNamespace=Not_A_Namespace", &["/watchNamespace"]),
        (
            "replicaCount=2,leaderElection.enabled=false",
            &["leaderElection.enabled", "replicaCount"],
        ),
        (
            "leaderElection.leaseGraceSeconds=20",
            &[
                "leaderElection.leaseGraceSeconds",
                "leaderElection.leaseDurationSeconds",
            ],
        ),
        ("webhook.port=8080", &["webhook.port", "metrics.port"]),
        ("serviceAccount.create=false", &["serviceAccount.name"]),
    ];
    for (set, expected) in cases {
        let rendered = template("bad", "default", OFFLINE_KUBE_VERSION, &[set]);
        assert!(!rendered.ok, "--set {set} was accepted");
        for fragment in *expected {
            assert!(
                rendered.stderr.contains(fragment),
                "--set {set}: the error does not name {fragment:?}:\n{}",
                rendered.stderr
            );
        }
    }
}

#[test]
fn optional_objects_render_only_when_enabled() {
    let defaults = template("opt", "default", OFFLINE_KUBE_VERSION, &[])
        .expect_ok("helm template with defaults")
        .stdout;
    assert!(!defaults.contains("kind: ServiceMonitor"), "{defaults}");
    assert!(!defaults.contains("kind: NetworkPolicy"), "{defaults}");
    let enabled = template(
        "opt",
        "default",
        OFFLINE_KUBE_VERSION,
        &["serviceMonitor.enabled=true", "networkPolicy.enabled=true"],
    )
    .expect_ok("helm template with the optional objects")
    .stdout;
    assert!(enabled.contains("kind: ServiceMonitor"), "{enabled}");
    assert!(enabled.contains("kind: NetworkPolicy"), "{enabled}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rendered_chart_is_accepted_by_the_api_server_hardened_and_least_privilege() {
    let mut cleanup = Cleanup::default();
    let ns = namespace(&mut cleanup, "chart-render", true).await;
    apply_crd();
    let kube_version = server_version();
    let digest = format!("image.digest={DIGEST}");
    let watch = format!("watchNamespace={ns}");
    let variants: [(&str, Vec<&str>); 3] = [
        ("defaults", vec![]),
        (
            "two replicas, pinned image, network policy, webhook with TLS",
            vec![
                "replicaCount=2",
                &digest,
                "networkPolicy.enabled=true",
                "logFormat=text",
                "webhook.tokenSecret.name=hook-token",
                "webhook.tls.secretName=hook-tls",
            ],
        ),
        (
            "one namespace watched",
            vec![&watch, "webhook.enabled=false"],
        ),
    ];
    for (label, sets) in &variants {
        let rendered =
            template(&ns, &ns, &kube_version, sets).expect_ok(&format!("helm template ({label})"));
        let applied = run(
            "kubectl",
            &["apply", "--dry-run=server", "-o", "json", "-f", "-"],
            Some(&rendered.stdout),
        )
        .expect_ok(&format!("kubectl apply --dry-run=server ({label})"));
        assert!(
            !applied.stderr.contains("PodSecurity"),
            "{label}: the pod template violates Pod Security restricted: {}",
            applied.stderr
        );
        let list = applied.json();

        let deployments = items_of_kind(&list, "Deployment");
        assert_eq!(deployments.len(), 1, "{label}");
        let pod = &deployments[0]["spec"]["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{label}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{label}"
        );
        let container = &pod["containers"][0];
        let security = &container["securityContext"];
        assert_eq!(security["readOnlyRootFilesystem"], true, "{label}");
        assert_eq!(security["allowPrivilegeEscalation"], false, "{label}");
        assert_eq!(
            strings(&security["capabilities"]["drop"]),
            ["ALL"],
            "{label}"
        );
        for (probe, path) in [
            ("startupProbe", "/healthz"),
            ("livenessProbe", "/healthz"),
            ("readinessProbe", "/readyz"),
        ] {
            assert_eq!(container[probe]["httpGet"]["path"], path, "{label} {probe}");
            assert_eq!(
                container[probe]["httpGet"]["port"], "metrics",
                "{label} {probe}"
            );
        }
        assert!(
            container["resources"]["requests"]["memory"].is_string(),
            "{label}"
        );
        assert!(
            container["resources"]["limits"]["memory"].is_string(),
            "{label}"
        );
        let args = strings(&container["args"]);
        assert!(
            args.contains(&"--leader-election=true".to_owned()),
            "{label}: {args:?}"
        );
        let image = container["image"].as_str().unwrap_or_default();
        if sets.contains(&digest.as_str()) {
            assert_eq!(
                image,
                format!("ghcr.io/trading-agent/trading-agent-operator@{DIGEST}"),
                "{label}"
            );
            assert_eq!(deployments[0]["spec"]["replicas"], 2, "{label}");
            assert!(
                args.contains(&"--log-format=text".to_owned()),
                "{label}: {args:?}"
            );
            assert_eq!(items_of_kind(&list, "NetworkPolicy").len(), 1, "{label}");
        } else {
            assert!(image.ends_with(":0.1.0"), "{label}: {image}");
        }

        let services = items_of_kind(&list, "Service");
        let ports = |service: &Value| -> Vec<String> {
            service["spec"]["ports"]
                .as_array()
                .expect("ports")
                .iter()
                .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let slice = format!("{}-webhook", fullname(&ns));
        // The webhook is served only with a token; then its Service has no selector and its one
        // EndpointSlice starts empty (the leader writes its address there).
        let served = sets.contains(&"webhook.tokenSecret.name=hook-token");
        if served {
            assert_eq!(services.len(), 2, "{label}");
            assert_eq!(ports(services[0]), ["metrics"], "{label}");
            assert_eq!(services[1]["metadata"]["name"], slice.as_str(), "{label}");
            assert_eq!(ports(services[1]), ["webhook"], "{label}");
            assert!(services[1]["spec"].get("selector").is_none(), "{label}");
            let slices = items_of_kind(&list, "EndpointSlice");
            assert_eq!(slices.len(), 1, "{label}");
            assert_eq!(
                slices[0]["metadata"]["labels"]["kubernetes.io/service-name"],
                slice.as_str()
            );
            assert!(
                slices[0]["endpoints"].as_array().is_none_or(Vec::is_empty),
                "{label}"
            );
            assert!(
                args.contains(&format!("--webhook-endpoint-slice={slice}")),
                "{label}: {args:?}"
            );
            assert!(
                args.iter().any(|a| a.starts_with("--webhook-tls-cert=")),
                "{label}: {args:?}"
            );
            let volumes = pod["volumes"].as_array().expect("volumes");
            assert!(
                volumes
                    .iter()
                    .any(|v| v["secret"]["secretName"] == "hook-tls"),
                "{label}: {volumes:?}"
            );
        } else {
            assert_eq!(services.len(), 1, "{label}");
            assert_eq!(ports(services[0]), ["metrics"], "{label}");
            assert!(items_of_kind(&list, "EndpointSlice").is_empty(), "{label}");
        }

        let (aggregated, roles): (Vec<&Value>, Vec<&Value>) = items_of_kind(&list, "ClusterRole")
            .into_iter()
            .chain(items_of_kind(&list, "Role"))
            .partition(|r| is_aggregated(r));
        assert_eq!(
            rules_of(&roles),
            expected_rules(&fullname(&ns), served.then_some(slice.as_str())),
            "{label}: the chart grants exactly what the operator uses"
        );
        // The roles for people: view reads, edit (and admin) manage; neither writes the status.
        assert_eq!(aggregated.len(), 2, "{label}");
        let aggregated_rules = rules_of(&aggregated);
        assert_eq!(
            aggregated_rules
                .get(&("tradingagents.dev/tradingagents".to_owned(), vec![]))
                .map(|verbs| verbs.iter().map(String::as_str).collect::<Vec<_>>()),
            Some(vec![
                "create",
                "delete",
                "deletecollection",
                "get",
                "list",
                "patch",
                "update",
                "watch"
            ]),
            "{label}"
        );
        assert_eq!(
            aggregated_rules
                .get(&("tradingagents.dev/tradingagents/status".to_owned(), vec![]))
                .map(|verbs| verbs.iter().map(String::as_str).collect::<Vec<_>>()),
            Some(vec!["get", "list", "watch"]),
            "{label}"
        );
        if sets.contains(&watch.as_str()) {
            assert!(
                items_of_kind(&list, "ClusterRole")
                    .into_iter()
                    .all(is_aggregated),
                "{label}: no cluster-wide rights for the operator when one namespace is watched"
            );
            assert!(
                args.contains(&format!("--namespace={ns}")),
                "{label}: {args:?}"
            );
        } else {
            assert_eq!(
                items_of_kind(&list, "ClusterRoleBinding").len(),
                1,
                "{label}"
            );
        }
    }
}

/// `kubectl auth can-i <verb> <resource>` as the ServiceAccount.
fn can_i(subject: &str, namespace: &str, verb: &str, resource: &str, subresource: &str) -> bool {
    let mut args = vec![
        "auth",
        "can-i",
        verb,
        resource,
        "--as",
        subject,
        "--namespace",
        namespace,
    ];
    if !subresource.is_empty() {
        args.extend(["--subresource", subresource]);
    }
    let ran = kubectl(&args);
    match ran.stdout.trim() {
        "yes" => true,
        "no" => false,
        other => panic!(
            "kubectl auth can-i {verb} {resource}: {other:?} {}",
            ran.stderr
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_grants_no_wildcards_and_upgrade_and_uninstall_leave_nothing_behind() {
    let mut cleanup = Cleanup::default();
    let ns = namespace(&mut cleanup, "chart-install", true).await;
    let release = ns.clone();
    let name = fullname(&release);
    let subject = service_account(&release, &ns);
    apply_crd();

    let started = Instant::now();
    helm_install(&mut cleanup, &release, &ns, &[]);
    kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--namespace",
        &ns,
        "--timeout=90s",
    ])
    .expect_ok("the operator Deployment rolls out (its pod passes Pod Security restricted)");
    println!("installed and rolled out in {:?}", started.elapsed());

    // The rules as stored by the API server: named groups, resources and verbs only.
    let cluster_role = kubectl(&["get", "clusterrole", &name, "-o", "json"])
        .expect_ok("reading the ClusterRole")
        .json();
    let lease_role = kubectl(&[
        "get",
        "role",
        &format!("{name}-leader-election"),
        "--namespace",
        &ns,
        "-o",
        "json",
    ])
    .expect_ok("reading the leader-election Role")
    .json();
    assert_eq!(
        rules_of(&[&cluster_role, &lease_role]),
        expected_rules(&name, None)
    );
    let binding = kubectl(&["get", "clusterrolebinding", &name, "-o", "json"])
        .expect_ok("reading the ClusterRoleBinding")
        .json();
    assert_eq!(binding["roleRef"]["name"], name.as_str());
    assert_eq!(binding["subjects"][0]["kind"], "ServiceAccount");
    assert_eq!(binding["subjects"][0]["name"], name.as_str());
    assert_eq!(binding["subjects"][0]["namespace"], ns.as_str());

    // What the ServiceAccount can do, as the API server sees it: no wildcard verb or resource, in
    // the release namespace and in any other. (Non-resource URLs such as /api/* come from the
    // built-in discovery roles every identity has, not from the chart.)
    for namespace in [ns.as_str(), "default"] {
        let list = kubectl(&[
            "auth",
            "can-i",
            "--list",
            "--no-headers",
            "--as",
            &subject,
            "--namespace",
            namespace,
        ])
        .expect_ok("kubectl auth can-i --list");
        let mut resources = BTreeSet::new();
        for line in list.stdout.lines() {
            if line.trim().is_empty() || line.starts_with(char::is_whitespace) {
                continue; // a non-resource URL row
            }
            let resource = line.split_whitespace().next().unwrap_or_default();
            let verbs = line.rsplit('[').next().unwrap_or_default();
            assert!(
                !resource.contains('*') && !verbs.contains('*'),
                "wildcard granted in {namespace}: {line}"
            );
            resources.insert(resource.to_owned());
        }
        for expected in [
            "tradingagents.tradingagents.dev",
            "tradingagents.tradingagents.dev/status",
            "deployments.apps",
            "secrets",
            "events.events.k8s.io",
        ] {
            assert!(
                resources.contains(expected),
                "{namespace}: {expected} missing in\n{}",
                list.stdout
            );
        }
        // Pods are read (their containers' imageID is the digest each role runs), never written.
        assert!(!resources.contains("namespaces"), "{}", list.stdout);
        let pods = list
            .stdout
            .lines()
            .find(|l| l.split_whitespace().next() == Some("pods"))
            .unwrap_or_default();
        assert!(
            pods.is_empty() || pods.trim_end().ends_with("[get list watch]"),
            "pods may only be read: {pods}"
        );
    }
    let allowed = [
        ("patch", "tradingagents.tradingagents.dev", "status"),
        ("watch", "tradingagents.tradingagents.dev", ""),
        ("patch", "deployments.apps", ""),
        ("create", "deployments.apps", ""),
        ("delete", "poddisruptionbudgets.policy", ""),
        ("patch", "networkpolicies.networking.k8s.io", ""),
        ("get", "secrets", ""),
        ("create", "events.events.k8s.io", ""),
    ];
    for (verb, resource, sub) in allowed {
        assert!(
            can_i(&subject, "default", verb, resource, sub),
            "cannot {verb} {resource} {sub}"
        );
    }
    let lease = format!("leases.coordination.k8s.io/{name}");
    assert!(can_i(&subject, &ns, "patch", &lease, ""));
    assert!(can_i(
        &subject,
        &ns,
        "create",
        "leases.coordination.k8s.io",
        ""
    ));
    let denied = [
        ("default", "delete", "secrets"),
        ("default", "list", "secrets"),
        ("default", "create", "secrets"),
        ("default", "create", "namespaces"),
        ("default", "create", "pods"),
        ("default", "delete", "deployments.apps"),
        ("default", "delete", "tradingagents.tradingagents.dev"),
        ("default", "update", "tradingagents.tradingagents.dev"),
        (
            "default",
            "create",
            "clusterroles.rbac.authorization.k8s.io",
        ),
        ("default", "create", "leases.coordination.k8s.io"),
        ("default", "*", "*"),
        (
            ns.as_str(),
            "patch",
            "leases.coordination.k8s.io/another-operator",
        ),
        (ns.as_str(), "delete", lease.as_str()),
    ];
    for (namespace, verb, resource) in denied {
        assert!(
            !can_i(&subject, namespace, verb, resource, ""),
            "the chart grants {verb} {resource} in {namespace}"
        );
    }

    // People: the built-in view and edit roles cover TradingAgents (aggregated by the
    // controller-manager from the chart's labelled ClusterRoles). view only reads; edit manages;
    // neither writes the status, which is the operator's.
    const TA: &str = "tradingagents.tradingagents.dev";
    for (user, role) in [("alice", "view"), ("bob", "edit")] {
        kubectl(&[
            "create",
            "rolebinding",
            &format!("{user}-{role}"),
            "--clusterrole",
            role,
            "--user",
            user,
            "--namespace",
            &ns,
        ])
        .expect_ok("binding a built-in role");
    }
    eventually(
        "view and edit aggregate the TradingAgent rules",
        Duration::from_secs(30),
        || can_i("alice", &ns, "list", TA, "") && can_i("bob", &ns, "create", TA, ""),
    )
    .await;
    for (user, verb, sub, allowed) in [
        ("alice", "get", "", true),
        ("alice", "watch", "", true),
        ("alice", "get", "status", true),
        ("alice", "create", "", false),
        ("alice", "delete", "", false),
        ("bob", "update", "", true),
        ("bob", "delete", "", true),
        ("bob", "patch", "status", false),
    ] {
        assert_eq!(
            can_i(user, &ns, verb, TA, sub),
            allowed,
            "{user}: {verb} tradingagents {sub}"
        );
    }
    assert!(
        !can_i("bob", "default", "create", TA, ""),
        "only where bound"
    );

    // Upgrade with changed values.
    let chart = chart_dir();
    let started = Instant::now();
    helm(&[
        "upgrade",
        &release,
        chart.to_str().expect("UTF-8 path"),
        "--namespace",
        &ns,
        "--wait=false",
        "--set",
        "replicaCount=2",
        "--set",
        "logFormat=text",
        "--set",
        &format!("image.digest={DIGEST}"),
    ])
    .expect_ok("helm upgrade");
    kubectl(&[
        "rollout",
        "status",
        &format!("deployment/{name}"),
        "--namespace",
        &ns,
        "--timeout=90s",
    ])
    .expect_ok("the upgraded Deployment rolls out");
    println!("upgraded and rolled out in {:?}", started.elapsed());
    let deployment = kubectl(&["get", "deployment", &name, "--namespace", &ns, "-o", "json"])
        .expect_ok("reading the Deployment")
        .json();
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(deployment["status"]["readyReplicas"], 2);
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["image"],
        format!("ghcr.io/trading-agent/trading-agent-operator@{DIGEST}")
    );
    assert!(strings(&container["args"]).contains(&"--log-format=text".to_owned()));
    let status = helm(&["status", &release, "--namespace", &ns, "-o", "json"])
        .expect_ok("helm status")
        .json();
    assert_eq!(status["version"], 2);
    assert_eq!(status["info"]["status"], "deployed");

    // Uninstall: every object of the chart goes, the CRD stays (Helm never deletes crds/).
    helm(&["uninstall", &release, "--namespace", &ns, "--wait"]).expect_ok("helm uninstall");
    let left = kubectl(&[
        "get",
        "serviceaccounts,deployments,replicasets,services,roles,rolebindings,networkpolicies,secrets",
        "--namespace",
        &ns,
        "--selector",
        &format!("app.kubernetes.io/instance={release}"),
        "-o",
        "json",
    ])
    .expect_ok("listing what is left")
    .json();
    assert_eq!(left["items"].as_array().map(Vec::len), Some(0), "{left}");
    for kind in [
        "serviceaccount",
        "deployment",
        "service",
        "role",
        "rolebinding",
    ] {
        let object = if kind.starts_with("role") {
            format!("{kind}/{name}-leader-election")
        } else {
            format!("{kind}/{name}")
        };
        let get = kubectl(&[
            "get",
            &object,
            "--namespace",
            &ns,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        assert!(
            get.ok && get.stdout.trim().is_empty(),
            "{object} left: {get:?}"
        );
    }
    for object in [
        format!("clusterrole/{name}"),
        format!("clusterrolebinding/{name}"),
        format!("clusterrole/{name}-view"),
        format!("clusterrole/{name}-edit"),
    ] {
        let get = kubectl(&["get", &object, "--ignore-not-found", "-o", "name"]);
        assert!(
            get.ok && get.stdout.trim().is_empty(),
            "{object} left: {get:?}"
        );
    }
    let releases = kubectl(&[
        "get",
        "secrets",
        "--namespace",
        &ns,
        "--selector",
        &format!("owner=helm,name={release}"),
        "-o",
        "name",
    ])
    .expect_ok("listing Helm's release records");
    assert!(releases.stdout.trim().is_empty(), "{}", releases.stdout);
    kubectl(&["get", "crd", CRD_NAME]).expect_ok("the CRD stays after helm uninstall");
}

/// GET `path` on the operator's HTTP server; the status code.
async fn http_status(addr: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
        return 0;
    };
    let request = format!("GET {path} HTTP/1.1\r\nHost: operator\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).await.is_err() {
        return 0;
    }
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response).await;
    response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

async fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_runs_with_exactly_the_charts_rbac() {
    let mut cleanup = Cleanup::default();
    let ns = namespace(&mut cleanup, "chart-op", true).await;
    let desk = namespace(&mut cleanup, "chart-desk", false).await;
    let release = ns.clone();
    let name = fullname(&release);
    apply_crd();
    helm_install(&mut cleanup, &release, &ns, &[]);

    // The operator on the host, as the chart's ServiceAccount, configured as the chart's
    // Deployment configures it (Lease named like the release, in the release namespace). It
    // watches only the test's namespace so it never touches another test's TradingAgents.
    let mut config = cluster::config().await.expect("harness kubeconfig");
    config.auth_info.impersonate = Some(service_account(&release, &ns));
    let client = kube::Client::try_from(config).expect("impersonating client");
    let identity = format!("{ns}-host");
    let operator_config = Config {
        metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        lease_name: name.clone(),
        namespace: Some(desk.clone()),
        ..Config::new(identity.clone(), ns.clone())
    };
    let operator = Operator::bind(operator_config).await.expect("binding");
    let addr = operator.local_addr().expect("address");
    // The cancellation token's type comes from `Operator::run` (tokio-util's CancellationToken,
    // not a dependency of this crate): built by Default, kept by Clone.
    let shutdown = Default::default();
    let running = tokio::spawn(operator.run(client, Clone::clone(&shutdown)));

    kubectl(&[
        "create",
        "secret",
        "generic",
        "desk-db",
        "--namespace",
        &desk,
        "--from-literal=url=postgres://trader:secret@127.0.0.1:5432/desk",
    ])
    .expect_ok("creating the database Secret");
    let agent = format!(
        r#"{{
  "apiVersion": "tradingagents.dev/v1alpha1",
  "kind": "TradingAgent",
  "metadata": {{"name": "alpha", "namespace": "{desk}"}},
  "spec": {{
    "image": "127.0.0.1:5000/acme/trading-agent@{DIGEST}",
    "database": {{"secretRef": {{"name": "desk-db", "key": "url"}}}},
    "api": {{"replicas": 2}}
  }}
}}"#
    );
    let started = Instant::now();
    run("kubectl", &["apply", "-f", "-"], Some(&agent)).expect_ok("applying a TradingAgent");
    kubectl(&[
        "wait",
        "--for=condition=Ready",
        "ta/alpha",
        "--namespace",
        &desk,
        "--timeout=120s",
    ])
    .expect_ok("the TradingAgent becomes Ready under the chart's RBAC");
    println!("TradingAgent Ready in {:?}", started.elapsed());

    for object in [
        "deployment/alpha-api",
        "deployment/alpha-bot",
        "deployment/alpha-strategy",
        "service/alpha-api",
        "poddisruptionbudget/alpha-api",
    ] {
        kubectl(&["get", object, "--namespace", &desk]).expect_ok(object);
    }
    let lease = kubectl(&["get", "lease", &name, "--namespace", &ns, "-o", "json"])
        .expect_ok("reading the leader Lease")
        .json();
    assert_eq!(lease["spec"]["holderIdentity"], identity.as_str());
    assert_eq!(
        http_status(addr, "/readyz").await,
        200,
        "leader with synced caches"
    );
    assert_eq!(http_status(addr, "/healthz").await, 200);

    eventually(
        "events published by the operator",
        Duration::from_secs(20),
        || {
            let events = kubectl(&[
                "get",
                "events.events.k8s.io",
                "--namespace",
                &desk,
                "-o",
                "json",
            ])
            .expect_ok("listing events")
            .json();
            events["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| {
                    e["reportingController"] == "trading-agent-operator"
                        && e["regarding"]["name"] == "alpha"
                })
            })
        },
    )
    .await;

    // One api replica: the operator deletes the PodDisruptionBudget it no longer wants.
    kubectl(&[
        "patch",
        "ta/alpha",
        "--namespace",
        &desk,
        "--type=merge",
        "-p",
        r#"{"spec":{"api":{"replicas":1}}}"#,
    ])
    .expect_ok("scaling the api down");
    eventually(
        "PodDisruptionBudget removed",
        Duration::from_secs(30),
        || {
            let get = kubectl(&[
                "get",
                "poddisruptionbudget/alpha-api",
                "--namespace",
                &desk,
                "--ignore-not-found",
                "-o",
                "name",
            ]);
            get.ok && get.stdout.trim().is_empty()
        },
    )
    .await;

    shutdown.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("the operator stops within 30 s")
        .expect("the operator task");
    assert!(outcome.is_ok(), "operator: {outcome:?}");
}

/// Only the leader receives webhook traffic. Two operators run on the host as the chart's
/// ServiceAccount (so the chart's Role must let the leader patch the webhook EndpointSlice), each
/// serving the webhook on its own loopback address with the chart's port, as two pods would. The
/// test routes each push as kube-proxy would: to a ready endpoint of the webhook Service's
/// EndpointSlice, picked at random. The API server refuses loopback addresses in an
/// EndpointSlice, so each replica publishes a "pod IP" from TEST-NET-1 (192.0.2.N) and the test
/// delivers what is routed there to 127.0.0.N, as a pod network would to the pod. Figures: the share of pushes handled (202) at the first try
/// with this design, the same share if traffic were spread over both replicas as a selector
/// Service does, and what a graceful leader change costs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_receives_webhook_pushes() {
    use k8s_openapi::api::discovery::v1::EndpointSlice;
    use trading_agent_operator::WebhookToken;
    use trading_agent_operator::runtime::endpoint::WebhookEndpoint;

    const PUSHES: usize = 200;
    const TOKEN: &str = "leader-only-token-0123456789";
    let mut cleanup = Cleanup::default();
    let ns = namespace(&mut cleanup, "chart-hook", true).await;
    let release = ns.clone();
    let name = fullname(&release);
    let slice_name = format!("{name}-webhook");
    apply_crd();
    kubectl(&[
        "create",
        "secret",
        "generic",
        "hook-token",
        "--namespace",
        &ns,
        &format!("--from-literal=token={TOKEN}"),
    ])
    .expect_ok("creating the token Secret");
    helm_install(
        &mut cleanup,
        &release,
        &ns,
        &["webhook.tokenSecret.name=hook-token"],
    );
    let subject = service_account(&release, &ns);
    let slice_resource = format!("endpointslices.discovery.k8s.io/{slice_name}");
    assert!(can_i(&subject, &ns, "patch", &slice_resource, ""));
    for (verb, resource) in [
        ("patch", "endpointslices.discovery.k8s.io/another-slice"),
        ("create", "endpointslices.discovery.k8s.io"),
        ("patch", "pods"),
        ("update", "pods"),
    ] {
        assert!(
            !can_i(&subject, &ns, verb, resource, ""),
            "the chart grants {verb} {resource} in the release namespace"
        );
    }

    let admin = cluster::client().await.expect("cluster client");
    let slices: kube::Api<EndpointSlice> = kube::Api::namespaced(admin, &ns);
    let port = trading_agent_tests::process::free_loopback_port().expect("port");
    let start = |n: u8| {
        let (ns, name, slice_name) = (ns.clone(), name.clone(), slice_name.clone());
        async move {
            let mut config = cluster::config().await.expect("harness kubeconfig");
            config.auth_info.impersonate = Some(service_account(&ns, &ns));
            let client = kube::Client::try_from(config).expect("impersonating client");
            let operator_config = Config {
                metrics_addr: SocketAddr::from(([127, 0, 0, n], 0)),
                lease_name: name.clone(),
                namespace: Some(ns.clone()),
                webhook_addr: Some(SocketAddr::from(([127, 0, 0, n], port))),
                webhook_token: Some(WebhookToken(TOKEN.to_owned())),
                webhook_endpoint: Some(WebhookEndpoint {
                    namespace: ns.clone(),
                    slice: slice_name,
                    address: std::net::IpAddr::from([192, 0, 2, n]),
                    pod: Some(format!("{name}-replica-{n}")),
                }),
                ..Config::new(format!("{ns}-replica-{n}"), ns.clone())
            };
            let operator = Operator::bind(operator_config).await.expect("binding");
            let shutdown = tokio_util::sync::CancellationToken::new();
            let running = tokio::spawn(operator.run(client, Clone::clone(&shutdown)));
            (shutdown, running)
        }
    };
    let replicas = [start(2).await, start(3).await];
    let addresses = ["192.0.2.2", "192.0.2.3"];

    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("HTTP client");
    let body = r#"{"repository":"acme/agent","tag":"stable"}"#;
    // The "pod network": what is routed to 192.0.2.N is delivered to 127.0.0.N.
    let push = |address: String| {
        let host = address.replace("192.0.2.", "127.0.0.");
        let request = http
            .post(format!("http://{host}:{port}/registry/notifications"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(body);
        async move {
            match request.send().await {
                Ok(response) => response.status().as_u16(),
                Err(_) => 0,
            }
        }
    };
    let ready_endpoints = || {
        let slices = slices.clone();
        let slice_name = slice_name.clone();
        async move {
            let slice = slices.get(&slice_name).await.expect("reading the slice");
            slice
                .endpoints
                .iter()
                .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) != Some(false))
                .flat_map(|e| e.addresses.clone())
                .collect::<Vec<String>>()
        }
    };
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64 ^ u64::from(port);
    let mut pick = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n as u64) as usize
    };

    // A leader is elected and routes the Service to itself.
    let started = Instant::now();
    let mut routed = Vec::new();
    while started.elapsed() < Duration::from_secs(60) {
        routed = ready_endpoints().await;
        if !routed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(routed.len(), 1, "exactly the leader is routed: {routed:?}");
    println!(
        "webhook routed to the leader {} {} ms after both replicas started",
        routed[0],
        started.elapsed().as_millis()
    );

    // Steady state, as kube-proxy routes it: every push reaches the leader at the first try.
    let mut first_try = 0;
    for _ in 0..PUSHES {
        let endpoints = ready_endpoints().await;
        if endpoints.is_empty() {
            continue;
        }
        let chosen = endpoints[pick(endpoints.len())].clone();
        if push(chosen).await == 202 {
            first_try += 1;
        }
    }
    // The same pushes spread over both replicas, as a Service selecting every operator pod does.
    let mut spread_first_try = 0;
    for _ in 0..PUSHES {
        if push(addresses[pick(2)].to_owned()).await == 202 {
            spread_first_try += 1;
        }
    }
    println!(
        "2 replicas, {PUSHES} pushes each: first-try success {first_try}/{PUSHES} ({:.1} %) routed to the leader; {spread_first_try}/{PUSHES} ({:.1} %) spread over both replicas",
        100.0 * first_try as f64 / PUSHES as f64,
        100.0 * spread_first_try as f64 / PUSHES as f64
    );
    assert_eq!(
        first_try, PUSHES,
        "every push reaches the leader at the first try"
    );
    assert!(spread_first_try < PUSHES, "a standby answers 503");

    // A graceful leader change: the leader withdraws its address and releases the Lease; the
    // standby takes over and routes the Service to itself.
    let leader = addresses
        .iter()
        .position(|a| *a == routed[0])
        .expect("the routed address is a replica");
    let standby = 1 - leader;
    let [first, second] = replicas;
    let (leaving, staying) = if leader == 0 {
        (first, second)
    } else {
        (second, first)
    };
    let stopped = Instant::now();
    leaving.0.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), leaving.1)
        .await
        .expect("the leader stops within 30 s")
        .expect("the operator task");
    assert!(outcome.is_ok(), "operator: {outcome:?}");
    let (mut attempts, mut failed) = (0, 0);
    let took_over = loop {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "the standby never took over"
        );
        attempts += 1;
        let endpoints = ready_endpoints().await;
        if let Some(address) = endpoints.first()
            && push(address.clone()).await == 202
        {
            break stopped.elapsed();
        }
        failed += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(ready_endpoints().await, [addresses[standby]]);
    println!(
        "graceful leader change: the new leader handled a push {} ms after the old one was told to stop ({failed} of {attempts} pushes, one per 100 ms, found no routed leader meanwhile; a registry retries them)",
        took_over.as_millis()
    );

    staying.0.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(30), staying.1)
        .await
        .expect("the operator stops within 30 s")
        .expect("the operator task");
    assert!(outcome.is_ok(), "operator: {outcome:?}");
    assert!(
        ready_endpoints().await.is_empty(),
        "the last leader withdrew its address"
    );
}
