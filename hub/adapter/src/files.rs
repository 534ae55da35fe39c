//! The file declarations of a manifest checked against its mappings (`docs/files.md`):
//! `[[file]]`, a delivery's `file` and `[[batch]]`. The declarations themselves are in
//! `hub_files::wiring`, shared with the gateway and the egress.

use hub_mapping::{Direction, MappingSet};

use crate::manifest::Manifest;

/// Every problem of the manifest's file declarations.
pub(crate) fn check(m: &Manifest, mappings: &MappingSet) -> Vec<String> {
    let mut out = hub_files::wiring::inbound_problems(&m.files);
    let inbound =
        |name: &str, what: String, out: &mut Vec<String>| match mappings.get(&m.partner, name) {
            Some(map) if map.direction == Direction::Inbound => {}
            Some(_) => out.push(format!(
                "{what}: mapping `{name}` is not an inbound mapping"
            )),
            None => out.push(format!(
                "{what}: mapping `{name}` is not in mappings/{}/mappings.toml",
                m.partner
            )),
        };
    for f in &m.files {
        inbound(&f.mapping, "file".into(), &mut out);
        // Base64 and URLs are read from a JSON field or an XML element; a multipart body's
        // text fields become the JSON its mapping reads.
        if let Some(map) = mappings.get(&m.partner, &f.mapping) {
            let fits = match f.style {
                hub_files::wiring::ReceiveStyle::Multipart => {
                    map.format == hub_mapping::Format::Json
                }
                _ => matches!(
                    map.format,
                    hub_mapping::Format::Json | hub_mapping::Format::Xml
                ),
            };
            if !fits {
                let needs = if f.style == hub_files::wiring::ReceiveStyle::Multipart {
                    "JSON 映射 / a JSON mapping"
                } else {
                    "JSON 或 XML 映射 / a JSON or XML mapping"
                };
                out.push(format!(
                    "file for mapping `{}`: key `file`: 此方式的文件需要{needs} (`{}` is {:?})",
                    f.mapping, f.mapping, map.format
                ));
            }
        }
    }
    let mut names = std::collections::BTreeSet::new();
    for b in &m.batches {
        let ok_name = !b.name.is_empty()
            && b.name.len() <= 64
            && b.name
                .bytes()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_');
        if !ok_name || !names.insert(b.name.clone()) {
            out.push(format!(
                "batch `{}`: name must be unique, a-z 0-9 _",
                b.name
            ));
        }
        inbound(&b.mapping, format!("batch `{}`", b.name), &mut out);
        match (&b.every_ms, &b.cron) {
            (Some(ms), None) if *ms >= 1_000 => {}
            (Some(_), None) => out.push(format!(
                "batch `{}`: every_ms must be at least 1000",
                b.name
            )),
            (None, Some(c)) => {
                if let Err(e) = crate::schedule::parse_cron(c) {
                    out.push(format!("batch `{}`: cron `{c}`: {e}", b.name));
                }
            }
            _ => out.push(format!(
                "batch `{}`: set exactly one of every_ms and cron",
                b.name
            )),
        }
        out.extend(b.problems());
    }
    for d in &m.deliveries {
        if let Some(f) = &d.file {
            out.extend(
                f.problems()
                    .into_iter()
                    .map(|p| format!("delivery `{}`: {p}", d.name)),
            );
            // Where the file can go, by style: a URL is text, so any body, any transport
            // (a GET's query included); base64 goes into a JSON field or an XML element (a
            // SOAP body too) but not a query or a form; multipart makes the body itself, from a
            // JSON mapping's fields, so neither SOAP nor GET; sftp is an upload with no request
            // at all, only on `transport = "sftp"`. Refused here rather than dead-lettering
            // every message at run time.
            use hub_files::wiring::SendStyle;
            let bodyless = d.method == "GET";
            if f.style == SendStyle::Sftp && d.transport != crate::manifest::Transport::Sftp {
                out.push(format!(
                    "delivery `{}`: key `file`: style \"sftp\" 需要 transport = \"sftp\" / style \"sftp\" is for `transport = \"sftp\"` (an upload to the partner's SFTP outbox)",
                    d.name
                ));
            }
            match f.style {
                SendStyle::Url | SendStyle::Sftp => {}
                SendStyle::Base64 if bodyless => out.push(format!(
                    "delivery `{}`: key `file`: base64 文件只能随请求体发送 / a base64 file is sent only in the body of an HTTP POST, PUT or PATCH, or a SOAP request (not with method GET; a link can be: style = \"url\")",
                    d.name
                )),
                SendStyle::Multipart if d.transport.is_soap() || bodyless => out.push(format!(
                    "delivery `{}`: key `file`: multipart 文件只能随 HTTP POST/PUT/PATCH 请求体发送 / a multipart file is sent only as the body of an HTTP POST, PUT or PATCH (not with transport `soap11`/`soap12` or method GET)",
                    d.name
                )),
                _ => {}
            }
            if let Some(map) = mappings.get(&m.partner, &d.mapping) {
                use hub_mapping::Format;
                let (fits, needs) = match f.style {
                    SendStyle::Url => (true, ""),
                    SendStyle::Base64 => (
                        matches!(map.format, Format::Json | Format::Xml),
                        "JSON 或 XML 映射 / a JSON or XML mapping",
                    ),
                    SendStyle::Multipart | SendStyle::Sftp => {
                        (map.format == Format::Json, "JSON 映射 / a JSON mapping")
                    }
                };
                if !fits {
                    out.push(format!(
                        "delivery `{}`: key `file`: 此方式的文件需要{needs} (`{}` is {:?})",
                        d.name, d.mapping, map.format
                    ));
                }
            }
        }
    }
    out
}

impl Manifest {
    /// The `[[file]]` declarations of one inbound mapping.
    pub fn files_of(&self, mapping: &str) -> Vec<hub_files::wiring::InboundFile> {
        self.files
            .iter()
            .filter(|f| f.mapping == mapping)
            .cloned()
            .collect()
    }
}

impl Manifest {
    pub fn batch(&self, name: &str) -> Option<&hub_files::wiring::BatchSpec> {
        self.batches.iter().find(|b| b.name == name)
    }
}
