//! `trading-agent`: parse the command line, start one Tokio runtime, run the chosen role.
//! Exit status: 0 done, 1 runtime failure, 2 invalid configuration.

use std::process::ExitCode;

use clap::Parser;
use trading_agent::config::Cli;
use trading_agent::{Error, app, telemetry};

fn main() -> ExitCode {
    // clap itself exits with status 2 on unknown flags or bad values.
    let cli = Cli::parse();
    if let Err(error) = telemetry::init(cli.log_format, &cli.log_level) {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    trading_agent::install_crypto_provider();
    #[cfg(feature = "failpoints")]
    let _faults = trading_agent::faults::setup();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: cannot start the Tokio runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Config(error)) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
        Err(error) => {
            tracing::error!(%error, code = error.code().as_str(), "exiting");
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
