//! The ingest requests: 1 KB 12345 dispatch tickets (JSON, and GBK XML for the
//! `dispatch_xml` mapping) shaped like the golden fixtures, signed as a partner signs them.
//!
//! Each body has its own ticket number (the Kafka key, so records spread over the topic's
//! partitions as real traffic does), exactly two personal fields (caller name and phone; the
//! address is "-", which the mapping reads as absent), and free text drawn pseudo-randomly
//! from common characters so that lz4 cannot shrink the records to nothing.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use bytes::Bytes;
use hub_security::signing::{header, SigningCredential};
use hyper::header::{HeaderName, HeaderValue};

/// Exact size of every request body.
pub const BODY_BYTES: usize = 1024;
/// Distinct bodies (ticket numbers) per format; requests cycle through them.
pub const DISTINCT_BODIES: usize = 1024;

/// The development credentials of `ops/hub.example.toml` (public, in git).
pub const APP_ID: &str = "hotline12345-city";
pub const HMAC_SECRET: &str = "dev-only-hotline-secret-change-me";
pub const PARTNER: &str = "hotline12345";

/// Characters of the free text (all in GBK, none special in JSON or XML).
const TEXT: &str = "市民来电反映路段积水严重影响通行请尽快处理小区停水未通知老人生活不便噪音扰民夜间施工违章搭建垃圾清运不及时井盖缺失路灯不亮绿化损坏";

/// The two request formats of the 12345 dispatch push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    XmlGbk,
}

impl Format {
    /// The mapping (route) it goes to.
    pub fn mapping(self) -> &'static str {
        match self {
            Format::Json => "dispatch_json",
            Format::XmlGbk => "dispatch_xml",
        }
    }

    pub fn path(self) -> String {
        format!("/v1/{PARTNER}/{}", self.mapping())
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json; charset=utf-8",
            Format::XmlGbk => "application/xml; charset=GBK",
        }
    }

    /// `DISTINCT_BODIES` bodies of exactly `BODY_BYTES` bytes.
    pub fn bodies(self) -> Vec<Bytes> {
        (0..DISTINCT_BODIES)
            .map(|i| {
                Bytes::from(match self {
                    Format::Json => json_body(i),
                    Format::XmlGbk => xml_gbk_body(i),
                })
            })
            .collect()
    }
}

/// Pseudo-random text of `chars` characters from [`TEXT`], then `ascii` ASCII digits.
fn filler(seed: usize, chars: usize, ascii: usize) -> String {
    let pool: Vec<char> = TEXT.chars().collect();
    let mut x = (seed as u64)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut out = String::new();
    for _ in 0..chars {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        out.push(pool[(x >> 33) as usize % pool.len()]);
    }
    out.extend((0..ascii).map(|k| char::from(b'0' + (k % 10) as u8)));
    out
}

fn ticket_no(i: usize) -> String {
    format!("GD{:014}", 20_261_122_000_000u64 + i as u64)
}

const SQNR: &str = "@SQNR@";

fn json_template(i: usize) -> String {
    format!(
        r#"{{"gdbh":"{}","qd":"12345","bt":"张江路路灯不亮且积水","sqnr":"{SQNR}","sqlb":"0305","jjcd":"1","qh":"310115","sfdz":"-","ldrxm":"张三","lxdh":"13800138000","cbdw":{{"dm":"11310000002420347T","mc":"上海市水务局"}},"qssx":"2026-11-22 12:00:00","blsx":"2026-11-29 18:00:00","pdsj":"2026-11-22 09:30:00","fj":[{{"wjid":"F0001","mc":"现场照片.jpg","lx":"image/jpeg","dx":204800,"sm3":"66C7F0F462EEEDD9D1F2D46BDC10E4E24167C4875CF2F7A2297DA02B8F4BA8E0"}}]}}"#,
        ticket_no(i)
    )
}

/// A 1,024-byte JSON dispatch ticket (UTF-8: three bytes per character of the free text).
pub fn json_body(i: usize) -> Vec<u8> {
    let template = json_template(i);
    let room = BODY_BYTES - (template.len() - SQNR.len());
    let text = filler(i, room / 3, room % 3);
    let body = template.replace(SQNR, &text);
    debug_assert_eq!(body.len(), BODY_BYTES);
    body.into_bytes()
}

fn xml_template(i: usize) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<gd><gdbh>{}</gdbh><qd>12345</qd><bt>小区停水未通知</bt><sqnr>{SQNR}</sqnr><sqlb>0303</sqlb><jjcd>0</jjcd><qh>310104</qh><sfdz>-</sfdz><ldrxm>李四</ldrxm><lxdh>021-64000000</lxdh><cbdw><dm>11310000002420347T</dm><mc>上海市水务局</mc></cbdw><qssx>2026-11-22 14:00:00</qssx><blsx>2026-11-27 18:00:00</blsx><pdsj>2026-11-22 11:00:00</pdsj><fj><wjid>F0002</wjid><mc>录音.mp3</mc><lx>audio/mpeg</lx><dx>51200</dx><sm3></sm3></fj></gd>\n",
        ticket_no(i)
    )
}

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "the benchmark text is all GBK");
    bytes.into_owned()
}

/// A 1,024-byte GBK XML dispatch ticket (two bytes per character of the free text).
pub fn xml_gbk_body(i: usize) -> Vec<u8> {
    let template = xml_template(i);
    let room = BODY_BYTES - gbk(&template.replace(SQNR, "")).len();
    let body = gbk(&template.replace(SQNR, &filler(i, room / 2, room % 2)));
    debug_assert_eq!(body.len(), BODY_BYTES);
    body
}

/// The three per-request signature headers (the app id and method are the same every time).
#[derive(Clone)]
pub struct Signed {
    pub body: usize,
    pub timestamp: HeaderValue,
    pub nonce: HeaderValue,
    pub signature: HeaderValue,
}

/// Signs with the hub's own helper, as `hub sign` does: fresh random nonce, current time.
pub struct Signer {
    credential: SigningCredential,
    path: String,
    bodies: Vec<Bytes>,
}

impl Signer {
    pub fn new(format: Format) -> Self {
        Self {
            credential: SigningCredential::HmacSm3 {
                secret: HMAC_SECRET.as_bytes().to_vec(),
            },
            path: format.path(),
            bodies: format.bodies(),
        }
    }

    pub fn bodies(&self) -> &[Bytes] {
        &self.bodies
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn sign(&self, body: usize) -> Signed {
        let now_ms = chrono::Utc::now().timestamp_millis();
        let headers = self.credential.sign_request(
            APP_ID,
            "POST",
            &self.path,
            "",
            &self.bodies[body],
            now_ms,
        );
        let get = |name: &str| {
            let v = &headers
                .iter()
                .find(|(n, _)| *n == name)
                .expect("sign_request returns every header")
                .1;
            HeaderValue::from_str(v).expect("signature headers are ASCII")
        };
        Signed {
            body,
            timestamp: get(header::TIMESTAMP),
            nonce: get(header::NONCE),
            signature: get(header::SIGNATURE),
        }
    }

    /// `n` requests signed now, in parallel on every core (before a timed window, so signing
    /// does not take the hub's CPU during it), starting at body `first`.
    pub fn presign(&self, first: usize, n: usize) -> Vec<Signed> {
        let threads = std::thread::available_parallelism().map_or(1, |p| p.get());
        let per = n.div_ceil(threads.max(1));
        std::thread::scope(|s| {
            let parts: Vec<_> = (0..threads)
                .map(|t| {
                    s.spawn(move || {
                        let lo = (t * per).min(n);
                        let hi = ((t + 1) * per).min(n);
                        (lo..hi)
                            .map(|k| self.sign((first + k) % self.bodies.len()))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            parts
                .into_iter()
                .flat_map(|p| p.join().expect("signing thread"))
                .collect()
        })
    }
}

/// Where a connection takes its next request from: a pool signed before the window (reused
/// cyclically for the bare server, which checks nothing; used once each for the hub), then
/// live signing if the pool runs out (counted, and reported).
pub struct Requests {
    signer: std::sync::Arc<Signer>,
    presigned: Vec<Signed>,
    cycle: bool,
    next: AtomicUsize,
    live: AtomicU64,
    pub content_type: HeaderValue,
}

/// Header names, made once.
pub struct Names {
    pub app_id: HeaderName,
    pub timestamp: HeaderName,
    pub nonce: HeaderName,
    pub method: HeaderName,
    pub signature: HeaderName,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            app_id: HeaderName::from_static(header::APP_ID),
            timestamp: HeaderName::from_static(header::TIMESTAMP),
            nonce: HeaderName::from_static(header::NONCE),
            method: HeaderName::from_static(header::SIGNATURE_METHOD),
            signature: HeaderName::from_static(header::SIGNATURE),
        }
    }
}

impl Requests {
    /// Signs every request live (warm-ups, whose rate sizes the next pool).
    pub fn live(signer: std::sync::Arc<Signer>, format: Format) -> Self {
        Self::with_pool(signer, format, Vec::new(), false)
    }

    pub fn with_pool(
        signer: std::sync::Arc<Signer>,
        format: Format,
        presigned: Vec<Signed>,
        cycle: bool,
    ) -> Self {
        assert!(
            !cycle || !presigned.is_empty(),
            "a cyclic pool needs requests"
        );
        Self {
            signer,
            presigned,
            cycle,
            next: AtomicUsize::new(0),
            live: AtomicU64::new(0),
            content_type: HeaderValue::from_static(format.content_type()),
        }
    }

    pub fn path(&self) -> &str {
        self.signer.path()
    }

    /// The next request's body and signature headers.
    pub fn take(&self) -> (Bytes, Signed) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        let signed = if self.cycle {
            self.presigned[i % self.presigned.len()].clone()
        } else if let Some(s) = self.presigned.get(i) {
            s.clone()
        } else {
            self.live.fetch_add(1, Ordering::Relaxed);
            self.signer.sign(i % self.signer.bodies().len())
        };
        (self.signer.bodies()[signed.body].clone(), signed)
    }

    /// Requests signed during the run because the pool was exhausted.
    pub fn signed_live(&self) -> u64 {
        self.live.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_exactly_one_kilobyte_and_distinct() {
        for format in [Format::Json, Format::XmlGbk] {
            let bodies = format.bodies();
            assert!(bodies.iter().all(|b| b.len() == BODY_BYTES));
            assert_ne!(bodies[0], bodies[1]);
        }
        let json: serde_json::Value = serde_json::from_slice(&json_body(7)).unwrap();
        assert_eq!(json["gdbh"], "GD20261122000007");
        let xml = xml_gbk_body(7);
        let (text, _, bad) = encoding_rs::GBK.decode(&xml);
        assert!(!bad);
        assert!(text.contains("<gdbh>GD20261122000007</gdbh>"));
    }

    #[test]
    fn the_bodies_map_with_two_personal_fields() {
        let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let catalog = hub_contracts::load_dir(&repo.join("contracts/schemas")).unwrap();
        let set = hub_mapping::MappingSet::load(&repo.join("mappings"), &catalog).unwrap();
        for format in [Format::Json, Format::XmlGbk] {
            let mapping = set.get(PARTNER, format.mapping()).unwrap();
            let record = mapping.inbound(&format.bodies()[3], &catalog).unwrap();
            assert!(record["address"].is_null());
            assert!(record["caller_name"].is_string());
            assert!(record["caller_phone"].is_string());
        }
    }

    #[test]
    fn signatures_verify_with_the_hubs_verifier() {
        let signer = Signer::new(Format::Json);
        let s = signer.sign(5);
        let parts = hub_security::signing::RequestParts {
            method: hub_security::signing::SignatureMethod::HmacSm3,
            http_method: "POST",
            path: signer.path(),
            raw_query: "",
            app_id: APP_ID,
            timestamp_ms: s.timestamp.to_str().unwrap().parse().unwrap(),
            nonce: s.nonce.to_str().unwrap(),
            body: &signer.bodies()[5],
            signed_headers: &[],
        };
        let verifier = hub_security::signing::VerifyingCredential::HmacSm3 {
            secret: HMAC_SECRET.as_bytes().to_vec(),
        };
        assert!(verifier
            .verify(&parts.canonical(), s.signature.to_str().unwrap())
            .is_ok());
        let pool = signer.presign(0, 10);
        let nonces: std::collections::BTreeSet<_> = pool.iter().map(|s| s.nonce.clone()).collect();
        assert_eq!(nonces.len(), 10);
    }
}
