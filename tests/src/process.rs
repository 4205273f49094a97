//! Small helpers for starting the servers the suites need: free ports, checked commands, waiting.

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{Error, Result};

/// A loopback port nobody listens on right now (the kernel picks it; it is released at once, so a
/// race with another process is possible but rare).
pub fn free_loopback_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// Runs `cmd` to completion; a non-zero exit becomes an error carrying its stderr.
pub fn run_checked(cmd: &mut Command, what: &str) -> Result<()> {
    let output = cmd.output().map_err(|e| Error::Command {
        what: what.into(),
        detail: e.to_string(),
    })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Error::Command {
            what: what.into(),
            detail: format!(
                "{}: {}{}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim(),
                String::from_utf8_lossy(&output.stdout).trim()
            ),
        })
    }
}

/// Waits until something accepts TCP connections at `addr`.
pub fn wait_for_tcp(
    addr: impl ToSocketAddrs + Copy + std::fmt::Debug,
    timeout: Duration,
) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect(addr).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::Startup(format!(
                "nothing listens on {addr:?} after {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}
