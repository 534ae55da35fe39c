//! Sealing the personal fields of a mapped record before it leaves the gateway.

use hub_contracts::Contract;
use hub_security::field::FieldCipher;
use hub_security::CryptoError;
use serde_json::Value;

/// Seals, in place, every personal field the contract declares (`x-pii`), following paths such
/// as `applicant.id_number` and `materials[].holder_name`. Nulls stay null; a value already
/// sealed is left alone. The authenticated context is `<topic>/<path>`.
pub fn seal_record(
    cipher: &FieldCipher,
    contract: &Contract,
    record: &mut Value,
) -> Result<usize, CryptoError> {
    let mut sealed = 0;
    for field in &contract.pii {
        let context = format!("{}/{}", contract.declaration.topic, field.path);
        let segments: Vec<&str> = field.path.split('.').collect();
        seal_at(cipher, &context, record, &segments, &mut sealed)?;
    }
    Ok(sealed)
}

fn seal_at(
    cipher: &FieldCipher,
    context: &str,
    value: &mut Value,
    path: &[&str],
    sealed: &mut usize,
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
                seal_at(cipher, context, item, rest, sealed)?;
            }
        }
        return Ok(());
    }
    if rest.is_empty() {
        if let Value::String(s) = child {
            if !FieldCipher::is_sealed(s) {
                *s = cipher.seal(context, s)?;
                *sealed += 1;
            }
        }
        Ok(())
    } else {
        seal_at(cipher, context, child, rest, sealed)
    }
}
