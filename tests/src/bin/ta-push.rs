//! `ta-push`: pushes a small synthetic OCI image (or a multi-arch index) to a registry over the
//! distribution API and prints its digest. The demo and the suites use it to push images whose
//! digest depends only on the marker, e.g. the harness's "never ready" image (marker `never-ready`,
//! see tests/harness/kwok/stages.yaml).
//!
//!   ta-push 127.0.0.1:25000 acme/trading-agent stable never-ready [--index]

use std::process::ExitCode;

use trading_agent_tests::registry::Pusher;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let index = args.iter().any(|a| a == "--index");
    let positional: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [host, repository, tag, marker] = positional.as_slice() else {
        eprintln!("usage: ta-push HOST REPOSITORY TAG MARKER [--index]");
        return ExitCode::from(2);
    };
    let pusher = Pusher::new(host);
    let pushed = if index {
        pusher.push_index(repository, tag, marker).await
    } else {
        pusher.push_image(repository, tag, marker).await
    };
    match pushed {
        Ok(digest) => {
            println!("{digest}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ta-push: {e}");
            ExitCode::FAILURE
        }
    }
}
