//! The element order a partner's XML Schema requires, read from the XSD itself.
//!
//! The mappings' objects are sorted maps, so without help their XML children come out in
//! alphabetical order; a partner validating against its XSD refuses that whenever its
//! `xs:sequence` says otherwise. A mapping that names the partner's XSD (`xsd = "…"` in
//! `mappings.toml`) has each element's children written in the order its sequence declares:
//!
//! * `<xs:element name="X">` with an inline `<xs:complexType>`: X's children are the
//!   `xs:element`s of that type's `xs:sequence` (nested sequences, `xs:choice` and `xs:all`
//!   flattened in document order; `ref="p:Y"` counts as `Y`);
//! * `<xs:element name="X" type="p:XType"/>` with a named `<xs:complexType name="XType">`: the
//!   named type's order, after the order of its `xs:extension base` (at most 16 bases deep);
//! * an element name declared twice with two different orders is ambiguous: the mapping must
//!   settle it in `xml_order` (the loader says so).
//!
//! Only the order is read, nothing is validated. The schema is read with the same safety as
//! payloads: no DTD, at most [`crate::InputLimits`] depth and nodes, no recursion.

use std::collections::{BTreeMap, BTreeSet};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::limits::{Exceeded, InputLimits};
use crate::xml::InputError;

/// Element name → the names of its children, in the order the schema requires.
pub type XmlOrder = BTreeMap<String, Vec<String>>;

/// What an XSD says about element order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SchemaOrder {
    pub order: XmlOrder,
    /// Names declared with two different orders.
    pub ambiguous: BTreeSet<String>,
}

enum Frame {
    Element {
        name: Option<String>,
        type_ref: Option<String>,
        inline: Option<(Vec<String>, Option<String>)>,
    },
    ComplexType {
        name: Option<String>,
        children: Vec<String>,
        base: Option<String>,
    },
    Other,
}

fn local(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

fn attr(e: &BytesStart<'_>, name: &[u8]) -> Result<Option<String>, InputError> {
    for a in e.attributes() {
        let a = a.map_err(|err| InputError::Xml {
            position: 0,
            message: err.to_string(),
        })?;
        if a.key.as_ref() == name {
            let v = a.unescape_value().map_err(|err| InputError::Xml {
                position: 0,
                message: err.to_string(),
            })?;
            return Ok(Some(v.into_owned()));
        }
    }
    Ok(None)
}

/// Reads the element orders of an XSD's text.
pub fn read_order(text: &str, limits: &InputLimits) -> Result<SchemaOrder, InputError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Frame> = Vec::new();
    let mut nodes = 0usize;
    let mut named_types: BTreeMap<String, (Vec<String>, Option<String>)> = BTreeMap::new();
    // (element, its children) as declared inline; (element, type) to resolve at the end.
    let mut inline: Vec<(String, Vec<String>, Option<String>)> = Vec::new();
    let mut typed: Vec<(String, String)> = Vec::new();
    let xml_err = |reader: &Reader<&[u8]>, message: String| InputError::Xml {
        position: reader.buffer_position(),
        message,
    };
    loop {
        let event = reader
            .read_event()
            .map_err(|e| xml_err(&reader, e.to_string()))?;
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            Event::DocType(_) => return Err(InputError::Dtd),
            Event::Eof => break,
            _ => (None, false),
        };
        if let Some(e) = start {
            nodes += 1;
            if nodes > limits.max_nodes {
                return Err(InputError::Limit(Exceeded::Nodes(limits.max_nodes)));
            }
            if stack.len() + 1 > limits.max_depth {
                return Err(InputError::Limit(Exceeded::Depth(limits.max_depth)));
            }
            let frame = match e.local_name().as_ref() {
                b"element" => {
                    let name = attr(&e, b"name")?;
                    let child = name
                        .clone()
                        .or(attr(&e, b"ref")?.map(|r| local(&r).to_string()));
                    // A declaration inside a content model is a child of the nearest type.
                    if let Some(child) = child {
                        if let Some(Frame::ComplexType { children, .. }) =
                            stack.iter_mut().rev().find(|f| !matches!(f, Frame::Other))
                        {
                            children.push(child);
                        }
                    }
                    Frame::Element {
                        name,
                        type_ref: attr(&e, b"type")?.map(|t| local(&t).to_string()),
                        inline: None,
                    }
                }
                b"complexType" => Frame::ComplexType {
                    name: attr(&e, b"name")?,
                    children: Vec::new(),
                    base: None,
                },
                b"extension" => {
                    let base = attr(&e, b"base")?.map(|b| local(&b).to_string());
                    if let Some(Frame::ComplexType { base: slot, .. }) =
                        stack.iter_mut().rev().find(|f| !matches!(f, Frame::Other))
                    {
                        if slot.is_none() {
                            *slot = base;
                        }
                    }
                    Frame::Other
                }
                _ => Frame::Other,
            };
            stack.push(frame);
            if !empty {
                continue;
            }
        } else if !matches!(event, Event::End(_)) {
            continue;
        }
        // An end (or the end of an empty element).
        let frame = stack
            .pop()
            .ok_or_else(|| xml_err(&reader, "closing tag without an opening tag".into()))?;
        match frame {
            Frame::ComplexType {
                name: Some(name),
                children,
                base,
            } => {
                named_types.insert(name, (children, base));
            }
            Frame::ComplexType {
                name: None,
                children,
                base,
            } => {
                if let Some(Frame::Element { inline: slot, .. }) = stack.last_mut() {
                    *slot = Some((children, base));
                }
            }
            Frame::Element {
                name: Some(name),
                type_ref,
                inline: decl,
            } => match (decl, type_ref) {
                (Some((children, base)), _) => inline.push((name, children, base)),
                (None, Some(t)) => typed.push((name, t)),
                (None, None) => {}
            },
            _ => {}
        }
    }
    // A named type's whole order: its bases' first.
    let resolve = |mut children: Vec<String>, mut base: Option<String>| {
        let mut depth = 0;
        while let Some(b) = base.take() {
            depth += 1;
            if depth > 16 {
                break;
            }
            if let Some((parent, next)) = named_types.get(&b) {
                let mut whole = parent.clone();
                whole.append(&mut children);
                children = whole;
                base = next.clone();
            }
        }
        children
    };
    let mut out = SchemaOrder::default();
    let mut add = |name: String, children: Vec<String>| {
        if children.is_empty() {
            return;
        }
        match out.order.get(&name) {
            Some(existing) if *existing != children => {
                out.ambiguous.insert(name);
            }
            Some(_) => {}
            None => {
                out.order.insert(name, children);
            }
        }
    };
    for (name, children, base) in inline {
        add(name, resolve(children, base));
    }
    for (name, t) in typed {
        if let Some((children, base)) = named_types.get(&t) {
            add(name, resolve(children.clone(), base.clone()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const XSD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema" xmlns:tns="urn:case"
           targetNamespace="urn:case" elementFormDefault="qualified">
  <xs:element name="SubmitCase">
    <xs:complexType>
      <xs:sequence>
        <xs:element name="CaseNo" type="xs:string"/>
        <xs:element name="Title" type="xs:string"/>
        <xs:element ref="tns:Applicant"/>
        <xs:choice>
          <xs:element name="Phone" type="xs:string"/>
          <xs:element name="Email" type="xs:string"/>
        </xs:choice>
        <xs:element name="Address" type="tns:AddressType"/>
      </xs:sequence>
    </xs:complexType>
  </xs:element>
  <xs:element name="Applicant" type="xs:string"/>
  <xs:complexType name="BaseAddress">
    <xs:sequence><xs:element name="Province" type="xs:string"/></xs:sequence>
  </xs:complexType>
  <xs:complexType name="AddressType">
    <xs:complexContent>
      <xs:extension base="tns:BaseAddress">
        <xs:sequence>
          <xs:element name="Street" type="xs:string"/>
          <xs:element name="District" type="xs:string"/>
        </xs:sequence>
      </xs:extension>
    </xs:complexContent>
  </xs:complexType>
</xs:schema>"#;

    #[test]
    fn sequences_inline_named_and_extended_are_read_in_document_order() {
        let o = read_order(XSD, &InputLimits::default()).unwrap();
        assert_eq!(
            o.order["SubmitCase"],
            ["CaseNo", "Title", "Applicant", "Phone", "Email", "Address"]
        );
        assert_eq!(o.order["Address"], ["Province", "Street", "District"]);
        assert!(
            !o.order.contains_key("CaseNo"),
            "simple elements have no order"
        );
        assert!(o.ambiguous.is_empty());
    }

    #[test]
    fn a_name_declared_with_two_orders_is_ambiguous() {
        let xsd = r#"<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">
          <xs:element name="A"><xs:complexType><xs:sequence>
            <xs:element name="Item"><xs:complexType><xs:sequence><xs:element name="x"/><xs:element name="y"/></xs:sequence></xs:complexType></xs:element>
          </xs:sequence></xs:complexType></xs:element>
          <xs:element name="B"><xs:complexType><xs:sequence>
            <xs:element name="Item"><xs:complexType><xs:sequence><xs:element name="y"/><xs:element name="x"/></xs:sequence></xs:complexType></xs:element>
          </xs:sequence></xs:complexType></xs:element>
        </xs:schema>"#;
        let o = read_order(xsd, &InputLimits::default()).unwrap();
        assert!(o.ambiguous.contains("Item"));
    }

    #[test]
    fn hostile_schemas_are_refused() {
        let dtd = r#"<!DOCTYPE x [<!ENTITY a "b">]><xs:schema/>"#;
        assert_eq!(
            read_order(dtd, &InputLimits::default()),
            Err(InputError::Dtd)
        );
        let deep = "<a>".repeat(100_000) + &"</a>".repeat(100_000);
        assert_eq!(
            read_order(&deep, &InputLimits::default()),
            Err(InputError::Limit(Exceeded::Depth(64)))
        );
    }
}
