//! Personal fields of a record: sealed before Kafka, opened only where they must be read.
//!
//! The contract lists them (`x-pii`) as dotted paths such as `applicant.id_number` and
//! `materials[].holder_name`. The authenticated context of each sealed value is
//! `<topic>/<path>`, so a value cannot be moved to another field or contract and still open.

use hub_contracts::Contract;
use hub_security::field::FieldCipher;
use hub_security::CryptoError;
use serde_json::Value;

/// Seals, in place, every personal field the contract declares. Nulls stay null. Every string
/// is sealed, including one that already looks sealed (`sm4gcm:v1:…`): the record comes from
/// a partner or a person, who can write that prefix in front of clear text, and a value left
/// alone because of its prefix would reach Kafka, the dead letters and `hub dlq show` in
/// clear. A value that really was sealed is sealed once more and opens to its sealed form.
/// Returns how many values were sealed.
pub fn seal_record(
    cipher: &FieldCipher,
    contract: &Contract,
    record: &mut Value,
) -> Result<usize, CryptoError> {
    each_personal_value(contract, record, |context, s| {
        *s = cipher.seal(context, s)?;
        Ok(true)
    })
}

/// Opens, in place, every sealed personal field: for a partner that must receive them in clear
/// (over TLS, and encrypted again when its protocol says so) or for an authorised person.
/// A value that is not sealed is left as it is. Returns how many values were opened.
pub fn open_record(
    cipher: &FieldCipher,
    contract: &Contract,
    record: &mut Value,
) -> Result<usize, CryptoError> {
    each_personal_value(contract, record, |context, s| {
        if !FieldCipher::is_sealed(s) {
            return Ok(false);
        }
        *s = cipher.open(context, s)?;
        Ok(true)
    })
}

/// What follows the `sm4gcm:v1:<key id>` label of a sealed value on a screen.
pub const SHOWN_SEALED: &str = ":…（已加密 / sealed）";

/// Is `s` exactly the screen form of a sealed value (`sm4gcm:v1:<key id>:…（已加密 / sealed）`),
/// as [`mask_record`] writes it? Such a value holds nothing but a key id.
pub fn is_shown_sealed(s: &str) -> bool {
    s.strip_suffix(SHOWN_SEALED)
        .and_then(|l| l.strip_prefix("sm4gcm:v1:"))
        .is_some_and(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
}

/// Masks, in place, every personal field for a screen (the console's dead letters): a sealed
/// value shows only its scheme and key id, a value in clear (which should never be on Kafka) is
/// masked by its kind with `hub_security::mask`. Returns how many values were masked.
pub fn mask_record(contract: &Contract, record: &mut Value) -> usize {
    let kinds: Vec<(String, String)> = contract
        .pii
        .iter()
        .map(|f| (f.path.clone(), f.kind.clone()))
        .collect();
    let mut changed = 0;
    for (path, kind) in kinds {
        let segments: Vec<&str> = path.split('.').collect();
        let _ = visit(record, &segments, &mut |s| {
            *s = if let Some(label) = FieldCipher::sealed_label(s) {
                format!("{label}{SHOWN_SEALED}")
            } else {
                hub_security::mask::by_kind(&kind, s)
            };
            changed += 1;
            Ok(())
        });
    }
    changed
}

/// Calls `f(context, value)` on every string at a personal path; counts the `true` answers.
fn each_personal_value(
    contract: &Contract,
    record: &mut Value,
    mut f: impl FnMut(&str, &mut String) -> Result<bool, CryptoError>,
) -> Result<usize, CryptoError> {
    let mut changed = 0;
    for field in &contract.pii {
        let context = format!("{}/{}", contract.declaration.topic, field.path);
        let segments: Vec<&str> = field.path.split('.').collect();
        visit(record, &segments, &mut |s| {
            if f(&context, s)? {
                changed += 1;
            }
            Ok(())
        })?;
    }
    Ok(changed)
}

fn visit(
    value: &mut Value,
    path: &[&str],
    f: &mut dyn FnMut(&mut String) -> Result<(), CryptoError>,
) -> Result<(), CryptoError> {
    let Some((first, rest)) = path.split_first() else {
        return Ok(());
    };
    let (name, each) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    let Some(child) = value.as_object_mut().and_then(|o| o.get_mut(name)) else {
        return Ok(());
    };
    if each {
        if let Value::Array(items) = child {
            for item in items {
                visit(item, rest, f)?;
            }
        }
        return Ok(());
    }
    if rest.is_empty() {
        if let Value::String(s) = child {
            f(s)?;
        }
        Ok(())
    } else {
        visit(child, rest, f)
    }
}
