//! The HTTP KMS client against the KMS simulator, a real HTTP server in its own process:
//! data keys wrapped by the KMS are unwrapped into the key ring at start; a wrong credential,
//! an unknown master key, a KMS that is down, or a wrapped key without a KMS are refused.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use hub_security::field::FieldCipher;
use hub_security::kms::{load_key_ring, HttpKms};

const MASTER: &str = "000102030405060708090a0b0c0d0e0f";

struct Sim {
    child: Child,
    url: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim() -> Sim {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kms-sim"))
        .args([
            "--app-id",
            "hub",
            "--secret",
            "kms-test-secret-0123456789",
            "--master",
            &format!("m1={MASTER}"),
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kms-sim starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("LISTENING ")
        .expect("kms-sim announces its address")
        .to_string();
    Sim {
        child,
        url: format!("http://{addr}"),
    }
}

#[tokio::test]
async fn wrapped_data_keys_are_unwrapped_by_the_kms_into_a_working_key_ring() {
    let sim = start_sim();
    let kms = HttpKms::new(&sim.url, "hub", "kms-test-secret-0123456789").unwrap();
    let data_key = hub_security::sm::random::<16>();
    let wrapped = kms.wrap_key("m1", &data_key).await.unwrap();
    assert_ne!(
        &wrapped[12..28],
        &data_key[..],
        "the file never holds the key itself"
    );

    let dir = tempfile::tempdir().unwrap();
    let ring_path = dir.path().join("ring.toml");
    std::fs::write(
        &ring_path,
        format!("current = \"k2\"\n[keys]\nk1 = \"0123456789abcdeffedcba9876543210\"\nk2 = \"kms:m1:{}\"\n", hex::encode(&wrapped)),
    )
    .unwrap();
    assert_eq!(
        hub_security::kms::check_key_ring_file(&ring_path).unwrap(),
        1
    );
    let ring = load_key_ring(&ring_path, Some(&kms)).await.unwrap();
    assert_eq!(ring.current_id(), "k2");
    // The unwrapped key is the one that was wrapped: a value sealed with it opens with a ring
    // built from the plain key.
    let sealed = FieldCipher::new(ring).seal("t/f", "13800138000").unwrap();
    let mut keys = std::collections::BTreeMap::new();
    keys.insert("k2".to_string(), data_key);
    let direct = FieldCipher::new(hub_security::field::KeyRing::new("k2", keys).unwrap());
    assert_eq!(direct.open("t/f", &sealed).unwrap(), "13800138000");

    // Refusals.
    let wrong = HttpKms::new(&sim.url, "hub", "not-the-kms-secret-0123").unwrap();
    let err = load_key_ring(&ring_path, Some(&wrong))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS_SIGNATURE_INVALID"), "{err}");
    let err = load_key_ring::<HttpKms>(&ring_path, None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("key `k2` is wrapped by a KMS, but no KMS is configured"),
        "{err}"
    );
    std::fs::write(
        &ring_path,
        format!(
            "current = \"k2\"\n[keys]\nk2 = \"kms:m9:{}\"\n",
            hex::encode(&wrapped)
        ),
    )
    .unwrap();
    let err = load_key_ring(&ring_path, Some(&kms))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS_MASTER_KEY_UNKNOWN"), "{err}");
    drop(sim);
    std::fs::write(
        &ring_path,
        format!(
            "current = \"k2\"\n[keys]\nk2 = \"kms:m1:{}\"\n",
            hex::encode(&wrapped)
        ),
    )
    .unwrap();
    let err = load_key_ring(&ring_path, Some(&kms))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("KMS unreachable"), "{err}");
}
