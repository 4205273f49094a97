//! The API fuzzed against its own OpenAPI document by schemathesis (installed by `make pydeps`):
//! thousands of generated requests, valid and invalid, against a real PostgreSQL. Bad input must
//! never produce a 5xx, and every answer must match the document (status, content type, schema).

mod common;

use std::process::Command;
use std::time::Duration;

fn schemathesis() -> std::path::PathBuf {
    let cache = std::env::var_os("TRADING_AGENT_CACHE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME"))
                .join(".cache/trading-agent")
        });
    cache.join("venv/bin/schemathesis")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_get_a_server_error_and_match_the_document() {
    let binary = schemathesis();
    assert!(
        binary.exists(),
        "{} missing: run `make pydeps` (make test does)",
        binary.display()
    );
    let db = common::database("fuzz").await;
    let api = common::TestApi::start(&db.url).await;
    let schema = api.url("/openapi.json");
    let started = std::time::Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(binary)
            .args(["run", &schema, "--header", &format!("Authorization: Bearer {}", common::TOKEN)])
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            ])
            .args(["--max-examples", "40", "--max-time", "45", "--no-color"])
            // The live stream never ends by itself; tests/dashboard.rs covers it.
            .args(["--exclude-path", "/api/v2/stream"])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("schemathesis runs")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    let tail: String = report
        .lines()
        .rev()
        .take(40)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    println!("schemathesis finished in {:?}\n{tail}", started.elapsed());
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(started.elapsed() < Duration::from_secs(600));
}
