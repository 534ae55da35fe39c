//! The partners a deployment talks to: adapter manifests joined with `[partners.<name>]`
//! into delivery routes (egress) and pull jobs (poller).

use std::sync::Arc;

use hub_adapter::{AdapterSet, PartnerClient};
use hub_config::Loaded;
use hub_egress::RouteSpec;
use hub_poller::PullJob;

use crate::config::HubConfig;

/// What this deployment runs.
pub struct Plan {
    pub routes: Vec<RouteSpec>,
    pub pulls: Vec<PullJob>,
    /// Every adapter's authentication scheme, by partner (the gateway verifies pushes with it).
    pub auth: std::collections::HashMap<String, hub_protocols::AuthSpec>,
    /// The `[[file]]`s of every adapter, by route `<partner>/<mapping>` (the gateway stores
    /// them before the mapping, `docs/files.md`).
    pub inbound_files: std::collections::HashMap<String, Vec<hub_files::wiring::InboundFile>>,
    /// The SFTP batch pickups to run (`[partners.<name>] batches`).
    pub batches: Vec<crate::batches::BatchJob>,
}

/// Loads the adapter manifests (checked against the mappings, and each request's reply
/// contract against the shape replies must have).
pub fn load_adapters(
    loaded: &Loaded<HubConfig>,
    mappings: &hub_mapping::MappingSet,
    catalog: &hub_contracts::Catalog,
) -> Result<AdapterSet, Vec<String>> {
    let dir = loaded.resolve(&loaded.config.adapters.dir);
    let set = AdapterSet::load(&dir, mappings)
        .map_err(|p| p.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let problems = set.reply_problems(mappings, catalog);
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(problems.iter().map(ToString::to_string).collect())
    }
}

/// Joins the manifests with the partner sections; every name that does not resolve is a
/// problem, reported all at once.
pub fn plan(loaded: &Loaded<HubConfig>, adapters: &AdapterSet) -> Result<Plan, Vec<String>> {
    let base = loaded.resolve(std::path::Path::new("."));
    let file = loaded.path.display().to_string();
    let mut problems = Vec::new();
    let mut routes = Vec::new();
    let mut pulls = Vec::new();
    let mut batches = Vec::new();
    for (name, section) in &loaded.config.partners {
        let Some(manifest) = adapters.get(name) else {
            problems.push(format!(
                "{file}: key `partners.{name}`: no adapter `{name}` (adapters/{name}/adapter.toml)"
            ));
            continue;
        };
        let client = match PartnerClient::new(name, section, &base, &manifest.auth) {
            Ok(c) => Arc::new(c),
            Err(e) => {
                problems.push(format!("{file}: {e}"));
                continue;
            }
        };
        let deliveries: Vec<_> = match &section.deliveries {
            None => manifest.deliveries.clone(),
            Some(names) => names
                .iter()
                .filter_map(|d| match manifest.delivery(d) {
                    Some(spec) => Some(spec.clone()),
                    None => {
                        problems.push(format!(
                            "{file}: key `partners.{name}.deliveries`: adapter `{name}` has no delivery `{d}`"
                        ));
                        None
                    }
                })
                .collect(),
        };
        for delivery in deliveries {
            // An SFTP delivery uploads into the partner's SFTP outbox (`docs/files.md`).
            let sftp = if delivery.transport == hub_adapter::manifest::Transport::Sftp {
                match &section.sftp {
                    None => {
                        problems.push(format!(
                            "{file}: key `partners.{name}.sftp`: 投递 `{}` 经 SFTP 上传，需要合作方的 SFTP 服务器 / delivery `{}` uploads over SFTP and needs the partner's SFTP server ([partners.{name}.sftp] with an outbox)",
                            delivery.name, delivery.name
                        ));
                        continue;
                    }
                    Some(s) if s.outbox.is_none() => {
                        problems.push(format!(
                            "{file}: key `partners.{name}.sftp.outbox`: 投递 `{}` 需要上传目录 / delivery `{}` uploads into the partner's outbox: set it",
                            delivery.name, delivery.name
                        ));
                        continue;
                    }
                    Some(s) => Some(hub_egress::sftp::SftpTarget {
                        section: s.clone(),
                        base_dir: base.clone(),
                    }),
                }
            } else {
                None
            };
            routes.push(RouteSpec {
                partner: name.clone(),
                answer: manifest.answer_of(delivery.answer.as_deref()).clone(),
                delivery,
                client: Arc::clone(&client),
                sftp,
            });
        }
        for b in &section.batches {
            match (manifest.batch(b), &section.sftp) {
                (Some(spec), Some(sftp)) => batches.push(crate::batches::BatchJob {
                    partner: name.clone(),
                    spec: spec.clone(),
                    sftp: sftp.clone(),
                }),
                (None, _) => problems.push(format!(
                    "{file}: key `partners.{name}.batches`: adapter `{name}` has no batch `{b}`"
                )),
                (Some(_), None) => {} // reported by the section's validation
            }
        }
        for p in &section.pulls {
            match manifest.pull(p) {
                Some(spec) => pulls.push(PullJob {
                    partner: name.clone(),
                    answer: manifest.answer_of(spec.answer.as_deref()).clone(),
                    spec: spec.clone(),
                    client: Arc::clone(&client),
                }),
                None => problems.push(format!(
                    "{file}: key `partners.{name}.pulls`: adapter `{name}` has no pull `{p}`"
                )),
            }
        }
    }
    let auth = adapters
        .adapters
        .iter()
        .map(|m| (m.partner.clone(), m.auth.clone()))
        .collect();
    let mut inbound_files: std::collections::HashMap<String, Vec<_>> =
        std::collections::HashMap::new();
    for m in &adapters.adapters {
        for f in &m.files {
            inbound_files
                .entry(format!("{}/{}", m.partner, f.mapping))
                .or_default()
                .push(f.clone());
        }
    }
    let sends_files = routes.iter().any(|r| r.delivery.file.is_some());
    if (sends_files || !inbound_files.is_empty() || !batches.is_empty())
        && loaded.config.files.is_none()
    {
        problems.push(format!(
            "{file}: key `files`: an adapter declares files ([[file]], a delivery's file or a batch pickup), but there is no [files] section (the file store)"
        ));
    }
    // Files sent as links need the hub to serve them: a base URL and a secret in [files].
    if let Some(files) = &loaded.config.files {
        if !files.serves_downloads() {
            for r in routes.iter().filter(|r| {
                r.delivery
                    .file
                    .as_ref()
                    .is_some_and(|f| f.style == hub_files::wiring::SendStyle::Url)
            }) {
                problems.push(format!(
                    "{file}: key `files`: delivery `{}` of adapter `{}` sends its file as a link (key `file`, style = \"url\"), but [files] has no download_base_url and download secret (download_secret_file, or HUB_FILES__DOWNLOAD_SECRET) to serve links with",
                    r.delivery.name, r.partner
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(Plan {
            routes,
            pulls,
            auth,
            inbound_files,
            batches,
        })
    } else {
        Err(problems)
    }
}
