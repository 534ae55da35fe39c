//! The app's configuration file (`hotline.example.toml` annotates every key), plus
//! `HOTLINE_<SECTION>__<KEY>` environment overrides, loaded and located by `hub-config`. The
//! shared sections are the app runtime's; the hotline's own are `[topics]` and `[hotline]`.

use hub_config::{join_key, Invalid, Validate};
use serde::Deserialize;

use crate::kinds::Kind;

/// Prefix of the environment overrides (`HOTLINE_DATABASE__URL=postgres://…`).
pub const ENV_PREFIX: &str = "HOTLINE";

app_kit::app_config! {
    /// The whole configuration file: the sections every app shares (`app_kit::config`:
    /// `[app]`, `[http]`, `[bus]`, `[database]`, `[consumer]`, `[contracts]`, `[security]`,
    /// `[log]`) and the hotline's own.
    pub struct HotlineConfig {
        #[serde(default)]
        pub topics: TopicsSection,
        pub hotline: HotlineSection,
    }
}

/// `[topics]`: where each event is read or written. Defaults are the contracts' topics; tests
/// and staging point them elsewhere. The contract of each role never changes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TopicsSection {
    #[serde(default = "d_dispatched")]
    pub dispatched: String,
    #[serde(default = "d_urged")]
    pub urged: String,
    #[serde(default = "d_visited")]
    pub visited: String,
    #[serde(default = "d_closed")]
    pub closed: String,
    #[serde(default = "d_signed")]
    pub signed: String,
    #[serde(default = "d_returned")]
    pub returned: String,
    #[serde(default = "d_extension_requested")]
    pub extension_requested: String,
    #[serde(default = "d_replied")]
    pub replied: String,
}

fn d_dispatched() -> String {
    Kind::Dispatched.contract_topic().into()
}
fn d_urged() -> String {
    Kind::Urged.contract_topic().into()
}
fn d_visited() -> String {
    Kind::Visited.contract_topic().into()
}
fn d_closed() -> String {
    Kind::Closed.contract_topic().into()
}
fn d_signed() -> String {
    Kind::Signed.contract_topic().into()
}
fn d_returned() -> String {
    Kind::Returned.contract_topic().into()
}
fn d_extension_requested() -> String {
    Kind::ExtensionRequested.contract_topic().into()
}
fn d_replied() -> String {
    Kind::Replied.contract_topic().into()
}

impl Default for TopicsSection {
    fn default() -> Self {
        Self {
            dispatched: d_dispatched(),
            urged: d_urged(),
            visited: d_visited(),
            closed: d_closed(),
            signed: d_signed(),
            returned: d_returned(),
            extension_requested: d_extension_requested(),
            replied: d_replied(),
        }
    }
}

impl TopicsSection {
    /// The topic configured for `kind`.
    pub fn of(&self, kind: Kind) -> &str {
        match kind {
            Kind::Dispatched => &self.dispatched,
            Kind::Urged => &self.urged,
            Kind::Visited => &self.visited,
            Kind::Closed => &self.closed,
            Kind::Signed => &self.signed,
            Kind::Returned => &self.returned,
            Kind::ExtensionRequested => &self.extension_requested,
            Kind::Replied => &self.replied,
        }
    }

    /// The inbound role of a topic the consumer read.
    pub fn inbound_kind(&self, topic: &str) -> Option<Kind> {
        Kind::INBOUND.into_iter().find(|k| self.of(*k) == topic)
    }
}

impl Validate for TopicsSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeMap::new();
        for k in Kind::ALL {
            let t = self.of(k);
            if t.trim().is_empty() {
                out.push(Invalid::new(
                    join_key(prefix, k.as_str()),
                    "must not be empty",
                ));
            } else if let Some(other) = seen.insert(t.to_string(), k) {
                out.push(Invalid::new(
                    join_key(prefix, k.as_str()),
                    format!("`{t}` is also the topic of `{}`", other.as_str()),
                ));
            }
        }
        out
    }
}

/// `[hotline]`: the business settings.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HotlineSection {
    /// Handling unit codes this app serves (承办单位编码). Tickets of other units on the shared
    /// topics are skipped. Empty: every unit.
    #[serde(default)]
    pub handling_units: Vec<String>,
    /// How long after dispatch a signed ticket may still be returned (hours). Before signing it
    /// may always be returned.
    #[serde(default = "default_return_window_hours")]
    pub return_window_hours: u32,
    /// The envelope's `hub-partner` of what this app produces (the bureau's system).
    #[serde(default = "default_partner")]
    pub partner: String,
}

fn default_return_window_hours() -> u32 {
    24
}

fn default_partner() -> String {
    "sh-water-hotline".into()
}

impl Validate for HotlineSection {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut out = Vec::new();
        if !(1..=720).contains(&self.return_window_hours) {
            out.push(Invalid::new(
                join_key(prefix, "return_window_hours"),
                format!("{} is outside 1..=720", self.return_window_hours),
            ));
        }
        if self.partner.trim().is_empty() {
            out.push(Invalid::new(
                join_key(prefix, "partner"),
                "must not be empty",
            ));
        }
        for (i, u) in self.handling_units.iter().enumerate() {
            if u.trim().is_empty() {
                out.push(Invalid::new(
                    format!("{}[{i}]", join_key(prefix, "handling_units")),
                    "must not be empty",
                ));
            }
        }
        out
    }
}
