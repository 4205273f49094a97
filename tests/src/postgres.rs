//! A throwaway PostgreSQL server: Debian's binaries, a temporary data directory and a free loopback
//! port. It can be stopped and started again (tests of "database down" need that), and it is stopped
//! and removed when dropped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::process::{free_loopback_port, run_checked, wait_for_tcp};
use crate::{Error, Result};

/// A PostgreSQL cluster of its own, initialised in a temporary directory.
///
/// ```no_run
/// let pg = trading_agent_tests::postgres::TempPostgres::start_new()?;
/// let url = pg.create_database("orders")?;
/// # Ok::<(), trading_agent_tests::Error>(())
/// ```
pub struct TempPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    running: bool,
    /// Another address to listen on besides 127.0.0.1 ([`Self::listen_also_on`]).
    also_listen_on: Option<String>,
}

impl TempPostgres {
    /// Initialises a cluster (`initdb`) and picks its port, without starting it.
    pub fn init() -> Result<Self> {
        let bin = postgres_bin_dir()?;
        let dir = tempfile::Builder::new().prefix("ta-postgres-").tempdir()?;
        // PostgreSQL refuses to run as root: when we are root, the server runs as `postgres`.
        if as_postgres_user() {
            chown_to_postgres(dir.path())?;
        }
        std::fs::create_dir(dir.path().join("socket"))?;
        if as_postgres_user() {
            chown_to_postgres(&dir.path().join("socket"))?;
        }
        let pg = Self {
            port: free_loopback_port()?,
            dir,
            bin,
            running: false,
            also_listen_on: None,
        };
        let data = pg.data_dir();
        run_checked(
            pg.command("initdb")
                .args([
                    "--username=postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-sync",
                ])
                .arg("--pgdata")
                .arg(&data),
            "initdb",
        )?;
        Ok(pg)
    }

    /// [`init`](Self::init) and [`start`](Self::start) in one.
    pub fn start_new() -> Result<Self> {
        let mut pg = Self::init()?;
        pg.start()?;
        Ok(pg)
    }

    /// Also listen on `address` (the real node's address, which its pods reach through the CNI
    /// bridge) and let clients from `clients` (a CIDR, the pods' subnet) in like loopback ones.
    /// Takes effect at the next start.
    pub fn listen_also_on(&mut self, address: &str, clients: &str) -> Result<()> {
        use std::io::Write;
        let mut hba = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data_dir().join("pg_hba.conf"))?;
        writeln!(hba, "host all all {clients} trust")?;
        self.also_listen_on = Some(address.to_owned());
        Ok(())
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(&mut self) -> Result<()> {
        if self.running {
            return Ok(());
        }
        // Durability is pointless for a throwaway cluster; these settings make tests several times faster.
        let listen = match &self.also_listen_on {
            Some(address) => format!("127.0.0.1,{address}"),
            None => "127.0.0.1".to_owned(),
        };
        let options = format!(
            "-h {listen} -p {} -k {} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.port,
            self.dir.path().join("socket").display()
        );
        run_checked(
            self.command("pg_ctl")
                .arg("--pgdata")
                .arg(self.data_dir())
                .arg("--log")
                .arg(self.log_path())
                .args(["--wait", "--timeout=60", "-o", &options, "start"]),
            "pg_ctl start",
        )
        .map_err(|e| Error::Startup(format!("{e}; server log: {}", self.log_path().display())))?;
        self.running = true;
        wait_for_tcp(("127.0.0.1", self.port), Duration::from_secs(30))
    }

    /// Stops the server (fast mode: open connections are closed), keeping its data.
    pub fn stop(&mut self) -> Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        run_checked(
            self.command("pg_ctl")
                .arg("--pgdata")
                .arg(self.data_dir())
                .args(["--mode=fast", "--wait", "stop"]),
            "pg_ctl stop",
        )
    }

    /// The loopback port the server listens on (also while it is stopped).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// URL of the default `postgres` database, for the `postgres` superuser.
    pub fn url(&self) -> String {
        self.database_url("postgres")
    }

    /// URL of database `name` on this server (it need not exist yet).
    pub fn database_url(&self, name: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> Result<String> {
        run_checked(
            self.command("createdb")
                .args(["--host=127.0.0.1", "--username=postgres"])
                .arg(format!("--port={}", self.port))
                .arg(name),
            "createdb",
        )?;
        Ok(self.database_url(name))
    }

    /// Runs one SQL statement with `psql` against database `db` and returns what it printed
    /// (unaligned, tuples only): handy for asserting on rows without a client library.
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        let output = self
            .command("psql")
            .args([
                "--host=127.0.0.1",
                "--username=postgres",
                "--no-psqlrc",
                "-v",
                "ON_ERROR_STOP=1",
                "-At",
            ])
            .arg(format!("--port={}", self.port))
            .arg(format!("--dbname={db}"))
            .arg("--command")
            .arg(sql)
            .output()?;
        if !output.status.success() {
            return Err(Error::Command {
                what: "psql".into(),
                detail: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
        Ok(String::from_utf8_lossy(&output.stdout)
            .trim_end()
            .to_owned())
    }

    /// The server's log file, to print when a test fails.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if as_postgres_user() {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(path);
            cmd
        } else {
            Command::new(path)
        }
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.running {
            let deadline = Instant::now() + Duration::from_secs(10);
            let _ = self
                .command("pg_ctl")
                .arg("--pgdata")
                .arg(self.data_dir())
                .args(["--mode=immediate", "--wait", "stop"])
                .output();
            while Instant::now() < deadline && self.data_dir().join("postmaster.pid").exists() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The newest `/usr/lib/postgresql/<major>/bin` (Debian's layout), or `$PG_BIN_DIR`.
fn postgres_bin_dir() -> Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = std::fs::read_dir(root)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .max()
        .ok_or_else(|| {
            Error::Missing(
                "PostgreSQL server binaries under /usr/lib/postgresql (run `make deps`)".into(),
            )
        })?;
    Ok(root.join(newest.to_string()).join("bin"))
}

fn as_postgres_user() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

fn chown_to_postgres(path: &Path) -> Result<()> {
    run_checked(
        Command::new("chown").arg("postgres:postgres").arg(path),
        "chown postgres",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_starts_again_keeping_data() {
        let mut pg = TempPostgres::start_new().expect("postgres starts");
        let url = pg.create_database("keep").unwrap();
        assert!(url.ends_with(&format!(":{}/keep", pg.port())));
        pg.psql("keep", "CREATE TABLE t (v int); INSERT INTO t VALUES (42)")
            .unwrap();

        pg.stop().unwrap();
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", pg.port())).is_err(),
            "stopped server still listens"
        );

        pg.start().unwrap();
        assert_eq!(pg.psql("keep", "SELECT v FROM t").unwrap(), "42");
    }

    #[test]
    fn dropping_removes_the_server_and_its_directory() {
        let pg = TempPostgres::start_new().unwrap();
        let (port, dir) = (pg.port(), pg.dir.path().to_owned());
        drop(pg);
        assert!(!dir.exists(), "data directory left behind");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "server left running"
        );
    }
}
