//! The `hotline-app` command: `serve` runs the app, `check` validates its configuration and
//! the files it names, `hash-token` prints the SM3 digest to configure for an API token.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hotline_app::config::{HotlineConfig, ENV_PREFIX};

#[derive(Parser)]
#[command(
    name = "hotline-app",
    version,
    about = "12345 hotline app of the water-affairs bureau"
)]
struct Cli {
    /// The configuration file (TOML; HOTLINE_<SECTION>__<KEY> variables override keys).
    #[arg(long, global = true, env = "HOTLINE_CONFIG")]
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

fn load(path: Option<PathBuf>) -> Result<hub_config::Loaded<HotlineConfig>, ExitCode> {
    let Some(path) = path else {
        eprintln!("hotline-app: --config FILE is required");
        return Err(ExitCode::from(2));
    };
    hub_config::load::<HotlineConfig>(&path, ENV_PREFIX).map_err(|errors| {
        eprintln!("{errors}");
        ExitCode::from(2)
    })
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve => match load(cli.config) {
            Ok(loaded) => hotline_app::serve(loaded).await,
            Err(code) => code,
        },
        Command::Check => {
            let loaded = match load(cli.config) {
                Ok(l) => l,
                Err(code) => return code,
            };
            match hotline_app::load_files(&loaded).await {
                Ok(files) => {
                    println!(
                        "配置检查通过 / configuration OK: {} ({} contracts, key ring {})",
                        loaded.path.display(),
                        files.contracts.catalog.contracts.len(),
                        loaded.config.security.key_ring.display(),
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
                eprintln!("hotline-app: write the token on stdin");
                return ExitCode::from(2);
            }
            println!("{}", app_kit::auth::token_digest(&line));
            ExitCode::SUCCESS
        }
    }
}
