//! Checking a mapped record against its contract and encoding it for Kafka.
//!
//! A mapping produces a JSON-shaped record. [`Contract::to_avro`] walks it against the Avro
//! schema and reports *every* offending path at once (missing field, unknown field, wrong type,
//! unknown enum symbol, bad decimal, a time without an offset), so a partner integrator fixes
//! a payload in one round. Only a record with no problem becomes an Avro value.
//!
//! On Kafka a record is framed in the Confluent wire format: magic byte 0, the schema id as a
//! 4-byte big-endian integer, then the Avro binary datum ([`frame`], [`unframe`]).

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use apache_avro::schema::{Name, RecordSchema, Schema};
use apache_avro::types::Value as Avro;
use serde_json::Value as Json;

use crate::Contract;

/// One thing wrong with a record: where (`applicant.id_number`, `items[2].amount`) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    pub path: String,
    pub problem: String,
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(record)"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.problem)
    }
}

/// Why bytes from Kafka are not a framed record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("shorter than the 5-byte Confluent header")]
    TooShort,
    #[error("magic byte is {0}, not 0")]
    BadMagic(u8),
}

/// Frames an Avro datum in the Confluent wire format.
pub fn frame(schema_id: u32, datum: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + datum.len());
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
    out.extend_from_slice(datum);
    out
}

/// Splits a Confluent-framed message into its schema id and Avro datum.
pub fn unframe(bytes: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if bytes.len() < 5 {
        return Err(WireError::TooShort);
    }
    if bytes[0] != 0 {
        return Err(WireError::BadMagic(bytes[0]));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    Ok((id, &bytes[5..]))
}

impl Contract {
    /// Converts `record` into an Avro value of this contract, or lists every problem.
    pub fn to_avro(&self, record: &Json) -> Result<Avro, Vec<RecordError>> {
        let date_times: BTreeSet<&str> = self.date_times.iter().map(|d| d.path.as_str()).collect();
        let mut walk = Walk {
            names: &self.named_types,
            date_times: &date_times,
            errors: Vec::new(),
        };
        let value = walk.value(&self.schema, record, "", "");
        if walk.errors.is_empty() {
            Ok(value)
        } else {
            Err(walk.errors)
        }
    }

    /// Validates and encodes `record` as an Avro binary datum (without the wire header).
    pub fn encode(&self, record: &Json) -> Result<Vec<u8>, Vec<RecordError>> {
        let value = self.to_avro(record)?;
        apache_avro::to_avro_datum(&self.schema, value).map_err(|e| {
            vec![RecordError {
                path: String::new(),
                problem: format!("Avro encoding failed: {e}"),
            }]
        })
    }

    /// Decodes an Avro binary datum written with this contract's schema.
    pub fn decode(&self, mut datum: &[u8]) -> Result<Avro, apache_avro::Error> {
        apache_avro::from_avro_datum(&self.schema, &mut datum, None)
    }

    /// Avro binary → the JSON record shape mappings read and write (the inverse of
    /// [`Contract::to_avro`]): unions as their plain value, decimals as decimal strings, dates
    /// as `YYYY-MM-DD`, enums as their symbol. `writer` is the schema the datum was written
    /// with when it is an older version of this contract; it is resolved into the current one.
    pub fn decode_json(
        &self,
        writer: Option<&Schema>,
        mut datum: &[u8],
    ) -> Result<Json, apache_avro::Error> {
        let value = match writer {
            Some(w) => apache_avro::from_avro_datum(w, &mut datum, Some(&self.schema))?,
            None => apache_avro::from_avro_datum(&self.schema, &mut datum, None)?,
        };
        Ok(avro_to_json(&self.schema, &self.named_types, value))
    }
}

/// One Avro value as the JSON the mappings use; `schema` gives decimal scales.
fn avro_to_json(schema: &Schema, names: &HashMap<Name, Schema>, value: Avro) -> Json {
    let schema = match schema {
        Schema::Ref { name } => names.get(name).unwrap_or(schema),
        other => other,
    };
    match value {
        Avro::Null => Json::Null,
        Avro::Boolean(b) => Json::Bool(b),
        Avro::Int(i) => Json::from(i),
        Avro::Long(i) => Json::from(i),
        Avro::Float(f) => Json::from(f64::from(f)),
        Avro::Double(f) => Json::from(f),
        Avro::String(s) | Avro::Enum(_, s) => Json::String(s),
        Avro::Bytes(b) | Avro::Fixed(_, b) => {
            Json::String(String::from_utf8_lossy(&b).into_owned())
        }
        Avro::Uuid(u) => Json::String(u.to_string()),
        Avro::Date(days) => {
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
            let day = epoch + chrono::Duration::days(i64::from(days));
            Json::String(day.format("%Y-%m-%d").to_string())
        }
        Avro::Decimal(d) => {
            let scale = match schema {
                Schema::Decimal(d) => d.scale,
                _ => 0,
            };
            let bytes: Vec<u8> = d.try_into().unwrap_or_default();
            Json::String(decimal_text(&bytes, scale))
        }
        Avro::Union(i, inner) => {
            let branch = match schema {
                Schema::Union(u) => u.variants().get(i as usize).unwrap_or(schema),
                other => other,
            };
            avro_to_json(branch, names, *inner)
        }
        Avro::Array(items) => {
            let item_schema = match schema {
                Schema::Array(a) => a.items.as_ref(),
                other => other,
            };
            Json::Array(
                items
                    .into_iter()
                    .map(|v| avro_to_json(item_schema, names, v))
                    .collect(),
            )
        }
        Avro::Map(entries) => {
            let value_schema = match schema {
                Schema::Map(m) => m.types.as_ref(),
                other => other,
            };
            Json::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, avro_to_json(value_schema, names, v)))
                    .collect(),
            )
        }
        Avro::Record(fields) => {
            let field_schemas: HashMap<&str, &Schema> = match schema {
                Schema::Record(r) => r
                    .fields
                    .iter()
                    .map(|f| (f.name.as_str(), &f.schema))
                    .collect(),
                _ => HashMap::new(),
            };
            Json::Object(
                fields
                    .into_iter()
                    .map(|(k, v)| {
                        let s = field_schemas.get(k.as_str()).copied().unwrap_or(schema);
                        let json = avro_to_json(s, names, v);
                        (k, json)
                    })
                    .collect(),
            )
        }
        other => Json::String(format!("{other:?}")),
    }
}

/// Big-endian two's complement unscaled bytes with `scale` → `"-1234.50"`.
fn decimal_text(bytes: &[u8], scale: usize) -> String {
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    let mut buf = [if negative { 0xff } else { 0 }; 16];
    let n = bytes.len().min(16);
    buf[16 - n..].copy_from_slice(&bytes[bytes.len() - n..]);
    let unscaled = i128::from_be_bytes(buf);
    let digits = unscaled.unsigned_abs().to_string();
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (int_part, frac_part) = digits.split_at(digits.len() - scale);
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        format!("{sign}{int_part}")
    } else {
        format!("{sign}{int_part}.{frac_part}")
    }
}

pub(crate) fn named_types(schema: &Schema) -> HashMap<Name, Schema> {
    fn collect(s: &Schema, out: &mut HashMap<Name, Schema>) {
        match s {
            Schema::Record(r) => {
                out.insert(r.name.clone(), s.clone());
                for f in &r.fields {
                    collect(&f.schema, out);
                }
            }
            Schema::Enum(e) => {
                out.insert(e.name.clone(), s.clone());
            }
            Schema::Fixed(f) => {
                out.insert(f.name.clone(), s.clone());
            }
            Schema::Array(a) => collect(&a.items, out),
            Schema::Map(m) => collect(&m.types, out),
            Schema::Union(u) => u.variants().iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    let mut out = HashMap::new();
    collect(schema, &mut out);
    out
}

struct Walk<'a> {
    names: &'a HashMap<Name, Schema>,
    date_times: &'a BTreeSet<&'a str>,
    errors: Vec<RecordError>,
}

fn json_kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn child(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

impl Walk<'_> {
    fn fail(&mut self, path: &str, problem: impl Into<String>) -> Avro {
        self.errors.push(RecordError {
            path: path.to_string(),
            problem: problem.into(),
        });
        Avro::Null
    }

    fn expected(&mut self, path: &str, what: &str, got: &Json) -> Avro {
        let problem = format!("expected {what}, got {}", json_kind(got));
        self.fail(path, problem)
    }

    /// `path` names the place in this record; `spath` the place in the schema (`items[]`).
    fn value(&mut self, schema: &Schema, v: &Json, path: &str, spath: &str) -> Avro {
        match (schema, v) {
            (Schema::Ref { name }, _) => match self.names.get(name).cloned() {
                Some(s) => self.value(&s, v, path, spath),
                None => self.fail(path, format!("schema names unknown type {name}")),
            },
            (Schema::Null, Json::Null) => Avro::Null,
            (Schema::Boolean, Json::Bool(b)) => Avro::Boolean(*b),
            (Schema::Int, Json::Number(n)) => {
                match n.as_i64().and_then(|i| i32::try_from(i).ok()) {
                    Some(i) => Avro::Int(i),
                    None => self.fail(path, format!("{n} is not a 32-bit whole number")),
                }
            }
            (Schema::Long, Json::Number(n)) => match n.as_i64() {
                Some(i) => Avro::Long(i),
                None => self.fail(path, format!("{n} is not a 64-bit whole number")),
            },
            (Schema::Float, Json::Number(n)) => Avro::Float(n.as_f64().unwrap_or(f64::NAN) as f32),
            (Schema::Double, Json::Number(n)) => Avro::Double(n.as_f64().unwrap_or(f64::NAN)),
            (Schema::String, Json::String(s)) => {
                if self.date_times.contains(spath) {
                    if let Err(e) = chrono::DateTime::parse_from_rfc3339(s) {
                        return self.fail(
                            path,
                            format!("`{s}` is not an RFC 3339 time with an offset (e.g. 2026-11-22T09:30:00+08:00): {e}"),
                        );
                    }
                }
                Avro::String(s.clone())
            }
            (Schema::Bytes, Json::String(s)) => Avro::Bytes(s.as_bytes().to_vec()),
            (Schema::Uuid, Json::String(s)) => match uuid::Uuid::parse_str(s) {
                Ok(u) => Avro::Uuid(u),
                Err(e) => self.fail(path, format!("`{s}` is not a UUID: {e}")),
            },
            (Schema::Date, Json::String(s)) => {
                match chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
                    Ok(d) => {
                        let epoch =
                            chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid date");
                        Avro::Date((d - epoch).num_days() as i32)
                    }
                    Err(_) => self.fail(path, format!("`{s}` is not a date YYYY-MM-DD")),
                }
            }
            (Schema::Date, Json::Number(n)) => match n.as_i64().and_then(|i| i32::try_from(i).ok())
            {
                Some(days) => Avro::Date(days),
                None => self.fail(path, format!("{n} is not a day count")),
            },
            (Schema::Decimal(d), _) => self.decimal(d.precision, d.scale, v, path),
            (Schema::Enum(e), Json::String(s)) => match e.symbols.iter().position(|x| x == s) {
                Some(i) => Avro::Enum(i as u32, s.clone()),
                None => self.fail(
                    path,
                    format!(
                        "`{s}` is not a symbol of {} ({})",
                        e.name.name,
                        e.symbols.join(", ")
                    ),
                ),
            },
            (Schema::Array(a), Json::Array(items)) => {
                let spath = format!("{spath}[]");
                Avro::Array(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            self.value(&a.items, item, &format!("{path}[{i}]"), &spath)
                        })
                        .collect(),
                )
            }
            (Schema::Map(m), Json::Object(o)) => {
                let spath = format!("{spath}{{}}");
                Avro::Map(
                    o.iter()
                        .map(|(k, item)| {
                            (
                                k.clone(),
                                self.value(&m.types, item, &child(path, k), &spath),
                            )
                        })
                        .collect(),
                )
            }
            (Schema::Union(u), _) => self.union(u.variants(), v, path, spath),
            (Schema::Record(r), Json::Object(_)) => self.record(r, v, path, spath),
            (Schema::Boolean, _) => self.expected(path, "a boolean", v),
            (Schema::Int | Schema::Long, _) => self.expected(path, "a whole number", v),
            (Schema::Float | Schema::Double, _) => self.expected(path, "a number", v),
            (Schema::String | Schema::Uuid, _) => self.expected(path, "a string", v),
            (Schema::Bytes, _) => self.expected(path, "a string of bytes", v),
            (Schema::Date, _) => self.expected(path, "a date YYYY-MM-DD", v),
            (Schema::Enum(e), _) => {
                let what = format!("one of {}", e.symbols.join(", "));
                self.expected(path, &what, v)
            }
            (Schema::Array(_), _) => self.expected(path, "an array", v),
            (Schema::Map(_), _) => self.expected(path, "an object of values", v),
            (Schema::Record(r), _) => {
                let what = format!("an object ({})", r.name.name);
                self.expected(path, &what, v)
            }
            (Schema::Null, _) => self.expected(path, "null", v),
            (other, _) => self.fail(
                path,
                format!("the contract uses {other:?}, which the hub does not map"),
            ),
        }
    }

    fn record(&mut self, r: &RecordSchema, v: &Json, path: &str, spath: &str) -> Avro {
        let obj = v.as_object().expect("matched an object");
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let fpath = child(path, &f.name);
            let fspath = child(spath, &f.name);
            let value = match (obj.get(&f.name), &f.default) {
                (Some(x), _) => self.value(&f.schema, x, &fpath, &fspath),
                (None, Some(default)) => self.value(&f.schema, default, &fpath, &fspath),
                (None, None) => self.fail(&fpath, "is required by the contract and missing"),
            };
            fields.push((f.name.clone(), value));
        }
        for k in obj.keys() {
            if !r.fields.iter().any(|f| &f.name == k) {
                self.fail(&child(path, k), "is not a field of the contract");
            }
        }
        Avro::Record(fields)
    }

    fn union(&mut self, variants: &[Schema], v: &Json, path: &str, spath: &str) -> Avro {
        if v.is_null() {
            return match variants.iter().position(|s| matches!(s, Schema::Null)) {
                Some(i) => Avro::Union(i as u32, Box::new(Avro::Null)),
                None => self.fail(path, "is null, and the contract does not allow null here"),
            };
        }
        // The first non-null branch the value fits; report the errors of the first non-null
        // branch when none fits (unions here are almost always `null | T`).
        let mut first_errors = None;
        for (i, s) in variants.iter().enumerate() {
            if matches!(s, Schema::Null) {
                continue;
            }
            let mut trial = Walk {
                names: self.names,
                date_times: self.date_times,
                errors: Vec::new(),
            };
            let value = trial.value(s, v, path, spath);
            if trial.errors.is_empty() {
                return Avro::Union(i as u32, Box::new(value));
            }
            first_errors.get_or_insert(trial.errors);
        }
        self.errors.extend(first_errors.unwrap_or_default());
        Avro::Null
    }

    /// Money and other exact quantities: a decimal string ("1234.50") or a whole number.
    /// A JSON fraction is refused: it has already passed through a binary float.
    fn decimal(&mut self, precision: usize, scale: usize, v: &Json, path: &str) -> Avro {
        let text = match v {
            Json::String(s) => s.trim().to_string(),
            Json::Number(n) if n.is_i64() => n.to_string(),
            Json::Number(n) => {
                return self.fail(
                    path,
                    format!(
                    "{n} is a binary fraction; send the amount as a decimal string, e.g. \"{n}\""
                ),
                )
            }
            other => return self.expected(path, "a decimal string such as \"1234.50\"", other),
        };
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.as_str()),
        };
        let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
        let well_formed = !int_part.is_empty()
            && int_part.chars().all(|c| c.is_ascii_digit())
            && frac_part.chars().all(|c| c.is_ascii_digit())
            && !(digits.contains('.') && frac_part.is_empty());
        if !well_formed {
            return self.fail(path, format!("`{text}` is not a decimal number"));
        }
        if frac_part.len() > scale {
            return self.fail(
                path,
                format!(
                    "`{text}` has {} decimal places; the contract allows {scale}",
                    frac_part.len()
                ),
            );
        }
        let int_digits = int_part.trim_start_matches('0').len();
        if int_digits + scale > precision {
            return self.fail(
                path,
                format!("`{text}` does not fit decimal({precision}, {scale})"),
            );
        }
        let unscaled_text = format!("{int_part}{frac_part:0<scale$}");
        let Ok(mut unscaled) = unscaled_text.parse::<i128>() else {
            return self.fail(
                path,
                format!("`{text}` does not fit decimal({precision}, {scale})"),
            );
        };
        if negative {
            unscaled = -unscaled;
        }
        Avro::Decimal(apache_avro::Decimal::from(twos_complement(unscaled)))
    }
}

/// Minimal big-endian two's complement bytes of `n` (Avro's decimal encoding).
fn twos_complement(n: i128) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let mut start = 0;
    while start < bytes.len() - 1 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        let redundant = (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    bytes[start..].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn twos_complement_is_minimal() {
        assert_eq!(twos_complement(0), vec![0]);
        assert_eq!(twos_complement(127), vec![0x7f]);
        assert_eq!(twos_complement(128), vec![0x00, 0x80]);
        assert_eq!(twos_complement(-1), vec![0xff]);
        assert_eq!(twos_complement(-129), vec![0xff, 0x7f]);
        assert_eq!(twos_complement(123_450), vec![0x01, 0xe2, 0x3a]);
    }

    #[test]
    fn decimal_text_inverts_the_encoding() {
        assert_eq!(decimal_text(&twos_complement(123_450), 2), "1234.50");
        assert_eq!(decimal_text(&twos_complement(-5), 2), "-0.05");
        assert_eq!(decimal_text(&twos_complement(0), 2), "0.00");
        assert_eq!(decimal_text(&twos_complement(42), 0), "42");
    }

    #[test]
    fn the_wire_format_round_trips_and_refuses_foreign_bytes() {
        let framed = frame(0x0102_0304, b"datum");
        assert_eq!(&framed[..5], &[0, 1, 2, 3, 4]);
        assert_eq!(unframe(&framed), Ok((0x0102_0304, &b"datum"[..])));
        assert_eq!(unframe(b"\x00\x01"), Err(WireError::TooShort));
        assert_eq!(unframe(b"{\"json\":1}"), Err(WireError::BadMagic(b'{')));
    }
}
