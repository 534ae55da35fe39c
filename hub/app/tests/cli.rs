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
