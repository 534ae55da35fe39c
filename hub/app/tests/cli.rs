//! The `hub` binary as an operator runs it: `check`, `version`, `topics`, and `serve` against
//! the real local broker (HUB_TEST_KAFKA_BOOTSTRAP, see ops/test.sh).

mod support;

use std::time::Duration;

use support::*;

#[test]
fn check_accepts_the_example_config() {
    let example = repo().join("ops/hub.example.toml");
    let out = hub(&["check", "--config", example.to_str().unwrap()], &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("check passed"), "{stdout}");
    let files = std::fs::read_dir(repo().join("contracts/schemas"))
        .unwrap()
        .flat_map(|family| std::fs::read_dir(family.unwrap().path()).unwrap())
        .filter(|f| {
            f.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|e| e == "avsc")
        })
        .count();
    assert!(
        files > 40,
        "the contracts of all eight families are shipped"
    );
    assert!(
        stdout.contains(&format!("{files} contracts, {files} topics, ")),
        "{stdout}"
    );
    assert!(stdout.contains(" mappings, "), "{stdout}");
}

#[test]
fn check_rejects_a_wrong_type_with_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n\nlinger_ms = \"soon\"\n",
    );
    let out = hub(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "{}:4:1: key `bus.linger_ms`: invalid type: string \"soon\", expected u64",
        path.display()
    );
    assert!(
        stderr.contains(&expected),
        "expected `{expected}` in:\n{stderr}"
    );
}

#[test]
fn check_lists_every_semantic_problem() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[hub]\nshutdown_grace_ms = 5\n\n[bus]\nbootstrap_servers = \"nohost\"\n\n\
         [state]\nurl = \"mysql://db/hub\"\n\n[log]\nlevel = \"loud\"\n",
    );
    let out = hub(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let p = path.display();
    for expected in [
        format!("{p}:2:1: key `hub.shutdown_grace_ms`: 5 is outside 1000..=300000 ms"),
        format!("{p}:5:1: key `bus.bootstrap_servers`: `nohost` is not host:port"),
        format!("{p}:8:1: key `state.url`: `mysql://db/hub` must start with"),
        format!("{p}:11:1: key `log.level`: `loud` does not end in one of"),
        "4 problem(s) found".to_string(),
    ] {
        assert!(
            stderr.contains(&expected),
            "expected `{expected}` in:\n{stderr}"
        );
    }
}

#[test]
fn check_names_the_environment_variable_of_a_bad_override() {
    let example = repo().join("ops/hub.example.toml");
    let out = hub(
        &["check", "--config", example.to_str().unwrap()],
        &[("HUB_ADMIN__LISTEN", "everywhere")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(
            "environment variable HUB_ADMIN__LISTEN: key `admin.listen`: invalid socket address"
        ),
        "{stderr}"
    );
}

#[test]
fn check_reports_contract_problems_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("contracts")).unwrap();
    std::fs::write(
        dir.path().join("contracts/broken.avsc"),
        "{\n  \"type\": \"record\",\n  oops\n}",
    )
    .unwrap();
    let path = write_config(
        dir.path(),
        "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n[contracts]\ndir = \"contracts\"\n",
    );
    let out = hub(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.avsc:3: not valid JSON"), "{stderr}");
}

#[test]
fn check_reports_a_mapping_that_does_not_compile_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let partner = dir.path().join("mappings/partner");
    std::fs::create_dir_all(&partner).unwrap();
    std::fs::write(
        partner.join("mappings.toml"),
        "partner = \"partner\"\n[[mapping]]\nname = \"m\"\ndirection = \"inbound\"\n\
         contract = \"hub.message.deadlettered.v1\"\nprogram = \"m.vrl\"\nformat = \"json\"\n",
    )
    .unwrap();
    std::fs::write(
        partner.join("m.vrl"),
        "# line 1\n\n. = {\"route\": upcase(.r}\n",
    )
    .unwrap();
    let path = write_config(
        dir.path(),
        &format!(
            "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n[contracts]\ndir = \"{}\"\n[mappings]\ndir = \"mappings\"\n",
            repo().join("contracts/schemas").display()
        ),
    );
    let out = hub(&["check", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("{}:3: error[E", partner.join("m.vrl").display())),
        "{stderr}"
    );
}

#[test]
fn sign_prints_verifiable_headers_as_a_curl_config() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("body.json");
    std::fs::write(&body, "{\"gdbh\":\"GD1\"}").unwrap();
    let out = hub(
        &[
            "sign",
            "--app-id",
            "app-1",
            "--secret",
            "a-secret-of-some-length",
            "--path",
            "/v1/p/m?b=2&a=1",
            "--body",
            body.to_str().unwrap(),
            "--header",
            "X-Partner-Message-Id: pm-1",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<(String, String)> = text(&out.stdout)
        .lines()
        .map(|l| {
            let inner = l
                .strip_prefix("header = \"")
                .and_then(|l| l.strip_suffix('"'))
                .expect("curl config line");
            let (k, v) = inner.split_once(": ").unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    let get = |k: &str| lines.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("x-hub-signed-headers"), "x-partner-message-id");
    assert_eq!(get("X-Partner-Message-Id"), "pm-1");
    let signed = [("x-partner-message-id".to_string(), "pm-1".to_string())];
    let parts = hub_security::signing::RequestParts {
        method: hub_security::signing::SignatureMethod::HmacSm3,
        http_method: "POST",
        path: "/v1/p/m",
        raw_query: "b=2&a=1",
        app_id: "app-1",
        timestamp_ms: get("x-hub-timestamp").parse().unwrap(),
        nonce: &get("x-hub-nonce"),
        body: b"{\"gdbh\":\"GD1\"}",
        signed_headers: &signed,
    };
    let check = hub_security::signing::VerifyingCredential::HmacSm3 {
        secret: b"a-secret-of-some-length".to_vec(),
    };
    assert_eq!(
        check.verify(&parts.canonical(), &get("x-hub-signature")),
        Ok(())
    );
    let out = hub(
        &[
            "sign",
            "--app-id",
            "a",
            "--path",
            "/",
            "--body",
            body.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2), "a credential is required");
}

#[test]
fn serve_refuses_an_unusable_config_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[bus]\n");
    let out = hub(&["serve", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("missing field `bootstrap_servers`"));
}

#[test]
fn version_names_the_commit_and_librdkafka() {
    let out = hub(&["version"], &[]);
    assert!(out.status.success());
    let stdout = text(&out.stdout);
    assert!(
        stdout.starts_with(&format!("hub {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{stdout}"
    );
    assert!(stdout.contains("librdkafka 2."), "{stdout}");
}

#[tokio::test]
async fn serve_becomes_ready_on_the_real_broker_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let serving = start_serving(dir.path(), &kafka());
    let health = wait_for_status(
        &format!("{}/healthz", serving.admin),
        200,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(health["status"], "alive");
    let ready = wait_for_status(
        &format!("{}/readyz", serving.admin),
        200,
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["checks"]["state_store"]["backend"], "sqlite");
    assert!(ready["checks"]["broker"]["brokers"].as_u64().unwrap() >= 1);
    assert!(
        dir.path().join("state/hub.db").exists(),
        "state store created beside the config"
    );

    // The declared topics now exist: `hub topics list` agrees.
    let out = hub(
        &[
            "topics",
            "list",
            "--config",
            dir.path().join("hub.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    assert!(text(&out.stdout).contains("hub.message.deadlettered.v1"));

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
    assert!(logs.contains("hub stopped cleanly"), "{logs}");

    // The start and the stop are in the audit chain, which verifies; an edit is detected.
    let config = dir.path().join("hub.toml");
    let config = config.to_str().unwrap();
    let out = hub(&["audit", "verify", "--config", config], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("audit chain intact: 2 records"),
        "{}",
        text(&out.stdout)
    );
    let tail = text(&hub(&["audit", "tail", "--config", config], &[]).stdout);
    assert!(
        tail.contains("config.loaded") && tail.contains("hub.stopped"),
        "{tail}"
    );
    {
        use sqlx::Connection;
        let url = format!("sqlite://{}", dir.path().join("state/hub.db").display());
        let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
        sqlx::query("UPDATE hub_audit SET actor = 'someone-else' WHERE seq = 1")
            .execute(&mut c)
            .await
            .unwrap();
    }
    let out = hub(&["audit", "verify", "--config", config], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("record 1 was edited"),
        "{}",
        text(&out.stderr)
    );
    // Logs are JSON, one object per line.
    for line in logs.lines() {
        serde_json::from_str::<serde_json::Value>(line)
            .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
    }
}

#[tokio::test]
async fn serve_without_a_broker_is_alive_but_not_ready_and_still_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let closed = format!("127.0.0.1:{}", free_port());
    let serving = start_serving(dir.path(), &closed);
    let ready = wait_for_status(
        &format!("{}/readyz", serving.admin),
        503,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(ready["status"], "not_ready");
    assert_eq!(ready["checks"]["broker"]["ok"], false);
    assert_eq!(ready["checks"]["broker"]["code"], "BUS_UNREACHABLE");
    assert_eq!(ready["checks"]["topics"]["ok"], false);
    assert_eq!(ready["checks"]["state_store"]["ok"], true);
    wait_for_status(
        &format!("{}/healthz", serving.admin),
        200,
        Duration::from_secs(5),
    )
    .await;

    let (status, logs) = stop_and_collect_logs(serving);
    assert!(status.success(), "exit {status:?}; logs:\n{logs}");
}

#[tokio::test]
async fn audit_verify_starts_from_the_signed_checkpoint_and_names_edits_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let key_hex = "00112233445566778899aabbccddeeff0011223344556677";
    std::fs::write(dir.path().join("audit.key"), key_hex).unwrap();
    let base =
        "[bus]\nbootstrap_servers = \"127.0.0.1:9\"\n[state]\nurl = \"sqlite://state/hub.db\"\n";
    let with_key = write_config(
        dir.path(),
        &format!("{base}[audit]\ncheckpoint_key_file = \"audit.key\"\n"),
    );
    let with_key = with_key.to_str().unwrap().to_string();
    let without = dir.path().join("nokey.toml");
    std::fs::write(&without, base).unwrap();
    let without = without.to_str().unwrap().to_string();

    let state = hub_state::StateSection {
        url: "sqlite://state/hub.db".into(),
        max_connections: 2,
        ..Default::default()
    };
    let store = hub_state::StateStore::connect(&state, dir.path())
        .await
        .unwrap();
    let key = hub_state::CheckpointKey::new(hex::decode(key_hex).unwrap()).unwrap();
    for i in 0..6 {
        store
            .append_audit(
                "hub:t",
                "config.loaded",
                "x",
                &serde_json::json!({ "i": i }),
            )
            .await
            .unwrap();
    }
    store.checkpoint_audit(&key).await.unwrap().unwrap();
    assert_eq!(store.purge_audit(&key, i64::MAX).await.unwrap(), 6);
    for i in 6..9 {
        store
            .append_audit(
                "hub:t",
                "config.loaded",
                "x",
                &serde_json::json!({ "i": i }),
            )
            .await
            .unwrap();
    }
    store.close().await;

    let out = hub(&["audit", "verify", "--config", &with_key], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("3 records after the signed checkpoint at record 6"),
        "{}",
        text(&out.stdout)
    );
    // Without the key the deleted records are a gap.
    let out = hub(&["audit", "verify", "--config", &without], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("records 1–6 were removed"),
        "{}",
        text(&out.stderr)
    );

    // An edit after the checkpoint is named.
    let url = format!("sqlite://{}", dir.path().join("state/hub.db").display());
    let mut c = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("UPDATE hub_audit SET subject = 'y' WHERE seq = 8")
        .execute(&mut c)
        .await
        .unwrap();
    let out = hub(&["audit", "verify", "--config", &with_key], &[]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("record 8 was edited"),
        "{}",
        text(&out.stderr)
    );
}

/// The example configuration as a production deployment would start from it: the profile
/// line removed, paths made absolute, in `dir` with a copy of the development key ring beside
/// it. `secrets` replaces the two clear secrets and leaves the cookie at its default (Secure).
fn production_copy(dir: &std::path::Path, secrets: Option<(&str, &str)>) -> std::path::PathBuf {
    let repo = repo();
    let mut text = std::fs::read_to_string(repo.join("ops/hub.example.toml"))
        .unwrap()
        .replace("profile = \"development\"\n", "")
        .replace("\"../", &format!("\"{}/", repo.display()));
    if let Some((app, partner)) = secrets {
        text = text
            .replace("secure_cookie = false\n", "")
            .replace(
                "hmac_secret = \"dev-only-hotline-secret-change-me\"",
                &format!("hmac_secret_env = \"{app}\""),
            )
            .replace(
                "hmac_secret = \"dev-only-12345-secret-change-me\"",
                &format!("hmac_secret_file = \"{partner}\""),
            )
            .replace(
                "token = \"dev-only-admin-token-change-me\"",
                &format!("token_env = \"{app}\""),
            );
    }
    std::fs::copy(
        repo.join("ops/dev-keyring.toml"),
        dir.join("dev-keyring.toml"),
    )
    .unwrap();
    let path = dir.join("hub.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_production_profile_refuses_development_keys_secrets_plain_http_and_insecure_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let config = production_copy(dir.path(), None);
    let check = |env: &[(&str, &str)]| {
        let out = hub(&["check", "--config", config.to_str().unwrap()], env);
        (out.status.code(), text(&out.stderr))
    };
    let (code, stderr) = check(&[]);
    assert_eq!(code, Some(1), "{stderr}");
    // (The key ring is checked once the configuration itself is clean: the next test.)
    for expected in [
        "key `admin.token`: PROFILE_DEVELOPMENT_SECRET",
        "key `gateway.apps[0].hmac_secret`: PROFILE_DEVELOPMENT_SECRET",
        "key `partners.hotline12345.hmac_secret`: PROFILE_DEVELOPMENT_SECRET",
        "key `console.secure_cookie`: PROFILE_INSECURE_COOKIE",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in:\n{stderr}");
    }
    assert!(
        !stderr.contains("dev-only-hotline-secret") && !stderr.contains("dev-only-12345"),
        "a secret's value in the problems: {stderr}"
    );
    // Plain HTTP off loopback (gateway and admin), and a KMS over plain http.
    let (code, stderr) = check(&[
        ("HUB_GATEWAY__LISTEN", "0.0.0.0:9480"),
        ("HUB_ADMIN__LISTEN", "0.0.0.0:9470"),
        ("HUB_GATEWAY__KMS__URL", "http://10.1.2.3:8200"),
        ("HUB_GATEWAY__KMS__APP_ID", "hub"),
        (
            "HUB_GATEWAY__KMS__HMAC_SECRET",
            "a-real-looking-kms-secret-123",
        ),
    ]);
    assert_eq!(code, Some(1));
    for expected in [
        "key `gateway.plain_http`: PROFILE_PLAIN_HTTP",
        "key `admin.listen`: PROFILE_PLAIN_HTTP",
        "key `admin.metrics_open`: ADMIN_OPEN_OFF_LOOPBACK",
        "key `admin.registry_open`: ADMIN_OPEN_OFF_LOOPBACK",
        "key `gateway.kms.url`: PROFILE_KMS_PLAIN_HTTP",
        "KMS_PLAIN_HTTP: plain http to a KMS is allowed only on a loopback address",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in:\n{stderr}");
    }
    // Download links are bearer credentials: https only, and never the public development
    // secret.
    let with_files = dir.path().join("with-files.toml");
    std::fs::write(
        &with_files,
        format!(
            "{}\n[files]\ndir = \"files\"\ndownload_base_url = \"http://hub.example.gov.cn\"\ndownload_secret = \"dev-only-download-secret-change-me\"\n",
            std::fs::read_to_string(&config).unwrap()
        ),
    )
    .unwrap();
    let out = hub(&["check", "--config", with_files.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    for expected in [
        "key `files.download_base_url`: PROFILE_PLAIN_HTTP",
        "key `files.download_secret`: PROFILE_DEVELOPMENT_SECRET",
    ] {
        assert!(stderr.contains(expected), "`{expected}` in:\n{stderr}");
    }
    assert!(!stderr.contains("dev-only-download-secret"), "{stderr}");
    // `serve` refuses the same before starting anything (exit 2).
    let out = hub(&["serve", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("PROFILE_DEVELOPMENT_SECRET"));
    // The example itself says it is a development stack, and passes.
    let example = repo().join("ops/hub.example.toml");
    let out = hub(&["check", "--config", example.to_str().unwrap()], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
}

#[test]
fn production_secrets_come_from_the_environment_or_a_file_and_only_the_key_ring_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("partner.secret");
    std::fs::write(&secret_file, "partner-secret-from-a-protected-file\n").unwrap();
    let config = production_copy(
        dir.path(),
        Some(("HUB_TEST_APP_SECRET", secret_file.to_str().unwrap())),
    );
    let env = [("HUB_TEST_APP_SECRET", "app-secret-from-the-environment-42")];
    let out = hub(&["check", "--config", config.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert_eq!(
        stderr.matches("PROFILE_").count(),
        1,
        "only the development key ring is left: {stderr}"
    );
    assert!(stderr.contains("PROFILE_DEVELOPMENT_KEYS"), "{stderr}");
    // `serve` refuses the development key ring before it starts anything.
    let out = hub(&["serve", "--config", config.to_str().unwrap()], &env);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("PROFILE_DEVELOPMENT_KEYS"), "{stderr}");
    for secret in [
        "app-secret-from-the-environment-42",
        "partner-secret-from-a-protected-file",
    ] {
        assert!(!stderr.contains(secret), "a secret in the log: {stderr}");
    }
    // With a key ring of its own, the production configuration passes.
    let key = hex::encode(hub_security::sm::random::<16>());
    std::fs::write(
        dir.path().join("dev-keyring.toml"),
        format!("current = \"k1\"\n[keys]\nk1 = \"{key}\"\n"),
    )
    .unwrap();
    let out = hub(&["check", "--config", config.to_str().unwrap()], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // A missing variable is named, with where it was asked for.
    let out = hub(&["check", "--config", config.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("`HUB_TEST_APP_SECRET` is not set"),
        "{}",
        text(&out.stderr)
    );
}
