//! `hub operator add|list|disable|enable`: the console's operator accounts
//! (`docs/console.md`). A password is never an argument: it is read from standard input (one
//! line; piped, or typed at the prompt).

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use hub_config::Loaded;
use hub_state::StateStore;

use crate::config::HubConfig;

#[derive(Debug, Subcommand)]
pub enum OperatorAction {
    /// Create an operator; the password (at least 12 characters) is read from stdin.
    Add {
        name: String,
        /// viewer (reads), operator (also replays and discards dead letters) or admin.
        #[arg(long)]
        role: String,
    },
    /// Every operator with its role and whether it is disabled.
    List,
    /// Disable an operator (its sessions end at once).
    Disable { name: String },
    /// Enable a disabled operator again.
    Enable { name: String },
}

fn actor() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn read_password() -> std::io::Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("密码 / password (不回显时请用管道输入 / pipe it to hide it): ");
        std::io::stderr().flush()?;
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

pub async fn run(loaded: Loaded<HubConfig>, action: OperatorAction) -> ExitCode {
    let base = loaded.resolve(Path::new("."));
    let state = match StateStore::connect(&loaded.config.state, &base).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let result = match action {
        OperatorAction::Add { name, role } => match read_password() {
            Ok(password) => hub_console::operators::add(&state, &name, &role, &password, &actor())
                .await
                .map(|()| println!("已创建 / created: {name} ({role})")),
            Err(e) => {
                eprintln!("cannot read the password: {e}");
                state.close().await;
                return ExitCode::from(1);
            }
        },
        OperatorAction::List => match state.list_operators().await {
            Ok(list) => {
                println!("{:<24} {:<9} 状态 / status", "名称 / name", "role");
                for o in &list {
                    let status = if o.disabled { "disabled" } else { "active" };
                    println!("{:<24} {:<9} {status}", o.name, o.role);
                }
                Ok(())
            }
            Err(e) => Err(e.into()),
        },
        OperatorAction::Disable { name } => {
            hub_console::operators::set_disabled(&state, &name, true, &actor())
                .await
                .map(|()| println!("已停用 / disabled: {name}"))
        }
        OperatorAction::Enable { name } => {
            hub_console::operators::set_disabled(&state, &name, false, &actor())
                .await
                .map(|()| println!("已启用 / enabled: {name}"))
        }
    };
    state.close().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}
