//! The golden path of product.md §5, end to end, exactly as `make demo` shows it to a person: this
//! suite runs `scripts/demo.sh` on the local stack with its own namespaces, ports and state, and
//! checks what it reports. Each step's elapsed time is printed.
//!
//! Stack up, images built without a daemon and pushed, `helm install` of the operator, a
//! TradingAgent Ready on the pushed digest, a notified push and a silent push rolled out, a
//! never-ready image rolled back (rejected, Degraded), the workloads on PostgreSQL, and the
//! TradingAgent deleted with its children.
//!
//! With `NODE=real` (`make test`'s default) all of it runs on the harness's real kubelet node: the
//! operator in its own pod, real pods whose `imageID` and `/healthz` name each pushed digest, and a
//! real bad image (its server on the pod's loopback, so the probes fail). With `NODE=kwok` the
//! operator runs on the host as the chart's ServiceAccount and the workloads as host processes.

use std::process::Command;

use trading_agent_tests::cluster::unique_name;
use trading_agent_tests::process::free_loopback_port;

#[test]
fn golden_path_as_make_demo_shows_it() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repository root")
        .to_owned();
    let state = tempfile::Builder::new()
        .prefix("ta-golden-")
        .tempdir()
        .unwrap();
    let namespace = unique_name("golden");
    let mut command = Command::new(root.join("scripts/demo.sh"));
    command
        .current_dir(&root)
        .env("DEMO_CLEANUP", "1")
        .env("DEMO_STATE", state.path())
        .env("DEMO_NAMESPACE", &namespace)
        .env("DEMO_RELEASE_NAMESPACE", format!("{namespace}-system"))
        .env("DEMO_PG_DIR", state.path().join("postgres"));
    for var in [
        "DEMO_REGISTRY_PORT",
        "DEMO_QUIET_REGISTRY_PORT",
        "DEMO_WEBHOOK_PORT",
        "DEMO_METRICS_PORT",
        "DEMO_PG_PORT",
    ] {
        command.env(var, free_loopback_port().unwrap().to_string());
    }
    // The api, strategy and bot take three consecutive ports.
    let api_port = loop {
        let port = free_loopback_port().unwrap();
        if (1..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            break port;
        }
    };
    command.env("DEMO_API_PORT", api_port.to_string());
    // PostgreSQL runs as the postgres user when we are root: its directory must be reachable.
    std::fs::create_dir_all(state.path().join("postgres")).unwrap();
    let _ = Command::new("chmod").arg("755").arg(state.path()).status();

    let output = command.output().expect("scripts/demo.sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "the golden path failed:\n{stdout}\n{stderr}"
    );

    let real_node = std::env::var("NODE").map_or(true, |mode| mode != "kwok");
    let on_real_node: &[&str] = if real_node {
        &[
            "operator ready in its pod",
            "real-node-0",
            "/healthz of an api pod",
            "every pod serving sha256:",
            "(pulled, started, ready, /healthz)",
            "BIND_ADDRESS=127.0.0.1",
            "the previous digest's pods serve again",
            "the api pods through their Service",
        ]
    } else {
        &["kwok keeps its pods unready"]
    };
    for expected in on_real_node.iter().copied().chain([
        "condition met",
        "all three Deployments re-pinned",
        "polling is off, interval 0s",
        "found by polling (interval 2s) and re-pinned",
        "rolled back to sha256:",
        "Degraded: True (RolledBack)",
        "RolledBack",
        "No resources found",
        "golden path complete",
        "cleaning up on exit",
    ]) {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in the golden path's report:\n{stdout}"
        );
    }
    // Trades made from strategy signals on the seeded candles, not forced by hand.
    let trades = stdout
        .lines()
        .find_map(|l| l.split("trades from strategy signals: ").nth(1))
        .and_then(|n| n.trim().parse::<u32>().ok());
    assert!(
        trades.is_some_and(|n| n > 0),
        "no paper trade from a strategy signal reported:\n{stdout}"
    );
    assert!(
        !stdout.contains("force-enter"),
        "the golden path must not force its trades:\n{stdout}"
    );
    let steps: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("==> [") || l.contains("step took"))
        .collect();
    assert_eq!(
        steps.len(),
        16,
        "eight steps, each timed:\n{}",
        steps.join("\n")
    );
}
