//! `hub adapter new` as a developer runs it, on a copy of the repository's contracts, mappings
//! and adapter manifests: the skeleton passes `hub check`, touches no file that was there, and a
//! second run or a bad name is refused with its stable code.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use support::*;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// What `hub check` and `hub adapter new` read of the repository, with a configuration that
/// points at it.
fn repository_copy(root: &Path) -> PathBuf {
    copy_dir(
        &repo().join("contracts/schemas"),
        &root.join("contracts/schemas"),
    );
    copy_dir(&repo().join("mappings"), &root.join("mappings"));
    for entry in std::fs::read_dir(repo().join("adapters")).unwrap() {
        let manifest = entry.unwrap().path().join("adapter.toml");
        if manifest.is_file() {
            let folder = root
                .join("adapters")
                .join(manifest.parent().unwrap().file_name().unwrap());
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::copy(&manifest, folder.join("adapter.toml")).unwrap();
        }
    }
    write_config(root, "[bus]\nbootstrap_servers = \"127.0.0.1:9092\"\n")
}

/// Every file under `root`, by relative path, with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// The counts in `hub check`'s verdict line: `(49 contracts, 49 topics, …)` → name → number.
fn check_counts(stdout: &str) -> BTreeMap<String, usize> {
    let inside = stdout
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map(|(inside, _)| inside)
        .unwrap_or_else(|| panic!("no counts in {stdout}"));
    inside
        .split(", ")
        .map(|part| {
            let (n, what) = part.split_once(' ').unwrap();
            (what.to_string(), n.parse().unwrap())
        })
        .collect()
}

#[test]
fn a_new_partner_passes_check_edits_nothing_and_is_not_written_twice() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let config = repository_copy(root);
    let config = config.to_str().unwrap();
    let root_arg = root.to_str().unwrap();

    let before_check = hub(&["check", "--config", config], &[]);
    assert!(
        before_check.status.success(),
        "{}",
        text(&before_check.stderr)
    );
    let before_counts = check_counts(&text(&before_check.stdout));
    let before = snapshot(root);

    let out = hub(&["adapter", "new", "demo_partner", "--dir", root_arg], &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let after = snapshot(root);

    // Nothing that was there changed or went away: no shared file is edited.
    let edited: Vec<_> = before
        .iter()
        .filter(|(path, bytes)| after.get(*path) != Some(*bytes))
        .map(|(path, _)| path)
        .collect();
    assert!(edited.is_empty(), "files edited or removed: {edited:?}");

    // What was created is exactly what the command printed, and all of it is the partner's.
    let created: Vec<PathBuf> = after
        .keys()
        .filter(|p| !before.contains_key(*p))
        .cloned()
        .collect();
    let stdout = text(&out.stdout);
    let printed: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(PathBuf::from)
        .collect();
    let mut sorted = printed.clone();
    sorted.sort();
    assert_eq!(sorted, created, "{stdout}");
    assert_eq!(created.len(), 12, "{created:?}");
    assert!(
        stdout.contains(&format!("{} files", created.len())),
        "{stdout}"
    );
    for path in &created {
        assert!(
            path.starts_with("adapters/demo_partner")
                || path.starts_with("mappings/demo_partner")
                || path.starts_with("contracts/schemas/demopartner"),
            "{} is outside the partner's folders",
            path.display()
        );
    }

    // The simulator is a workspace member through the root manifest's glob.
    let simulator = text(&after[Path::new("adapters/demo_partner/simulator/Cargo.toml")]);
    assert!(simulator.contains("name = \"demo_partner-simulator\""));
    assert!(simulator.contains("sim-kit.workspace = true"));
    let workspace = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    assert!(
        workspace.contains("\"adapters/*/simulator\","),
        "{workspace}"
    );

    // The skeleton passes `hub check`: one more adapter, contract, mapping and two fixtures.
    let check = hub(&["check", "--config", config], &[]);
    assert!(check.status.success(), "stderr: {}", text(&check.stderr));
    let counts = check_counts(&text(&check.stdout));
    for (what, more) in [
        ("adapters", 1),
        ("contracts", 1),
        ("topics", 1),
        ("mappings", 1),
        ("fixtures", 2),
    ] {
        assert_eq!(
            counts[what],
            before_counts[what] + more,
            "{what}: {}",
            text(&check.stdout)
        );
    }

    // A second run refuses and writes nothing.
    let again = hub(&["adapter", "new", "demo_partner", "--dir", root_arg], &[]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = text(&again.stderr);
    assert!(stderr.starts_with("ADAPTER_EXISTS: "), "{stderr}");
    assert!(stderr.contains("已存在"), "{stderr}");
    assert_eq!(snapshot(root), after);

    // So does a name whose folder exists under mappings only (the code tables).
    let tables = hub(&["adapter", "new", "tables", "--dir", root_arg], &[]);
    assert_eq!(tables.status.code(), Some(1));
    assert!(text(&tables.stderr).starts_with("ADAPTER_EXISTS: "));
    assert_eq!(snapshot(root), after);
}

#[test]
fn bad_names_families_and_folders_are_refused_with_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    repository_copy(root);
    let before = snapshot(root);
    let root_arg = root.to_str().unwrap();
    let too_long = "a".repeat(65);
    for (args, code) in [
        (vec!["Demo"], "ADAPTER_NAME_INVALID"),
        (vec!["9lives"], "ADAPTER_NAME_INVALID"),
        (vec!["demo-partner"], "ADAPTER_NAME_INVALID"),
        (vec!["_demo"], "ADAPTER_NAME_INVALID"),
        (vec!["demo/x"], "ADAPTER_NAME_INVALID"),
        (vec![""], "ADAPTER_NAME_INVALID"),
        (vec![too_long.as_str()], "ADAPTER_NAME_INVALID"),
        (vec!["demo", "--family", "demo_x"], "ADAPTER_FAMILY_INVALID"),
        (vec!["demo", "--family", "hub"], "ADAPTER_FAMILY_INVALID"),
    ] {
        let mut all = vec!["adapter", "new"];
        all.extend(&args);
        all.extend(["--dir", root_arg]);
        let out = hub(&all, &[]);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = text(&out.stderr);
        assert!(
            stderr.starts_with(&format!("{code}: ")),
            "{args:?}: {stderr}"
        );
        // Chinese first, then the English beside it.
        let (zh, en) = stderr.split_once(" / ").expect("two languages");
        assert!(zh.contains("无效"), "{stderr}");
        assert!(en.contains("is invalid"), "{stderr}");
    }
    assert_eq!(snapshot(root), before, "nothing is written for a refusal");

    // A folder that is not the repository's root.
    let elsewhere = tempfile::tempdir().unwrap();
    let out = hub(
        &[
            "adapter",
            "new",
            "demo",
            "--dir",
            elsewhere.path().to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).starts_with("ADAPTER_ROOT_INVALID: "));
    assert_eq!(std::fs::read_dir(elsewhere.path()).unwrap().count(), 0);
}
