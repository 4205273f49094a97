//! Builds the dashboard (`api/dashboard/`, TypeScript + vite) and embeds it: the compiled files go
//! to `$OUT_DIR/dashboard`, and `$OUT_DIR/dashboard_assets.rs` lists them for `include_bytes!`, so
//! the binary serves the dashboard with no files beside it and no network at run time.
//!
//! `npm ci` runs when `node_modules` is missing or older than `package-lock.json` (exact versions
//! from the lock file, nothing else); `npm run build` runs whenever cargo reruns this script, that
//! is when a front-end source, the lock file or `TRADING_AGENT_DASHBOARD_DIST` changes.
//! With `TRADING_AGENT_DASHBOARD_DIST=<dir>` the files of an earlier `npm run build` are embedded
//! instead and npm is not needed (the Dockerfile builds them in a Node stage).

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const PREBUILT_ENV: &str = "TRADING_AGENT_DASHBOARD_DIST";

fn main() {
    let manifest_dir = PathBuf::from(env("CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(env("OUT_DIR"));
    let front = manifest_dir.join("dashboard");
    for input in [
        "src",
        "index.html",
        "public",
        "package.json",
        "package-lock.json",
        "tsconfig.json",
        "vite.config.ts",
    ] {
        println!("cargo:rerun-if-changed={}", front.join(input).display());
    }
    println!("cargo:rerun-if-env-changed={PREBUILT_ENV}");
    println!("cargo:rerun-if-env-changed=NPM");
    // npm ci writes this: a deleted or reinstalled node_modules runs the script again (the browser
    // test needs the packages too, not only the build).
    println!(
        "cargo:rerun-if-changed={}",
        front.join("node_modules/.package-lock.json").display()
    );

    let dist = match std::env::var_os(PREBUILT_ENV) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => {
            let dist = out_dir.join("dashboard");
            build_with_npm(&front, &dist);
            dist
        }
    };
    if !dist.join("index.html").is_file() {
        fail(&format!(
            "{} has no index.html: the dashboard build produced nothing",
            dist.display()
        ));
    }
    write_asset_table(&dist, &out_dir.join("dashboard_assets.rs"));
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| fail(&format!("cargo did not set {name}")))
}

fn fail(message: &str) -> ! {
    // A panic in a build script prints its message under "--- stderr"; one line says it all.
    panic!("\n\ntrading-agent dashboard: {message}\n\n");
}

fn build_with_npm(front: &Path, dist: &Path) {
    let npm = std::env::var("NPM").unwrap_or_else(|_| "npm".into());
    if Command::new(&npm).arg("--version").output().is_err() {
        fail(&format!(
            "`{npm}` was not found. The dashboard is built with Node.js (20.19 or newer) and npm: \
             install them (from nodejs.org, or a distribution package of that version; \
             Debian bookworm's nodejs 18 is too old), or point {PREBUILT_ENV} at a directory \
             built earlier with `npm run build`."
        ));
    }
    // One build at a time per source folder: clippy and test builds run this script separately
    // and would otherwise race on node_modules.
    let lock = fs::File::create(front.join(".build.lock"))
        .and_then(|f| f.lock().map(|()| f))
        .unwrap_or_else(|e| fail(&format!("cannot lock {}: {e}", front.display())));

    let installed = front.join("node_modules/.package-lock.json");
    if is_older(&installed, &front.join("package-lock.json")) {
        run(
            Command::new(&npm).args(["ci", "--no-audit", "--no-fund"]),
            front,
        );
    }
    run(
        Command::new(&npm)
            .args(["run", "build", "--", "--outDir"])
            .arg(dist)
            .env("NO_COLOR", "1"),
        front,
    );
    drop(lock);
}

/// True when `file` is missing or was modified before `than`.
fn is_older(file: &Path, than: &Path) -> bool {
    let modified = |p: &Path| fs::metadata(p).and_then(|m| m.modified()).ok();
    match (modified(file), modified(than)) {
        (Some(a), Some(b)) => a < b,
        _ => true,
    }
}

fn run(command: &mut Command, dir: &Path) {
    let shown = format!("{command:?}");
    let status = command
        .current_dir(dir)
        .status()
        .unwrap_or_else(|e| fail(&format!("cannot run {shown}: {e}")));
    if !status.success() {
        fail(&format!(
            "{shown} failed ({status}) in {}; its output is above",
            dir.display()
        ));
    }
}

/// Writes `static DASHBOARD_ASSETS: &[(&str, &[u8])]`: URL path (from the dist root, with a
/// leading `/`) and contents, sorted by path.
fn write_asset_table(dist: &Path, table: &Path) {
    let mut files = Vec::new();
    collect(dist, dist, &mut files);
    files.sort();
    let mut code = String::from("static DASHBOARD_ASSETS: &[(&str, &[u8])] = &[\n");
    for (url, path) in &files {
        writeln!(code, "    ({url:?}, include_bytes!({path:?})),").unwrap();
    }
    code.push_str("];\n");
    fs::write(table, code)
        .unwrap_or_else(|e| fail(&format!("cannot write {}: {e}", table.display())));
}

fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) {
    let entries =
        fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| fail(&format!("cannot read {}: {e}", dir.display())))
            .path();
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let url = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
            files.push((url, path.to_string_lossy().into_owned()));
        }
    }
}
