//! Realistic water-affairs tickets (派单), and the platform's follow-up messages (督办, 销单,
//! 回访), in exactly the shapes of `mappings/hotline12345/fixtures/`.
//!
//! Codes come only from the tables the mappings accept (`mappings/tables/hotline_*.json`,
//! `districts.json`); a test runs every generated message through the hub's own mappings.
//! Personal data is generated and obviously fake (`王先生`, `138…`).

use chrono::{DateTime, Duration, Utc};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};
use serde_json::{json, Map, Value};

use crate::time::fmt_local;

/// `hotline_channels`, weighted towards 12345 itself.
const CHANNELS: &[(&str, u32)] = &[("12345", 70), ("12319", 15), ("110", 8), ("12314", 7)];

/// `districts`: code, name, a few streets of the district.
const DISTRICTS: &[(&str, &str, &[&str])] = &[
    ("310101", "黄浦区", &["南京东路", "西藏南路", "复兴东路"]),
    ("310104", "徐汇区", &["漕溪北路", "天钥桥路", "龙华中路"]),
    ("310105", "长宁区", &["天山路", "仙霞路", "虹桥路"]),
    ("310106", "静安区", &["共和新路", "江场路", "延长路"]),
    ("310107", "普陀区", &["真北路", "曹杨路", "长寿路"]),
    ("310109", "虹口区", &["四平路", "曲阳路", "广中路"]),
    ("310110", "杨浦区", &["控江路", "国权路", "长阳路"]),
    ("310112", "闵行区", &["莘松路", "七莘路", "都市路"]),
    ("310113", "宝山区", &["友谊路", "牡丹江路", "共康路"]),
    ("310114", "嘉定区", &["博乐路", "城中路", "曹安公路"]),
    (
        "310115",
        "浦东新区",
        &["张江路", "世纪大道", "川沙路", "杨高南路"],
    ),
    ("310116", "金山区", &["卫零路", "石化大道", "朱泾路"]),
    ("310117", "松江区", &["人民北路", "中山中路", "九亭大街"]),
    (
        "310118",
        "青浦区",
        &["公园路", "华青路", "朱家角镇祥凝浜路"],
    ),
    ("310120", "奉贤区", &["南桥路", "解放东路", "金海公路"]),
    (
        "310151",
        "崇明区",
        &["八一路", "城桥镇东门路", "陈家镇裕安路"],
    ),
];

/// A kind of appeal: `hotline_categories` code, titles and what the caller says (`{addr}` is
/// where it happens).
struct Kind {
    category: &'static str,
    titles: &'static [&'static str],
    contents: &'static [&'static str],
    urgent_share: f64,
}

const KINDS: &[Kind] = &[
    Kind {
        category: "0301",
        titles: &["自来水浑浊发黄", "自来水有异味", "水质浑浊有杂质"],
        contents: &[
            "市民来电反映：{addr}家中自来水从昨晚开始浑浊发黄，放水十分钟仍未变清，担心水质安全，请尽快检测处理。",
            "市民反映{addr}小区自来水有明显漂白粉味和铁锈味，烧开后有沉淀，希望相关部门检测水质。",
        ],
        urgent_share: 0.2,
    },
    Kind {
        category: "0302",
        titles: &["水压低高层用水困难", "早晚高峰水压低", "水压不稳"],
        contents: &[
            "市民来电反映：{addr}高层住户近一周早晚用水高峰水压低，热水器无法点火，请协调供水单位处理。",
            "市民反映{addr}一带水压时高时低，洗衣机经常报进水故障，希望排查原因。",
        ],
        urgent_share: 0.1,
    },
    Kind {
        category: "0303",
        titles: &["小区突然停水未通知", "停水时间过长", "停水无人答复"],
        contents: &[
            "市民来电反映：{addr}今日上午突然停水，事前未张贴通知，家中有老人和小孩，生活不便，请尽快恢复供水。",
            "市民反映{addr}自昨日下午停水至今未恢复，拨打供水热线无人答复，请督促处理。",
        ],
        urgent_share: 0.4,
    },
    Kind {
        category: "0304",
        titles: &["排水管堵塞污水外溢", "下水道堵塞返臭", "雨水口堵塞"],
        contents: &[
            "市民来电反映：{addr}附近排水管堵塞，污水从窨井冒出流到人行道上，气味难闻，请尽快疏通。",
            "市民反映{addr}小区门口雨水口被垃圾堵塞，一下雨就排不出去，请安排清掏。",
        ],
        urgent_share: 0.3,
    },
    Kind {
        category: "0305",
        titles: &["道路积水影响通行", "雨后积水严重", "路口积水"],
        contents: &[
            "市民来电反映：{addr}雨后积水深约二十厘米，非机动车无法通行，已持续多日，请尽快处理。",
            "市民反映{addr}路口每逢下雨必积水，行人只能绕行，希望彻底整治。",
        ],
        urgent_share: 0.3,
    },
    Kind {
        category: "0306",
        titles: &["河道污染有异味", "河道漂浮物多", "河道疑似偷排污水"],
        contents: &[
            "市民来电反映：{addr}旁河道水体发黑发臭，河面有大量漂浮物，请相关部门治理。",
            "市民反映{addr}附近有排口向河道排放污水，河水颜色异常，怀疑偷排，请核查。",
        ],
        urgent_share: 0.15,
    },
    Kind {
        category: "0307",
        titles: &["防汛墙破损", "泵站运行噪音大", "防汛闸门漏水"],
        contents: &[
            "市民来电反映：{addr}沿河防汛墙出现裂缝并有渗水，汛期临近，担心安全，请尽快检查修复。",
            "市民反映{addr}附近排水泵站夜间运行噪音很大，影响休息，请核实处理。",
        ],
        urgent_share: 0.25,
    },
    Kind {
        category: "0308",
        titles: &["窨井盖缺失", "窨井盖破损", "井盖松动异响"],
        contents: &[
            "市民来电反映：{addr}人行道上窨井盖缺失，仅用树枝遮挡，夜间有行人跌落风险，请紧急处置。",
            "市民反映{addr}路口窨井盖破损下陷，车辆经过时声音很大，请尽快更换。",
        ],
        urgent_share: 0.6,
    },
    Kind {
        category: "0399",
        titles: &["路面供水管漏水", "消火栓漏水", "水表井漏水"],
        contents: &[
            "市民来电反映：{addr}路面有自来水持续冒出，疑似地下供水管破裂漏水，浪费严重，请尽快抢修。",
            "市民反映{addr}小区内消火栓一直在漏水，已有数日，请安排维修。",
        ],
        urgent_share: 0.35,
    },
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙",
];

/// The handling unit every generated ticket goes to (the water bureau).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub code: String,
    pub name: String,
}

impl Default for Unit {
    fn default() -> Self {
        Unit {
            code: "11310000002420347T".into(),
            name: "上海市水务局".into(),
        }
    }
}

impl Unit {
    pub fn to_json(&self) -> Value {
        json!({ "dm": self.code, "mc": self.name })
    }
}

/// The generator: a seeded random source and a ticket-number sequence.
///
/// Numbers are `GD` + yyyymmdd + 2-digit run prefix + 4-digit sequence, so two runs with
/// different prefixes never collide on the same day; past 9999 the prefix moves on by one.
pub struct Generator {
    rng: StdRng,
    prefix: u32,
    seq: u32,
    unit: Unit,
}

impl Generator {
    /// `seed` makes the content reproducible; `prefix` (0–99) is the run prefix of the ticket
    /// numbers, random when not given.
    pub fn new(seed: Option<u64>, prefix: Option<u32>, unit: Unit) -> Self {
        let mut rng = match seed {
            Some(s) => StdRng::seed_from_u64(s),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        let prefix = prefix.unwrap_or_else(|| rng.random_range(0..100)) % 100;
        Generator {
            rng,
            prefix,
            seq: 0,
            unit,
        }
    }

    pub fn prefix(&self) -> u32 {
        self.prefix
    }

    pub fn unit(&self) -> &Unit {
        &self.unit
    }

    pub fn rng(&mut self) -> &mut StdRng {
        &mut self.rng
    }

    fn next_no(&mut self, at: DateTime<Utc>) -> String {
        self.seq += 1;
        if self.seq > 9999 {
            self.seq = 1;
            self.prefix = (self.prefix + 1) % 100;
        }
        let day = at.with_timezone(&crate::time::shanghai()).format("%Y%m%d");
        format!("GD{day}{:02}{:04}", self.prefix, self.seq)
    }

    fn weighted<'a>(&mut self, items: &'a [(&'a str, u32)]) -> &'a str {
        let total: u32 = items.iter().map(|(_, w)| w).sum();
        let mut pick = self.rng.random_range(0..total);
        for (v, w) in items {
            if pick < *w {
                return v;
            }
            pick -= w;
        }
        items[0].0
    }

    fn sm3_upper(&mut self) -> String {
        let bytes: [u8; 32] = self.rng.random();
        hub_security::sm::sm3_hex(&bytes).to_ascii_uppercase()
    }

    /// A dispatch (派单) made at `at`, as the JSON push carries it.
    pub fn dispatch(&mut self, at: DateTime<Utc>) -> Value {
        let no = self.next_no(at);
        let kind = KINDS.choose(&mut self.rng).expect("kinds");
        let (district, district_name, streets) = *DISTRICTS.choose(&mut self.rng).expect("d");
        let street = *streets.choose(&mut self.rng).expect("streets");
        let address = if self.rng.random_bool(0.5) {
            format!(
                "{district_name}{street} {} 号",
                self.rng.random_range(1..1500)
            )
        } else {
            format!(
                "{district_name}{street} {} 弄 {} 号",
                self.rng.random_range(1..900),
                self.rng.random_range(1..60)
            )
        };
        let title = *kind.titles.choose(&mut self.rng).expect("titles");
        let content = kind
            .contents
            .choose(&mut self.rng)
            .expect("contents")
            .replace("{addr}", &address);
        let urgent = self.rng.random_bool(kind.urgent_share);
        let channel = self.weighted(CHANNELS);
        // Deadlines relative to the dispatch: urgent tickets are signed within 30 minutes and
        // handled within a day, normal ones within 2 hours and 5 to 15 days.
        let (sign_in, handle_in) = if urgent {
            (Duration::minutes(30), Duration::hours(24))
        } else {
            (
                Duration::hours(2),
                Duration::days(*[5i64, 7, 15].choose(&mut self.rng).expect("days")),
            )
        };
        let anonymous = self.rng.random_bool(0.15);
        let mut m = Map::new();
        m.insert("gdbh".into(), json!(no));
        m.insert("qd".into(), json!(channel));
        m.insert("bt".into(), json!(title));
        m.insert(
            "sqnr".into(),
            json!(if anonymous {
                content.replace("市民来电反映：", "匿名来电反映：")
            } else {
                content
            }),
        );
        m.insert("sqlb".into(), json!(kind.category));
        m.insert("jjcd".into(), json!(if urgent { "1" } else { "0" }));
        m.insert("qh".into(), json!(district));
        // The incident's address is given for most tickets, anonymous or not.
        if self.rng.random_bool(0.9) {
            m.insert("sfdz".into(), json!(address));
        }
        if !anonymous {
            let surname = *SURNAMES.choose(&mut self.rng).expect("surnames");
            let title = if self.rng.random_bool(0.5) {
                "先生"
            } else {
                "女士"
            };
            m.insert("ldrxm".into(), json!(format!("{surname}{title}")));
            m.insert(
                "lxdh".into(),
                json!(format!(
                    "138{:08}",
                    self.rng.random_range(0..100_000_000u32)
                )),
            );
        }
        m.insert("cbdw".into(), self.unit.to_json());
        m.insert("qssx".into(), json!(fmt_local(at + sign_in)));
        m.insert("blsx".into(), json!(fmt_local(at + handle_in)));
        m.insert("pdsj".into(), json!(fmt_local(at)));
        if self.rng.random_bool(0.3) {
            let n = self.rng.random_range(1..=3);
            let files: Vec<Value> = (1..=n)
                .map(|i| {
                    let photo = i < 3 || self.rng.random_bool(0.5);
                    let (mc, lx) = if photo {
                        (format!("现场照片{i}.jpg"), "image/jpeg")
                    } else {
                        ("来电录音.mp3".to_string(), "audio/mpeg")
                    };
                    json!({
                        "wjid": format!("F{}{:02}", &no[2..], i),
                        "mc": mc,
                        "lx": lx,
                        "dx": self.rng.random_range(20_000..2_000_000u32),
                        "sm3": self.sm3_upper(),
                    })
                })
                .collect();
            m.insert("fj".into(), Value::Array(files));
        }
        Value::Object(m)
    }

    /// An urge (督办) of ticket `no`, the `count`-th one, at `at`.
    pub fn urge(&mut self, no: &str, count: u32, at: DateTime<Utc>) -> Value {
        // The first urging is a reminder; later ones are formal supervision orders.
        let formal = count > 1;
        let opinion = if formal {
            "该工单市民多次来电反映，请承办单位于答复时限前书面答复处置进展，并安排人员现场处置。"
        } else {
            "工单即将超过办理时限，请抓紧办理并及时回复。"
        };
        let order = if formal {
            format!(
                "DB{}{:05}",
                at.with_timezone(&crate::time::shanghai()).format("%Y%m%d"),
                self.rng.random_range(1..100_000u32)
            )
        } else {
            String::new()
        };
        let mut v = json!({
            "gdbh": no,
            "dbdbh": order,
            "dblx": if formal { "2" } else { "1" },
            "dbcs": count,
            "dbyj": opinion,
            "dbdw": {"dm": "SH12345ZX", "mc": "上海市12345市民服务热线管理办公室"},
            "cbdw": self.unit.to_json(),
            "dbsj": fmt_local(at),
        });
        if formal {
            v["dfsx"] = json!(fmt_local(at + Duration::days(1)));
        }
        v
    }

    /// A close (销单) at `at`: completed after a reply, otherwise withdrawn by the caller.
    pub fn close(&mut self, no: &str, replied: bool, at: DateTime<Utc>) -> Value {
        let (kind, remark) = if replied {
            ("1", "承办单位已办结，回访市民满意，予以销单。")
        } else {
            ("2", "市民来电表示问题已自行解决，申请撤诉，予以销单。")
        };
        json!({
            "gdbh": no,
            "xdfs": kind,
            "xdsm": remark,
            "cbdw": self.unit.to_json(),
            "xdsj": fmt_local(at),
        })
    }

    /// A visit (回访) at `at`.
    pub fn visit(&mut self, no: &str, at: DateTime<Utc>) -> Value {
        let method = *["1", "1", "2", "3"].choose(&mut self.rng).expect("m");
        let (satisfaction, resolution, remark) = *[
            ("1", "1", "市民表示问题已经解决，对处理结果满意。"),
            ("1", "1", "市民表示工作人员态度很好，处理及时。"),
            ("2", "2", "市民表示问题基本解决，但希望加强日常巡查。"),
            ("3", "3", "市民表示问题仍未解决，对处理结果不满意。"),
            ("0", "1", "-"),
        ]
        .choose(&mut self.rng)
        .expect("v");
        json!({
            "gdbh": no,
            "hffs": method,
            "myd": satisfaction,
            "jjqk": resolution,
            "hfyj": remark,
            "cbdw": self.unit.to_json(),
            "hfsj": fmt_local(at),
        })
    }
}

/// The JSON push body (UTF-8).
pub fn to_json_bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("a JSON value serializes")
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => escape(s),
        Value::Null => String::new(),
        other => escape(&other.to_string()),
    }
}

/// The dispatch as the platform's XML push: root `<gd>`, every value text, `cbdw` nested, one
/// `<fj>` element per attachment, encoded in GBK (fixtures/dispatch_xml/normal_gbk.input.xml).
pub fn to_gbk_xml(v: &Value) -> Vec<u8> {
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<gd>\n");
    let order = [
        "gdbh", "qd", "bt", "sqnr", "sqlb", "jjcd", "qh", "sfdz", "ldrxm", "lxdh", "cbdw", "qssx",
        "blsx", "pdsj", "fj",
    ];
    for key in order {
        match (key, v.get(key)) {
            (_, None) => {}
            ("cbdw", Some(u)) => xml.push_str(&format!(
                "  <cbdw><dm>{}</dm><mc>{}</mc></cbdw>\n",
                scalar(&u["dm"]),
                scalar(&u["mc"])
            )),
            ("fj", Some(Value::Array(files))) => {
                for f in files {
                    xml.push_str("  <fj>");
                    for k in ["wjid", "mc", "lx", "dx", "sm3"] {
                        if let Some(x) = f.get(k) {
                            xml.push_str(&format!("<{k}>{}</{k}>", scalar(x)));
                        }
                    }
                    xml.push_str("</fj>\n");
                }
            }
            (k, Some(x)) => xml.push_str(&format!("  <{k}>{}</{k}>\n", scalar(x))),
        }
    }
    xml.push_str("</gd>\n");
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(&xml);
    // Generated text is plain Chinese; anything GBK cannot hold would be a bug here.
    debug_assert!(!unmappable, "generated text outside GBK");
    bytes.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_unique_and_carry_the_prefix() {
        let mut g = Generator::new(Some(7), Some(42), Unit::default());
        let at = crate::time::parse_local("2026-11-22 09:30:00").unwrap();
        let a = g.dispatch(at);
        let b = g.dispatch(at);
        assert_eq!(a["gdbh"], "GD20261122420001");
        assert_eq!(b["gdbh"], "GD20261122420002");
        g.seq = 9999;
        assert_eq!(g.dispatch(at)["gdbh"], "GD20261122430001");
    }

    #[test]
    fn the_same_seed_gives_the_same_tickets() {
        let at = crate::time::parse_local("2026-11-22 09:30:00").unwrap();
        let mut a = Generator::new(Some(1), None, Unit::default());
        let mut b = Generator::new(Some(1), None, Unit::default());
        for _ in 0..5 {
            assert_eq!(a.dispatch(at), b.dispatch(at));
        }
    }

    #[test]
    fn xml_is_gbk_with_the_fixture_shape() {
        let mut g = Generator::new(Some(3), Some(1), Unit::default());
        let at = crate::time::parse_local("2026-11-22 09:30:00").unwrap();
        let v = g.dispatch(at);
        let bytes = to_gbk_xml(&v);
        let (text, _, bad) = encoding_rs::GBK.decode(&bytes);
        assert!(!bad);
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<gd>"));
        assert!(text.contains(&format!("<gdbh>{}</gdbh>", v["gdbh"].as_str().unwrap())));
        assert!(text.contains("<cbdw><dm>11310000002420347T</dm><mc>上海市水务局</mc></cbdw>"));
        assert_eq!(escape("a<b&c"), "a&lt;b&amp;c");
    }
}
