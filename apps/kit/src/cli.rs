//! The command line every app has: `serve` (run until SIGTERM/SIGINT), `check` (the
//! configuration and the files it names; exit 2 on a problem) and `hash-token` (the SM3 digest
//! to configure for an API token). The configuration file comes from `--config` or
//! `<PREFIX>_CONFIG`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, CommandFactory, FromArgMatches, Parser, Subcommand};
use hub_config::Loaded;

use crate::config::AppConfig;
use crate::runtime::{AppSpec, Running, StartError};

#[derive(Parser)]
struct Cli {
    /// The configuration file (TOML; <PREFIX>_<SECTION>__<KEY> variables override keys).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run until SIGTERM/SIGINT, then finish the work in hand and exit 0.
    Serve,
    /// Check the configuration, the contracts, the key ring and the tokens; exit 2 on a problem.
    Check,
    /// Read an API token from stdin and print the SM3 digest to put in `[[http.tokens]] sm3`.
    HashToken,
}

fn command(spec: &AppSpec, about: &'static str) -> clap::Command {
    // Once per process: the variable's name outlives the parser.
    let env: &'static str = Box::leak(format!("{}_CONFIG", spec.env_prefix).into_boxed_str());
    Cli::command()
        .name(spec.service)
        .bin_name(spec.service)
        .about(about)
        .version(env!("CARGO_PKG_VERSION"))
        .mut_arg("config", |a: Arg| a.env(env))
}

fn load<C: AppConfig>(spec: &AppSpec, path: Option<PathBuf>) -> Result<Loaded<C>, ExitCode> {
    let Some(path) = path else {
        eprintln!("{}: --config FILE is required", spec.service);
        return Err(ExitCode::from(2));
    };
    hub_config::load::<C>(&path, spec.env_prefix).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

/// Parses the command line and runs it. `start` starts the app; `check` loads what the
/// configuration names and returns a line saying what it found.
pub async fn main<C, S, K>(spec: &AppSpec, about: &'static str, start: S, check: K) -> ExitCode
where
    C: AppConfig,
    S: AsyncFnOnce(&Loaded<C>) -> Result<Running, StartError>,
    K: AsyncFnOnce(&Loaded<C>) -> Result<String, StartError>,
{
    let matches = command(spec, about).get_matches();
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    match cli.command {
        Command::Serve => match load::<C>(spec, cli.config) {
            Ok(loaded) => crate::runtime::run(spec, loaded, start).await,
            Err(code) => code,
        },
        Command::Check => {
            let loaded = match load::<C>(spec, cli.config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            match check(&loaded).await {
                Ok(found) => {
                    println!(
                        "配置检查通过 / configuration OK: {} ({found})",
                        loaded.path.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(e.exit_code())
                }
            }
        }
        Command::HashToken => {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).is_err() || line.trim().is_empty() {
                eprintln!("{}: write the token on stdin", spec.service);
                return ExitCode::from(2);
            }
            println!("{}", crate::auth::token_digest(&line));
            ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cli_is_consistent_and_reads_the_config_from_the_prefixed_variable() {
        static NONE: sqlx::migrate::Migrator = sqlx::migrate::Migrator::DEFAULT;
        let spec = AppSpec {
            name: "demo",
            service: "demo-app",
            env_prefix: "DEMO",
            migrations: crate::db::Migrations {
                sqlite: &NONE,
                postgres: &NONE,
            },
            metrics: &[],
        };
        let cmd = command(&spec, "a demo");
        cmd.clone().debug_assert();
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_id() == "config")
            .unwrap();
        assert_eq!(arg.get_env().unwrap(), "DEMO_CONFIG");
        assert_eq!(cmd.get_name(), "demo-app");
    }
}
