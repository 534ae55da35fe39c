//! Partner XML and legacy charsets, with `quick-xml` and `encoding_rs`.
//!
//! XML becomes a JSON-shaped tree before a mapping sees it, so one VRL program serves a partner's
//! JSON and XML variants alike: an element with only text becomes a string, an element with
//! children an object, repeated children an array, attributes `@name`, text beside children
//! `#text`. The root element's name is dropped (it is handed to the program as `%xml_root`).
//!
//! Safety: a document type declaration is refused outright, so no DTD, external entity or entity
//! expansion is ever processed; only the five predefined entities and character references are
//! resolved.

use encoding_rs::Encoding;
use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use serde_json::{Map, Value};

use crate::limits::{Exceeded, InputLimits};
use crate::xsd::XmlOrder;
use crate::Charset;

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("the body is not valid {0}")]
    Charset(&'static str),
    #[error(
        "the XML prolog declares encoding `{0}`, which is not supported (UTF-8, GBK, GB18030)"
    )]
    UnknownEncoding(String),
    #[error("XML documents with a DOCTYPE (DTD) are refused")]
    Dtd,
    #[error("entity `&{0};` is refused: only the five predefined entities and character references are allowed")]
    Entity(String),
    #[error("not well-formed XML at byte {position}: {message}")]
    Xml { position: u64, message: String },
    #[error("not valid JSON: {0}")]
    Json(String),
    #[error("the XML document has no root element")]
    NoRoot,
    /// Too deep or too many nodes: refused before the tree is built any further.
    #[error("{0}")]
    Limit(Exceeded),
}

/// The encoding an XML prolog declares, if any (`<?xml version="1.0" encoding="GBK"?>`).
/// The prolog is ASCII in every charset we accept, so it can be read before decoding.
pub fn declared_encoding(body: &[u8]) -> Option<String> {
    let head = &body[..body.len().min(200)];
    let head = std::str::from_utf8(head)
        .ok()
        .or_else(|| std::str::from_utf8(&head[..head.iter().position(|b| *b >= 0x80)?]).ok())?;
    let decl = head.strip_prefix("<?xml")?;
    let decl = &decl[..decl.find("?>")?];
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..]
        .trim_start()
        .strip_prefix('=')?
        .trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let rest = &rest[1..];
    Some(rest[..rest.find(quote)?].to_string())
}

fn encoding_of(charset: Charset) -> &'static Encoding {
    match charset {
        Charset::Utf8 => encoding_rs::UTF_8,
        Charset::Gbk => encoding_rs::GBK,
        Charset::Gb18030 => encoding_rs::GB18030,
    }
}

/// The charset named by an XML prolog or a mapping manifest.
pub fn charset_from_label(label: &str) -> Option<Charset> {
    match label.trim().to_ascii_lowercase().as_str() {
        "utf-8" | "utf8" => Some(Charset::Utf8),
        "gbk" | "gb2312" | "cp936" => Some(Charset::Gbk),
        "gb18030" => Some(Charset::Gb18030),
        _ => None,
    }
}

/// Decodes bytes strictly: a byte sequence the charset does not define is an error, never a
/// replacement character silently written into a citizen's record.
pub fn decode(body: &[u8], charset: Charset) -> Result<String, InputError> {
    let enc = encoding_of(charset);
    let body = match charset {
        Charset::Utf8 => body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body),
        _ => body,
    };
    enc.decode_without_bom_handling_and_without_replacement(body)
        .map(std::borrow::Cow::into_owned)
        .ok_or(InputError::Charset(enc.name()))
}

/// Encodes text, refusing characters the charset cannot represent.
pub fn encode(text: &str, charset: Charset) -> Result<Vec<u8>, String> {
    let enc = encoding_of(charset);
    let (bytes, _, had_unmappable) = enc.encode(text);
    if had_unmappable {
        let bad: String = text
            .chars()
            .filter(|c| {
                let mut buf = [0u8; 4];
                enc.encode(c.encode_utf8(&mut buf)).2
            })
            .take(5)
            .collect();
        return Err(format!(
            "characters `{bad}` cannot be written in {}",
            enc.name()
        ));
    }
    Ok(bytes.into_owned())
}

struct Frame {
    name: String,
    fields: Map<String, Value>,
    text: String,
    /// Where the element's content starts (after its start tag), in the text read.
    content_start: usize,
    has_children: bool,
}

/// The text content of one element, where [`element_text`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElementText {
    /// The element's text as the mapping reads it (entities resolved, CDATA unwrapped, trimmed).
    pub text: String,
    /// The bytes of the element's content between its tags, in the document text; `None` for
    /// an empty element (`<a/>`) or text beside child elements, which cannot be replaced.
    pub span: Option<std::ops::Range<usize>>,
}

/// Marks a leaf's text in the span-recording tree: NUL cannot appear in XML text.
const SPAN_MARK: char = '\u{0}';
/// Marks an attribute's value in the span-recording tree.
const ATTRIBUTE_MARK: &str = "\u{1}@";

/// Elements and attributes read so far, against the limit.
struct Budget {
    nodes: usize,
    limits: InputLimits,
}

impl Budget {
    fn take(&mut self) -> Result<(), InputError> {
        self.nodes += 1;
        if self.nodes > self.limits.max_nodes {
            return Err(InputError::Limit(Exceeded::Nodes(self.limits.max_nodes)));
        }
        Ok(())
    }

    /// An element opened at `depth` (the root is 1).
    fn open_at(&mut self, depth: usize) -> Result<(), InputError> {
        if depth > self.limits.max_depth {
            return Err(InputError::Limit(Exceeded::Depth(self.limits.max_depth)));
        }
        self.take()
    }
}

impl Frame {
    fn open(
        e: &BytesStart<'_>,
        reader: &Reader<&[u8]>,
        budget: &mut Budget,
        spans: bool,
    ) -> Result<Self, InputError> {
        let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
        let mut fields = Map::new();
        for a in e.attributes() {
            budget.take()?;
            let a = a.map_err(|err| xml_error(reader, err.to_string()))?;
            let key = format!("@{}", String::from_utf8_lossy(a.key.as_ref()));
            let value = a
                .unescape_value()
                .map_err(|err| match err {
                    quick_xml::Error::Escape(
                        quick_xml::escape::EscapeError::UnrecognizedEntity(_, name),
                    ) => InputError::Entity(name),
                    other => xml_error(reader, other.to_string()),
                })?
                .into_owned();
            let value = if spans {
                ATTRIBUTE_MARK.to_string()
            } else {
                value
            };
            fields.insert(key, Value::String(value));
        }
        Ok(Self {
            name,
            fields,
            text: String::new(),
            content_start: usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX),
            has_children: false,
        })
    }

    /// Closes the element whose end tag starts at `content_end`; with `spans`, its text is
    /// replaced by a mark naming its entry in `spans`.
    fn close_recording(
        mut self,
        content_end: Option<usize>,
        spans: &mut Vec<ElementText>,
    ) -> (String, Value) {
        let text = self.text.trim().to_string();
        let span = content_end
            .filter(|_| !self.has_children)
            .map(|end| self.content_start..end);
        // The same shape as `close`, with a mark where the text goes.
        let mark = Value::String(format!("{SPAN_MARK}{}", spans.len()));
        let has_text = !text.is_empty();
        spans.push(ElementText { text, span });
        if self.fields.is_empty() {
            return (self.name, mark);
        }
        if has_text {
            self.fields.insert("#text".into(), mark);
        }
        (self.name, Value::Object(self.fields))
    }

    fn close(mut self) -> (String, Value) {
        let text = self.text.trim();
        let value = if self.fields.is_empty() {
            Value::String(text.to_string())
        } else {
            if !text.is_empty() {
                self.fields
                    .insert("#text".into(), Value::String(text.to_string()));
            }
            Value::Object(self.fields)
        };
        (self.name, value)
    }
}

fn xml_error(reader: &Reader<&[u8]>, message: String) -> InputError {
    InputError::Xml {
        position: reader.buffer_position(),
        message,
    }
}

fn insert(parent: &mut Map<String, Value>, name: String, value: Value) {
    match parent.get_mut(&name) {
        None => {
            parent.insert(name, value);
        }
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
    }
}

/// Parses XML text into a tree, within the default [`InputLimits`]; returns the root element's
/// name and content.
pub fn to_value(text: &str) -> Result<(String, Value), InputError> {
    to_value_limited(text, &InputLimits::default())
}

/// Parses XML text into a tree; returns the root element's name and content. An element deeper
/// than `limits.max_depth`, or more elements and attributes than `limits.max_nodes`, stop the
/// reading at once: the tree is never built deeper than the limit.
pub fn to_value_limited(text: &str, limits: &InputLimits) -> Result<(String, Value), InputError> {
    let mut budget = Budget {
        nodes: 0,
        limits: *limits,
    };
    to_value_within(text, &mut budget, None)
}

/// Why [`element_text`] found nothing it could use at a pointer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PointerError {
    #[error(transparent)]
    Input(#[from] InputError),
    #[error("{0} is an attribute, not an element's text")]
    Attribute(String),
    #[error("{0} is not an element holding only text (it has child elements or repeats)")]
    NotText(String),
}

/// The text of the element a JSON pointer addresses in the tree [`to_value`] makes of `text`
/// (the root element dropped: `/fj` is the root's child `<fj>`, `/doc/fj` a grandchild, `/fj/1`
/// the second of repeated `<fj>`s, `/fj/#text` the text of an `<fj>` with attributes), with
/// where it is in `text`, so that [`replace_element_text`] can put other text there. `None`:
/// no such element. Read within `limits`, like the mapping's own reading.
pub fn element_text(
    text: &str,
    pointer: &str,
    limits: &InputLimits,
) -> Result<Option<ElementText>, PointerError> {
    let mut budget = Budget {
        nodes: 0,
        limits: *limits,
    };
    let mut spans = Vec::new();
    let (_, tree) = to_value_within(text, &mut budget, Some(&mut spans))?;
    match tree.pointer(pointer) {
        None => Ok(None),
        Some(Value::String(s)) if s == ATTRIBUTE_MARK => {
            Err(PointerError::Attribute(pointer.to_string()))
        }
        Some(Value::String(s)) => {
            let at = s
                .strip_prefix(SPAN_MARK)
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| spans.get(i).cloned());
            at.map(Some)
                .ok_or_else(|| PointerError::NotText(pointer.to_string()))
        }
        Some(_) => Err(PointerError::NotText(pointer.to_string())),
    }
}

/// `text` with the content of the element at `pointer` (found by [`element_text`]) replaced by
/// `new`, escaped; everything else byte for byte as it was.
pub fn replace_element_text(
    text: &str,
    pointer: &str,
    new: &str,
    limits: &InputLimits,
) -> Result<String, PointerError> {
    let span = element_text(text, pointer, limits)?
        .and_then(|e| e.span)
        .ok_or_else(|| PointerError::NotText(pointer.to_string()))?;
    let escaped = quick_xml::escape::escape(new);
    let mut out = String::with_capacity(text.len() - span.len() + escaped.len());
    out.push_str(&text[..span.start]);
    out.push_str(&escaped);
    out.push_str(&text[span.end..]);
    Ok(out)
}

/// The charset an XML body is read in: the one its prolog declares, else `default` (the
/// mapping's).
pub fn document_charset(body: &[u8], default: Charset) -> Result<Charset, InputError> {
    match declared_encoding(body) {
        Some(label) => charset_from_label(&label).ok_or(InputError::UnknownEncoding(label)),
        None => Ok(default),
    }
}

fn to_value_within(
    text: &str,
    budget: &mut Budget,
    mut spans: Option<&mut Vec<ElementText>>,
) -> Result<(String, Value), InputError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let before = usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX);
        let event = reader
            .read_event()
            .map_err(|e| xml_error(&reader, e.to_string()))?;
        match event {
            Event::DocType(_) => return Err(InputError::Dtd),
            Event::Start(e) => {
                budget.open_at(stack.len() + 1)?;
                stack.push(Frame::open(&e, &reader, budget, spans.is_some())?);
            }
            Event::Empty(e) => {
                budget.open_at(stack.len() + 1)?;
                let frame = Frame::open(&e, &reader, budget, spans.is_some())?;
                let (name, value) = match spans.as_deref_mut() {
                    Some(spans) => frame.close_recording(None, spans),
                    None => frame.close(),
                };
                match stack.last_mut() {
                    Some(parent) => {
                        parent.has_children = true;
                        insert(&mut parent.fields, name, value)
                    }
                    None if root.is_none() => root = Some((name, value)),
                    None => return Err(xml_error(&reader, "more than one root element".into())),
                }
            }
            Event::End(_) => {
                let frame = stack.pop().ok_or_else(|| {
                    xml_error(&reader, "closing tag without an opening tag".into())
                })?;
                let (name, value) = match spans.as_deref_mut() {
                    Some(spans) => frame.close_recording(Some(before), spans),
                    None => frame.close(),
                };
                match stack.last_mut() {
                    Some(parent) => {
                        parent.has_children = true;
                        insert(&mut parent.fields, name, value)
                    }
                    None if root.is_none() => root = Some((name, value)),
                    None => return Err(xml_error(&reader, "more than one root element".into())),
                }
            }
            Event::Text(t) => {
                if let Some(frame) = stack.last_mut() {
                    let s = t
                        .xml_content()
                        .map_err(|e| xml_error(&reader, e.to_string()))?;
                    frame.text.push_str(&s);
                }
            }
            Event::CData(c) => {
                if let Some(frame) = stack.last_mut() {
                    let s = c.decode().map_err(|e| xml_error(&reader, e.to_string()))?;
                    frame.text.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r
                    .resolve_char_ref()
                    .map_err(|e| xml_error(&reader, e.to_string()))?
                {
                    Some(c) => c.to_string(),
                    None => {
                        let name = r.decode().map_err(|e| xml_error(&reader, e.to_string()))?;
                        resolve_predefined_entity(&name)
                            .ok_or_else(|| InputError::Entity(name.to_string()))?
                            .to_string()
                    }
                };
                if let Some(frame) = stack.last_mut() {
                    frame.text.push_str(&resolved);
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(xml_error(
            &reader,
            format!("element <{}> is not closed", stack[stack.len() - 1].name),
        ));
    }
    root.ok_or(InputError::NoRoot)
}

/// Writes a tree (the shape [`to_value`] produces) as an XML document in `charset`.
///
/// Child elements are written in key order (VRL objects, like serde_json's maps here, are
/// sorted); [`from_value_ordered`] writes them in the order a partner's schema requires.
pub fn from_value(root: &str, value: &Value, charset: Charset) -> Result<Vec<u8>, String> {
    from_value_ordered(root, value, charset, &XmlOrder::new())
}

/// Like [`from_value`], with the children of each element named in `order` written in that
/// order (from the partner's XSD or the mapping's `xml_order`, [`crate::xsd`]); children it
/// does not list follow, sorted.
pub fn from_value_ordered(
    root: &str,
    value: &Value,
    charset: Charset,
    order: &XmlOrder,
) -> Result<Vec<u8>, String> {
    fn escape(s: &str) -> String {
        quick_xml::escape::escape(s).into_owned()
    }
    /// The keys of `map` in the order `listed` gives, then the others in map (sorted) order.
    fn ordered<'m>(map: &'m Map<String, Value>, listed: Option<&Vec<String>>) -> Vec<&'m String> {
        let Some(listed) = listed else {
            return map.keys().collect();
        };
        let mut keys: Vec<&String> = listed
            .iter()
            .filter_map(|k| map.get_key_value(k).map(|(k, _)| k))
            .collect();
        keys.extend(map.keys().filter(|k| !listed.contains(k)));
        keys
    }
    fn element(
        out: &mut String,
        name: &str,
        value: &Value,
        order: &XmlOrder,
    ) -> Result<(), String> {
        match value {
            Value::Array(items) => {
                for item in items {
                    element(out, name, item, order)?;
                }
                Ok(())
            }
            Value::Null => {
                out.push_str(&format!("<{name}/>"));
                Ok(())
            }
            Value::Object(map) => {
                out.push('<');
                out.push_str(name);
                for (k, v) in map {
                    if let Some(attr) = k.strip_prefix('@') {
                        let text = scalar(v).ok_or_else(|| {
                            format!("attribute `{k}` of <{name}> is not a scalar")
                        })?;
                        out.push_str(&format!(" {attr}=\"{}\"", escape(&text)));
                    }
                }
                out.push('>');
                for k in ordered(map, order.get(name)) {
                    let v = &map[k];
                    if k == "#text" {
                        out.push_str(&escape(&scalar(v).unwrap_or_default()));
                    } else if !k.starts_with('@') {
                        element(out, k, v, order)?;
                    }
                }
                out.push_str(&format!("</{name}>"));
                Ok(())
            }
            scalar_value => {
                let text = scalar(scalar_value).unwrap_or_default();
                out.push_str(&format!("<{name}>{}</{name}>", escape(&text)));
                Ok(())
            }
        }
    }
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Null => Some(String::new()),
            _ => None,
        }
    }
    let label = encoding_of(charset).name();
    let mut out = format!("<?xml version=\"1.0\" encoding=\"{label}\"?>");
    element(&mut out, root, value, order)?;
    encode(&out, charset)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn elements_attributes_and_repeats_become_a_tree() {
        let (root, v) = to_value(
            r#"<?xml version="1.0"?><gd lx="pd"><gdbh>GD1</gdbh><fj><mc>a.jpg</mc></fj><fj><mc>b &amp; c.jpg</mc></fj><bz/><nr><![CDATA[<路灯>]]>&#x4E0D;亮</nr></gd>"#,
        )
        .unwrap();
        assert_eq!(root, "gd");
        assert_eq!(
            v,
            json!({"@lx": "pd", "gdbh": "GD1", "fj": [{"mc": "a.jpg"}, {"mc": "b & c.jpg"}], "bz": "", "nr": "<路灯>不亮"})
        );
    }

    #[test]
    fn a_doctype_and_unknown_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE gd [<!ENTITY x SYSTEM "file:///etc/passwd">]><gd>&x;</gd>"#;
        assert_eq!(to_value(xxe), Err(InputError::Dtd));
        assert_eq!(
            to_value("<gd>&x;</gd>"),
            Err(InputError::Entity("x".into()))
        );
        assert!(matches!(
            to_value("<gd><a></gd>"),
            Err(InputError::Xml { .. })
        ));
        assert!(matches!(to_value("<a/><b/>"), Err(InputError::Xml { .. })));
        assert_eq!(to_value("  "), Err(InputError::NoRoot));
    }

    #[test]
    fn gbk_is_decoded_strictly_and_read_from_the_prolog() {
        let text = "<?xml version=\"1.0\" encoding=\"GBK\"?><gd><nr>路灯不亮</nr></gd>";
        let bytes = encode(text, Charset::Gbk).unwrap();
        assert_ne!(bytes, text.as_bytes(), "GBK differs from UTF-8");
        assert_eq!(declared_encoding(&bytes).as_deref(), Some("GBK"));
        assert_eq!(decode(&bytes, Charset::Gbk).unwrap(), text);
        assert_eq!(
            decode(&bytes, Charset::Utf8),
            Err(InputError::Charset("UTF-8"))
        );
        // 0x81 0x20 is not a GBK sequence.
        assert_eq!(
            decode(b"\x81\x20", Charset::Gbk),
            Err(InputError::Charset("GBK"))
        );
    }

    #[test]
    fn a_tree_is_written_back_as_xml_in_the_charset() {
        let v = json!({"@lx": "pd", "gdbh": "GD1", "fj": [{"mc": "a"}, {"mc": "b"}], "nr": "路灯 <不> 亮"});
        let bytes = from_value("gd", &v, Charset::Gbk).unwrap();
        let text = decode(&bytes, Charset::Gbk).unwrap();
        assert_eq!(
            text,
            // Child elements come out in key order: VRL objects are sorted maps.
            r#"<?xml version="1.0" encoding="GBK"?><gd lx="pd"><fj><mc>a</mc></fj><fj><mc>b</mc></fj><gdbh>GD1</gdbh><nr>路灯 &lt;不&gt; 亮</nr></gd>"#
        );
        assert_eq!(to_value(&text).unwrap().1, v);
        assert!(from_value("gd", &json!({"nr": "😀"}), Charset::Gbk)
            .unwrap_err()
            .contains("cannot be written in GBK"));
    }

    #[test]
    fn children_follow_the_schema_order_where_one_is_given() {
        let v = json!({"Title": "路灯", "CaseNo": "C1", "Extra": "x", "Addr": {"Street": "s", "District": "d"}});
        let mut order = XmlOrder::new();
        order.insert(
            "Case".into(),
            vec!["Title".into(), "CaseNo".into(), "Addr".into()],
        );
        order.insert("Addr".into(), vec!["Street".into(), "District".into()]);
        let text =
            String::from_utf8(from_value_ordered("Case", &v, Charset::Utf8, &order).unwrap())
                .unwrap();
        assert!(
            text.ends_with("<Case><Title>路灯</Title><CaseNo>C1</CaseNo><Addr><Street>s</Street><District>d</District></Addr><Extra>x</Extra></Case>"),
            "{text}"
        );
    }

    #[test]
    fn nesting_beyond_the_limit_is_refused_before_the_tree_grows() {
        // 100,000 levels: once enough to overflow the stack and abort the hub.
        let deep = "<a>".repeat(100_000) + &"</a>".repeat(100_000);
        assert_eq!(to_value(&deep), Err(InputError::Limit(Exceeded::Depth(64))));
        let deep_empty = "<a>".repeat(100) + "<b/>" + &"</a>".repeat(100);
        assert_eq!(
            to_value(&deep_empty),
            Err(InputError::Limit(Exceeded::Depth(64)))
        );
        // Exactly at the limit is fine, one more is not.
        let limits = InputLimits {
            max_depth: 5,
            max_nodes: 100,
        };
        let at = "<a>".repeat(4) + "<b/>" + &"</a>".repeat(4);
        assert!(to_value_limited(&at, &limits).is_ok());
        let over = "<a>".repeat(5) + "<b/>" + &"</a>".repeat(5);
        assert_eq!(
            to_value_limited(&over, &limits),
            Err(InputError::Limit(Exceeded::Depth(5)))
        );
        assert_eq!(
            InputError::Limit(Exceeded::Depth(5)).to_string(),
            "the payload nests deeper than 5 levels"
        );
    }

    #[test]
    fn elements_and_attributes_beyond_the_node_limit_are_refused() {
        let limits = InputLimits {
            max_depth: 64,
            max_nodes: 10,
        };
        let wide = format!("<r>{}</r>", "<i/>".repeat(9));
        assert!(to_value_limited(&wide, &limits).is_ok(), "10 elements");
        let wider = format!("<r>{}</r>", "<i/>".repeat(10));
        assert_eq!(
            to_value_limited(&wider, &limits),
            Err(InputError::Limit(Exceeded::Nodes(10)))
        );
        let attributes = format!(
            "<r {}/>",
            (0..10).map(|i| format!("a{i}=\"x\" ")).collect::<String>()
        );
        assert_eq!(
            to_value_limited(&attributes, &limits),
            Err(InputError::Limit(Exceeded::Nodes(10)))
        );
    }
}
