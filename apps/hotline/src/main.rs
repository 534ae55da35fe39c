//! The `hotline-app` command: `serve` runs the app, `check` validates its configuration and
//! the files it names, `hash-token` prints the SM3 digest to configure for an API token (the
//! app runtime's command line, `app_kit::cli`; `--config` or `HOTLINE_CONFIG`).

use std::process::ExitCode;

use hotline_app::config::HotlineConfig;
use hub_config::Loaded;

#[tokio::main]
async fn main() -> ExitCode {
    app_kit::cli::main(
        &hotline_app::SPEC,
        "12345 hotline app of the water-affairs bureau",
        hotline_app::start,
        async |loaded: &Loaded<HotlineConfig>| {
            let files = hotline_app::load_files(loaded).await?;
            Ok(format!(
                "{} contracts, key ring {}",
                files.contracts.catalog.contracts.len(),
                loaded.config.security.key_ring.display()
            ))
        },
    )
    .await
}
