//! Personal fields through the pipeline: whatever a partner writes in a personal field is
//! sealed before Kafka, also text that starts like a sealed value (`sm4gcm:v1:…`).

use std::path::{Path, PathBuf};

use hub_contracts::Catalog;
use hub_mapping::MappingSet;
use hub_security::field::{FieldCipher, KeyRing};
use serde_json::Value;

const TOPIC: &str = "hotline.ticket.dispatched.v1";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn loaded() -> (Catalog, MappingSet, FieldCipher) {
    let catalog = hub_contracts::load_dir(&repo().join("contracts/schemas")).unwrap();
    let set = MappingSet::load(&repo().join("mappings"), &catalog).unwrap();
    let ring = KeyRing::from_file(&repo().join("ops/dev-keyring.toml")).unwrap();
    (catalog, set, FieldCipher::new(ring))
}

fn dispatch_with(phone: &str, name: &str) -> Vec<u8> {
    let path = repo().join("mappings/hotline12345/fixtures/dispatch_json/normal.input.json");
    let mut doc: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    doc["lxdh"] = Value::String(phone.into());
    doc["ldrxm"] = Value::String(name.into());
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn a_value_that_only_looks_sealed_is_sealed_like_any_other() {
    let (catalog, set, cipher) = loaded();
    let mapping = set.get("hotline12345", "dispatch_json").unwrap();
    let contract = catalog.contract(TOPIC).unwrap();
    // What a partner could send to smuggle clear personal data past the sealing: the prefix,
    // a key id, and the clear value behind it (well-formed base64url, too).
    let disguised_phone = "sm4gcm:v1:dev-2026-11:13800138000";
    let disguised_name =
        "sm4gcm:v1:5byg5LiJ:5byg5LiJ5byg5LiJ5byg5LiJ5byg5LiJ5byg5LiJ5byg5LiJ5byg5LiJ";
    let body = dispatch_with(disguised_phone, disguised_name);
    let n = hub_pipeline::normalize(mapping, &catalog, &cipher, |c| c.schema_id(), &body).unwrap();
    let on_kafka = String::from_utf8_lossy(&n.framed);
    assert!(
        !on_kafka.contains("13800138000") && !on_kafka.contains("5byg5LiJ"),
        "the partner's text reached the record in clear"
    );
    let record =
        hub_pipeline::read_record(&catalog, contract, contract.schema_id(), &n.framed).unwrap();
    let phone = record["caller_phone"].as_str().unwrap();
    assert!(phone.starts_with("sm4gcm:v1:dev-2026-11:"), "{phone}");
    assert_ne!(phone, disguised_phone);
    // Sealed once more: it opens to exactly what the partner sent.
    assert_eq!(
        cipher
            .open(&format!("{TOPIC}/caller_phone"), phone)
            .unwrap(),
        disguised_phone
    );
    let name = record["caller_name"].as_str().unwrap();
    assert_eq!(
        cipher.open(&format!("{TOPIC}/caller_name"), name).unwrap(),
        disguised_name
    );
}

#[test]
fn a_screen_shows_a_key_id_only_for_a_well_formed_ciphertext() {
    let (catalog, _, cipher) = loaded();
    let contract = catalog.contract(TOPIC).unwrap();
    let real = cipher
        .seal(&format!("{TOPIC}/caller_phone"), "13800138000")
        .unwrap();
    let mut record = serde_json::json!({
        "caller_phone": real,
        "caller_name": "sm4gcm:v1:13800138000:张三",
    });
    hub_pipeline::pii::mask_record(contract, &mut record);
    assert!(
        record["caller_phone"]
            .as_str()
            .unwrap()
            .starts_with("sm4gcm:v1:dev-2026-11:…"),
        "{record}"
    );
    let name = record["caller_name"].as_str().unwrap();
    assert!(
        !name.contains("13800138000") && !name.contains("张三"),
        "a value behind a fake prefix is masked as clear text: {name}"
    );
}

#[test]
fn the_screen_form_of_a_sealed_value_is_recognised_and_a_fake_one_is_not() {
    let (catalog, _, cipher) = loaded();
    let contract = catalog.contract(TOPIC).unwrap();
    let real = cipher
        .seal(&format!("{TOPIC}/caller_phone"), "13800138000")
        .unwrap();
    let mut record = serde_json::json!({ "caller_phone": real });
    hub_pipeline::pii::mask_record(contract, &mut record);
    let shown = record["caller_phone"].as_str().unwrap();
    // What a screen shows of a sealed value is recognised, so later masking leaves it alone.
    assert!(hub_pipeline::pii::is_shown_sealed(shown), "{shown}");
    assert!(shown.contains("已加密 / sealed"), "{shown}");
    // A string that only imitates it around clear text is not.
    for fake in [
        "sm4gcm:v1:张三:…（已加密 / sealed）",
        "sm4gcm:v1::…（已加密 / sealed）",
        "sm4gcm:v1:dev-2026-11:13800138000",
    ] {
        assert!(!hub_pipeline::pii::is_shown_sealed(fake), "{fake}");
    }
}
