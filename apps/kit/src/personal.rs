//! Personal fields of a contract record, for showing: every value at a path the contract marks
//! `x-pii` replaced by its mask (`hub_security::mask`), by kind (name, phone, address,
//! id_number). Sealing and opening are `hub_pipeline::pii`'s; this only hides what is shown.

use hub_contracts::Contract;
use serde_json::Value;

/// Masks, in place, every personal value of `record` (which must hold clear values: open them
/// first). Returns how many values were masked.
pub fn mask_record(contract: &Contract, record: &mut Value) -> usize {
    let mut n = 0;
    for field in &contract.pii {
        let segments: Vec<&str> = field.path.split('.').collect();
        visit(record, &segments, &mut |s: &mut String| {
            *s = hub_security::mask::by_kind(&field.kind, s);
            n += 1;
        });
    }
    n
}

/// Calls `f` on every string at `path` (`a.b`, `items[].name`).
fn visit(value: &mut Value, path: &[&str], f: &mut dyn FnMut(&mut String)) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let (name, each) = match first.strip_suffix("[]") {
        Some(n) => (n, true),
        None => (*first, false),
    };
    let Some(child) = value.as_object_mut().and_then(|o| o.get_mut(name)) else {
        return;
    };
    match (each, rest.is_empty(), child) {
        (true, _, Value::Array(items)) => items.iter_mut().for_each(|i| visit(i, rest, f)),
        (false, true, Value::String(s)) => f(s),
        (false, false, c) => visit(c, rest, f),
        _ => {}
    }
}
