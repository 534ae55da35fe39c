//! File store throughput, into and out of the local store, clear and encrypted at rest, against
//! the same bytes written (with fsync) and read back by plain `tokio::fs` in the same run and
//! the same folder. `cargo bench -p hub-files --bench throughput [-- <MiB> <folder>]` prints a
//! table for docs/performance.md (defaults: 64 MiB files, a temporary folder under `var/`).
//!
//! Every put stores new content (a counter in the first bytes), so no put is answered by the
//! store's content addressing from a file it already has. Run by `cargo test --all-targets`
//! (without `--bench`) it is a smoke run on 1 MiB, one round: it proves the bench works, and
//! its figures mean nothing.

use std::collections::BTreeMap;
use std::time::Instant;

use bytes::Bytes;
use hub_files::store::{FileStore, Limits, PutOptions};
use hub_security::field::{FieldCipher, KeyRing};
use tokio::io::AsyncWriteExt;

/// `mib` MiB that the store recognises as a PDF: `%PDF-` and incompressible bytes.
fn content(mib: usize, round: usize) -> Bytes {
    let mut bytes = Vec::with_capacity(mib << 20);
    bytes.extend_from_slice(format!("%PDF-1.7\n%{round:08}\n").as_bytes());
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ round as u64;
    while bytes.len() < mib << 20 {
        // xorshift64*: fast, and not compressible by anything on the path.
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        bytes.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    bytes.truncate(mib << 20);
    Bytes::from(bytes)
}

fn mb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1_000_000.0 / seconds
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo bench` passes `--bench`; the numbers and the folder are ours.
    let measuring = std::env::args().any(|a| a == "--bench");
    let rounds = if measuring { 3 } else { 1 };
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let mib: usize = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or(if measuring { 64 } else { 1 });
    let root = match args.get(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../var/bench"),
    };
    std::fs::create_dir_all(&root).expect("bench folder");
    let dir = tempfile::tempdir_in(&root).expect("temporary folder");
    let mut keys = BTreeMap::new();
    keys.insert("bench".to_string(), [7u8; 16]);
    let cipher = FieldCipher::new(KeyRing::new("bench", keys).expect("key ring"));
    let limits = Limits {
        max_bytes: (mib as u64 + 1) << 20,
        ..Limits::default()
    };
    let store = FileStore::local(&dir.path().join("store"), Some(cipher), limits).expect("store");
    let plain = dir.path().join("plain");
    std::fs::create_dir_all(&plain).expect("plain folder");

    let size = mib << 20;
    let mut best = BTreeMap::<&str, f64>::new();
    let mut keep = |name: &'static str, seconds: f64| {
        let v = mb_per_s(size, seconds);
        let e = best.entry(name).or_insert(0.0);
        *e = e.max(v);
    };
    for round in 0..rounds {
        // Baseline: the same bytes to a file, fsynced, and read back.
        let data = content(mib, round * 4);
        let path = plain.join(format!("{round}.bin"));
        let t = Instant::now();
        let mut f = tokio::fs::File::create(&path).await.expect("create");
        f.write_all(&data).await.expect("write");
        f.sync_all().await.expect("fsync");
        drop(f);
        keep(
            "baseline write (tokio::fs + fsync)",
            t.elapsed().as_secs_f64(),
        );
        let t = Instant::now();
        let back = tokio::fs::read(&path).await.expect("read");
        keep("baseline read (tokio::fs)", t.elapsed().as_secs_f64());
        assert_eq!(back.len(), size);

        for (personal, put_name, get_name) in [
            (false, "store put, clear", "store read, clear (SM3 checked)"),
            (
                true,
                "store put, SM4 at rest",
                "store read, SM4 at rest (decrypted, SM3 checked)",
            ),
        ] {
            let data = content(mib, round * 4 + 1 + personal as usize);
            let t = Instant::now();
            let meta = store
                .put_bytes(data, &PutOptions::default().personal(personal))
                .await
                .expect("put");
            keep(put_name, t.elapsed().as_secs_f64());
            let t = Instant::now();
            let (_, back) = store.read_all(&meta.id, size as u64).await.expect("read");
            keep(get_name, t.elapsed().as_secs_f64());
            assert_eq!(back.len(), size);
        }
    }
    let base_write = best["baseline write (tokio::fs + fsync)"];
    let base_read = best["baseline read (tokio::fs)"];
    println!(
        "{mib} MiB files, best of {rounds} rounds, folder {}",
        root.display()
    );
    println!("| path | MB/s | × baseline |");
    println!("|---|---|---|");
    for name in [
        "baseline write (tokio::fs + fsync)",
        "store put, clear",
        "store put, SM4 at rest",
        "baseline read (tokio::fs)",
        "store read, clear (SM3 checked)",
        "store read, SM4 at rest (decrypted, SM3 checked)",
    ] {
        let base = if name.contains("read") {
            base_read
        } else {
            base_write
        };
        println!("| {name} | {:.0} | {:.2} |", best[name], best[name] / base);
    }
}
