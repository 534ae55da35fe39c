//! `hub`: the integration hub's command line. See `hub --help`.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = hub::cli::Cli::parse();
    hub::cli::run(cli)
}
