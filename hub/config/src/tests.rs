use std::path::Path;

use serde::Deserialize;

use super::sections::{BusSection, LogSection, StateSection};
use super::*;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sample {
    bus: BusSection,
    #[serde(default)]
    state: StateSection,
    #[serde(default)]
    log: LogSection,
}

impl Validate for Sample {
    fn validate(&self, prefix: &str) -> Vec<Invalid> {
        let mut v = self.bus.validate(&join_key(prefix, "bus"));
        v.extend(self.state.validate(&join_key(prefix, "state")));
        v.extend(self.log.validate(&join_key(prefix, "log")));
        v
    }
}

fn parse(text: &str, env: &[(&str, &str)]) -> Result<Sample, Vec<String>> {
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_str::<Sample>(text, Path::new("hub.toml"), "HUB", &vars)
        .map(|(c, _)| c)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn a_valid_file_loads_with_defaults() {
    let c = parse("[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n", &[]).unwrap();
    assert_eq!(c.bus.client_id, "shanghai-hub");
    assert_eq!(c.state.url, "sqlite://var/hub-state.db");
}

#[test]
fn a_syntax_error_names_line_and_column() {
    let err = parse("[bus]\nbootstrap_servers = \"a:1\"\nlinger_ms = = 3\n", &[]).unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(err[0].starts_with("hub.toml:3:"), "{err:?}");
    assert!(err[0].contains("not valid TOML"), "{err:?}");
}

#[test]
fn a_wrong_type_names_the_key_and_its_line() {
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n\nlinger_ms = \"five\"\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(
        err[0].starts_with("hub.toml:4:1: key `bus.linger_ms`"),
        "{err:?}"
    );
    assert!(err[0].contains("invalid type"), "{err:?}");
}

#[test]
fn an_unknown_key_is_refused_with_its_line() {
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\nbootstrap_server = \"typo:1\"\n",
        &[],
    )
    .unwrap_err();
    assert!(
        err[0].starts_with("hub.toml:3:1: key `bus.bootstrap_server`: unknown field"),
        "{err:?}"
    );
}

#[test]
fn a_missing_section_key_points_at_the_section() {
    let err = parse("\n[bus]\nclient_id = \"x\"\n", &[]).unwrap_err();
    assert!(
        err[0].starts_with("hub.toml:2:2: key `bus`: missing field `bootstrap_servers`"),
        "{err:?}"
    );
}

#[test]
fn every_semantic_problem_is_reported_in_file_order() {
    let text = "[bus]\nbootstrap_servers = \"nohost\"\nlinger_ms = 5000\n\
                [bus.librdkafka]\n\"enable.idempotence\" = \"false\"\n\
                [state]\nurl = \"mysql://x\"\n";
    let err = parse(text, &[]).unwrap_err();
    assert_eq!(err.len(), 4, "{err:?}");
    assert!(err[0].starts_with("hub.toml:2:1: key `bus.bootstrap_servers`: `nohost`"));
    assert!(err[1].starts_with("hub.toml:3:1: key `bus.linger_ms`"));
    assert!(err[2].starts_with("hub.toml:5:1: key `bus.librdkafka.enable.idempotence`"));
    assert!(err[3].starts_with("hub.toml:7:1: key `state.url`"));
}

#[test]
fn an_environment_override_replaces_the_file_value() {
    let c = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n",
        &[
            ("HUB_BUS__BOOTSTRAP_SERVERS", "b:2,c:3"),
            ("HUB_BUS__LINGER_MS", "9"),
            ("HUB_TEST_KAFKA_BOOTSTRAP", "ignored:1"),
            ("OTHER_BUS__LINGER_MS", "ignored"),
        ],
    )
    .unwrap();
    assert_eq!(c.bus.bootstrap_servers, "b:2,c:3");
    assert_eq!(c.bus.linger_ms, 9);
}

#[test]
fn a_bad_environment_override_names_the_variable() {
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n",
        &[("HUB_BUS__LINGER_MS", "soon")],
    )
    .unwrap_err();
    assert_eq!(err.len(), 1);
    assert!(
        err[0].starts_with("environment variable HUB_BUS__LINGER_MS: key `bus.linger_ms`"),
        "{err:?}"
    );
}

#[test]
fn an_override_under_a_plain_value_is_refused() {
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\nclient_id = \"x\"\n",
        &[("HUB_BUS__CLIENT_ID__X", "1")],
    )
    .unwrap_err();
    assert!(
        err[0].starts_with("environment variable HUB_BUS__CLIENT_ID__X: key `bus.client_id.x`"),
        "{err:?}"
    );
    assert!(err[0].contains("not a table"), "{err:?}");
    // Under a key the file leaves to its default, the override makes a table where a string
    // belongs; the type error still names the variable.
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n",
        &[("HUB_BUS__CLIENT_ID__X", "1")],
    )
    .unwrap_err();
    assert!(
        err[0].starts_with("environment variable HUB_BUS__CLIENT_ID__X: key `bus.client_id`"),
        "{err:?}"
    );
}

#[test]
fn a_missing_file_is_reported_by_path() {
    let err = load_with_env::<Sample>(Path::new("/nonexistent/hub.toml"), "HUB", &[]).unwrap_err();
    assert!(err.0[0]
        .to_string()
        .starts_with("/nonexistent/hub.toml: cannot read"));
}

#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hub.toml");
    std::fs::write(&path, "[bus]\nbootstrap_servers = \"a:1\"\n").unwrap();
    let loaded = load_with_env::<Sample>(&path, "HUB", &[]).unwrap();
    assert_eq!(
        loaded.resolve(Path::new("../contracts")),
        dir.path().join("../contracts")
    );
    assert_eq!(loaded.resolve(Path::new("/abs")), Path::new("/abs"));
}

#[test]
fn the_otlp_keys_are_optional_and_checked() {
    let c = parse("[bus]\nbootstrap_servers = \"a:1\"\n", &[]).unwrap();
    assert_eq!(c.log.otlp_endpoint, None);
    assert_eq!(c.log.trace_sample_ratio, 1.0);
    let c = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n[log]\notlp_endpoint = \"http://otel:4318\"\n\
         otlp_service_name = \"hub-a\"\ntrace_sample_ratio = 0.25\n",
        &[],
    )
    .unwrap();
    assert_eq!(c.log.otlp_endpoint.as_deref(), Some("http://otel:4318"));
    assert_eq!(c.log.trace_sample_ratio, 0.25);
    let err = parse(
        "[bus]\nbootstrap_servers = \"a:1\"\n[log]\notlp_endpoint = \"grpc://otel:4317\"\n\
         otlp_service_name = \" \"\ntrace_sample_ratio = 1.5\n",
        &[],
    )
    .unwrap_err();
    assert_eq!(err.len(), 3, "{err:?}");
    assert!(
        err.iter().any(|e| e.contains("log.otlp_endpoint")),
        "{err:?}"
    );
    assert!(
        err.iter().any(|e| e.contains("log.otlp_service_name")),
        "{err:?}"
    );
    assert!(
        err.iter().any(|e| e.contains("log.trace_sample_ratio")),
        "{err:?}"
    );
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WithSecrets {
    #[serde(default)]
    apps: Vec<SecretApp>,
    #[serde(default)]
    registry: Option<SecretRegistry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretApp {
    app_id: String,
    hmac_secret: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretRegistry {
    password: Option<String>,
}

impl Validate for WithSecrets {
    fn validate(&self, _: &str) -> Vec<Invalid> {
        Vec::new()
    }
}

fn parse_secrets(
    text: &str,
    path: &Path,
    env: &[(&str, &str)],
) -> Result<WithSecrets, Vec<String>> {
    let vars: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    parse_str::<WithSecrets>(text, path, "HUB", &vars)
        .map(|(c, _)| c)
        .map_err(|e| e.0.iter().map(ToString::to_string).collect())
}

#[test]
fn secrets_come_from_the_environment_or_a_file_outside_the_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(
        dir.path().join("secrets/registry"),
        "registry-pass-from-file\n",
    )
    .unwrap();
    let config = dir.path().join("hub.toml");
    let text = "[[apps]]\napp_id = \"a\"\nhmac_secret_env = \"PARTNER_A_SECRET\"\n\
                [[apps]]\napp_id = \"b\"\nhmac_secret = \"written-in-the-file\"\n\
                [registry]\npassword_file = \"secrets/registry\"\n";
    let c = parse_secrets(
        text,
        &config,
        &[("PARTNER_A_SECRET", "from-the-environment-123")],
    )
    .unwrap();
    assert_eq!(c.apps[0].app_id, "a");
    assert_eq!(
        c.apps[0].hmac_secret.as_deref(),
        Some("from-the-environment-123")
    );
    assert_eq!(
        c.apps[1].hmac_secret.as_deref(),
        Some("written-in-the-file")
    );
    assert_eq!(
        c.registry.unwrap().password.as_deref(),
        Some("registry-pass-from-file"),
        "relative to the config's folder, without the trailing line break"
    );
}

#[test]
fn a_missing_or_ambiguous_secret_source_is_a_located_problem_that_never_echoes_a_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hub.toml");
    std::fs::write(dir.path().join("empty"), "\n").unwrap();
    let err = parse_secrets(
        "[[apps]]\napp_id = \"a\"\nhmac_secret_env = \"NOT_SET_ANYWHERE\"\n",
        &config,
        &[],
    )
    .unwrap_err();
    assert_eq!(err.len(), 1, "{err:?}");
    assert!(err[0].contains("apps[0].hmac_secret_env"), "{err:?}");
    assert!(err[0].contains("`NOT_SET_ANYWHERE` is not set"), "{err:?}");

    let err = parse_secrets(
        "[[apps]]\napp_id = \"a\"\nhmac_secret = \"clear-secret-value\"\nhmac_secret_env = \"S\"\n\
         [registry]\npassword_file = \"empty\"\n",
        &config,
        &[("S", "other-secret-value")],
    )
    .unwrap_err();
    assert_eq!(err.len(), 2, "{err:?}");
    let all = err.join("\n");
    assert!(all.contains("write the secret one way only"), "{all}");
    assert!(all.contains("is empty"), "{all}");
    assert!(
        !all.contains("clear-secret-value") && !all.contains("other-secret-value"),
        "{all}"
    );

    let err = parse_secrets(
        "[registry]\npassword_file = \"/nonexistent/hub-secret\"\npassword_env = \"X\"\n",
        &config,
        &[],
    )
    .unwrap_err();
    assert!(err[0].contains("choose one"), "{err:?}");
    let err = parse_secrets("[registry]\npassword_file = \"nope\"\n", &config, &[]).unwrap_err();
    assert!(err[0].contains("cannot read"), "{err:?}");
}
