//! Text fields of a partner body, read and replaced in place by JSON pointer over the tree a
//! mapping reads or writes: the hub puts a stored file's id where a partner sent the file as
//! base64 in an XML element, and a file's base64 or download link where an outbound mapping put
//! the file's id (`docs/files.md`).
//!
//! The pointer is the one a mapping program would use on the same body: for XML the tree of
//! [`crate::xml::to_value`] (the root element dropped: `/fj` is `<root><fj>…`, `/doc/fj` one
//! level deeper, `/fj/1` the second of repeated `<fj>`s, `/fj/#text` the text of an `<fj>` that
//! has attributes); for a form the flat object of its fields (`/fj`); for JSON the document.
//! Only what is replaced changes: an XML document keeps its prolog, charset (UTF-8, GBK,
//! GB18030), attributes, comments and layout byte for byte elsewhere.

use serde_json::Value;

use crate::limits::InputLimits;
use crate::xml::{self, InputError, PointerError};
use crate::{form, Charset, Format};

/// Why a body's field could not be read or replaced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// The body cannot be read as its format (the mapping refuses it with its own code).
    #[error("{0}")]
    Unreadable(String),
    /// The pointer names something other than text (an object, an attribute, mixed content).
    #[error("{0}")]
    NotText(String),
    /// The new text cannot be written in the body's charset.
    #[error("{0}")]
    Unencodable(String),
}

impl From<InputError> for FieldError {
    fn from(e: InputError) -> Self {
        FieldError::Unreadable(e.to_string())
    }
}

impl From<PointerError> for FieldError {
    fn from(e: PointerError) -> Self {
        match e {
            PointerError::Input(i) => FieldError::Unreadable(i.to_string()),
            other => FieldError::NotText(other.to_string()),
        }
    }
}

#[derive(Debug, Clone)]
enum Doc {
    Xml(String),
    Tree(Value),
}

/// A body whose text fields are read and replaced by pointer.
#[derive(Debug, Clone)]
pub struct TextBody {
    format: Format,
    charset: Charset,
    limits: InputLimits,
    doc: Doc,
}

impl TextBody {
    /// Reads `body` as `format`; `charset` is the mapping's (an XML prolog's own takes
    /// precedence, as when the mapping reads it).
    pub fn parse(
        body: &[u8],
        format: Format,
        charset: Charset,
        limits: InputLimits,
    ) -> Result<Self, FieldError> {
        let (charset, doc) = match format {
            Format::Xml => {
                let charset = xml::document_charset(body, charset)?;
                let text = xml::decode(body, charset)?;
                // Read once whole, within the limits, so that a body the mapping would refuse
                // is refused here before anything is stored for it.
                xml::to_value_limited(&text, &limits)?;
                (charset, Doc::Xml(text))
            }
            Format::Form => (charset, Doc::Tree(form::decode(body, charset, &limits)?)),
            Format::Json => {
                let text = xml::decode(body, charset)?;
                crate::limits::check_json_text(text.as_bytes(), &limits)
                    .map_err(|e| FieldError::Unreadable(e.to_string()))?;
                let v = serde_json::from_str(&text)
                    .map_err(|e| FieldError::Unreadable(format!("not valid JSON: {e}")))?;
                (charset, Doc::Tree(v))
            }
        };
        Ok(Self {
            format,
            charset,
            limits,
            doc,
        })
    }

    /// The text at `pointer`: `None` when there is nothing there, or it is empty or `null`.
    pub fn text(&self, pointer: &str) -> Result<Option<String>, FieldError> {
        match &self.doc {
            Doc::Xml(text) => Ok(xml::element_text(text, pointer, &self.limits)?
                .map(|e| e.text)
                .filter(|t| !t.is_empty())),
            Doc::Tree(v) => match v.pointer(pointer) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.is_empty() => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(FieldError::NotText(format!(
                    "{pointer} is not a text field"
                ))),
            },
        }
    }

    /// Replaces the text at `pointer` (which [`TextBody::text`] found) by `new`.
    pub fn set_text(&mut self, pointer: &str, new: &str) -> Result<(), FieldError> {
        match &mut self.doc {
            Doc::Xml(text) => {
                *text = xml::replace_element_text(text, pointer, new, &self.limits)?;
                Ok(())
            }
            Doc::Tree(v) => match v.pointer_mut(pointer) {
                Some(field) => {
                    *field = Value::String(new.to_string());
                    Ok(())
                }
                None => Err(FieldError::NotText(format!("nothing at {pointer}"))),
            },
        }
    }

    /// The body, in its charset again.
    pub fn into_bytes(self) -> Result<Vec<u8>, FieldError> {
        match (self.doc, self.format) {
            (Doc::Xml(text), _) => {
                xml::encode(&text, self.charset).map_err(FieldError::Unencodable)
            }
            (Doc::Tree(v), Format::Form) => form::encode(&v, self.charset)
                .map(String::into_bytes)
                .map_err(FieldError::Unencodable),
            (Doc::Tree(v), _) => {
                let text = serde_json::to_string(&v).expect("a JSON value");
                xml::encode(&text, self.charset).map_err(FieldError::Unencodable)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xml_body(text: &str, charset: Charset) -> TextBody {
        let bytes = xml::encode(text, charset).unwrap();
        TextBody::parse(&bytes, Format::Xml, Charset::Utf8, InputLimits::default()).unwrap()
    }

    #[test]
    fn an_xml_element_is_read_and_replaced_in_place() {
        let doc = "<?xml version=\"1.0\" encoding=\"GBK\"?>\n<!-- 缴款书 -->\n<jks lx=\"pdf\">\n  <bh>路灯 &amp; 1</bh>\n  <fj>\n    JVBERi0x\n    Ljc=\n  </fj>\n  <doc><pdf type=\"a\"><![CDATA[QUJD]]></pdf></doc>\n  <r>1</r><r>2</r>\n  <e/>\n</jks>";
        let mut b = xml_body(doc, Charset::Gbk);
        assert_eq!(
            b.text("/fj").unwrap().as_deref(),
            Some("JVBERi0x\n    Ljc=")
        );
        assert_eq!(b.text("/doc/pdf/#text").unwrap().as_deref(), Some("QUJD"));
        assert_eq!(b.text("/r/1").unwrap().as_deref(), Some("2"));
        assert_eq!(b.text("/missing").unwrap(), None);
        assert_eq!(b.text("/e").unwrap(), None, "an empty element is like null");
        assert!(matches!(b.text("/doc"), Err(FieldError::NotText(_))));
        assert!(matches!(b.text("/r"), Err(FieldError::NotText(_))));
        assert!(matches!(b.text("/@lx"), Err(FieldError::NotText(_))));
        b.set_text("/fj", "sm3:ab").unwrap();
        b.set_text("/doc/pdf/#text", "x<&>y").unwrap();
        let out = b.into_bytes().unwrap();
        // Still GBK, everything else as it was.
        let text = xml::decode(&out, Charset::Gbk).unwrap();
        assert_eq!(
            text,
            doc.replace("\n    JVBERi0x\n    Ljc=\n  ", "sm3:ab")
                .replace("<![CDATA[QUJD]]>", "x&lt;&amp;&gt;y")
        );
        let (_, v) = xml::to_value(&text).unwrap();
        assert_eq!(v["fj"], "sm3:ab");
        assert_eq!(v["bh"], "路灯 & 1");
    }

    #[test]
    fn a_body_the_mapping_would_refuse_is_refused_here_too() {
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(matches!(
            TextBody::parse(
                deep.as_bytes(),
                Format::Xml,
                Charset::Utf8,
                InputLimits::default()
            ),
            Err(FieldError::Unreadable(_))
        ));
        let dtd = "<!DOCTYPE a [<!ENTITY x \"y\">]><a>&x;</a>";
        assert!(TextBody::parse(
            dtd.as_bytes(),
            Format::Xml,
            Charset::Utf8,
            InputLimits::default()
        )
        .is_err());
    }

    #[test]
    fn a_form_field_is_replaced_and_the_form_written_again() {
        let body = form::encode(
            &serde_json::json!({"bh": "路灯 1", "fj": "sm3:ab"}),
            Charset::Gb18030,
        )
        .unwrap();
        let mut b = TextBody::parse(
            body.as_bytes(),
            Format::Form,
            Charset::Gb18030,
            InputLimits::default(),
        )
        .unwrap();
        assert_eq!(b.text("/fj").unwrap().as_deref(), Some("sm3:ab"));
        b.set_text(
            "/fj",
            "https://hub.example/v1/files/sm3:ab?expires=1&sig=00",
        )
        .unwrap();
        let out = String::from_utf8(b.into_bytes().unwrap()).unwrap();
        let back = form::decode(out.as_bytes(), Charset::Gb18030, &InputLimits::default()).unwrap();
        assert_eq!(back["bh"], "路灯 1");
        assert_eq!(
            back["fj"],
            "https://hub.example/v1/files/sm3:ab?expires=1&sig=00"
        );
    }
}
