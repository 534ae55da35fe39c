//! The VRL target of a mapping run: the event (`.`) owned by the run, the metadata (`%`) shared.
//!
//! Every program reads the code tables as `%tables.<name>`. Handing VRL an owned copy of the
//! metadata meant deep-cloning every partner's tables into every run, a cost that grew with each
//! table added. Here the tables stay where they were loaded (behind an `Arc`) and are read by
//! reference; the few values of one run (`%xml_root`) sit in a small overlay beside them. A
//! program that writes to `%` gets its own copy at its first write (copy on write), so what a
//! program sees is exactly what it saw with an owned copy.

use std::cell::OnceCell;

use vrl::compiler::{SecretTarget, Target};
use vrl::path::{OwnedSegment, OwnedTargetPath, OwnedValuePath, PathPrefix};
use vrl::value::{Secrets, Value};

#[derive(Debug)]
pub(crate) struct SharedMetadataTarget<'a> {
    /// The event: the input before the run, the result after it.
    pub(crate) value: Value,
    /// The metadata every run shares (`{"tables": {…}}`).
    shared: &'a Value,
    /// This run's own top-level metadata fields (an object), read before the shared ones.
    overlay: Value,
    /// The whole metadata once the program wrote to it (or read `%` as a whole).
    owned: Option<Value>,
    merged: OnceCell<Value>,
    secrets: Secrets,
}

impl<'a> SharedMetadataTarget<'a> {
    pub(crate) fn new(value: Value, shared: &'a Value, overlay: Value) -> Self {
        Self {
            value,
            shared,
            overlay,
            owned: None,
            merged: OnceCell::new(),
            secrets: Secrets::default(),
        }
    }

    /// The shared metadata with the overlay's fields put over it (what an owned copy held).
    fn merge(&self) -> Value {
        let mut whole = self.shared.clone();
        if let (Value::Object(w), Value::Object(o)) = (&mut whole, &self.overlay) {
            for (k, v) in o {
                w.insert(k.clone(), v.clone());
            }
        }
        whole
    }

    /// The metadata to change: copied out of the shared one at the first change.
    fn metadata_mut(&mut self) -> &mut Value {
        if self.owned.is_none() {
            let whole = match self.merged.take() {
                Some(m) => m,
                None => self.merge(),
            };
            self.owned = Some(whole);
        }
        self.owned.as_mut().expect("just set")
    }

    fn metadata_get(&self, path: &OwnedValuePath) -> Option<&Value> {
        if let Some(owned) = &self.owned {
            return owned.get(path);
        }
        match path.segments.first() {
            None => Some(self.merged.get_or_init(|| self.merge())),
            Some(OwnedSegment::Field(name)) => match &self.overlay {
                Value::Object(o) if o.contains_key(name.as_str()) => self.overlay.get(path),
                _ => self.shared.get(path),
            },
            Some(OwnedSegment::Index(_)) => None,
        }
    }
}

impl Target for SharedMetadataTarget<'_> {
    fn target_insert(&mut self, path: &OwnedTargetPath, value: Value) -> Result<(), String> {
        match path.prefix {
            PathPrefix::Event => self.value.insert(&path.path, value),
            PathPrefix::Metadata => self.metadata_mut().insert(&path.path, value),
        };
        Ok(())
    }

    fn target_get(&self, path: &OwnedTargetPath) -> Result<Option<&Value>, String> {
        Ok(match path.prefix {
            PathPrefix::Event => self.value.get(&path.path),
            PathPrefix::Metadata => self.metadata_get(&path.path),
        })
    }

    fn target_get_mut(&mut self, path: &OwnedTargetPath) -> Result<Option<&mut Value>, String> {
        Ok(match path.prefix {
            PathPrefix::Event => self.value.get_mut(&path.path),
            PathPrefix::Metadata => self.metadata_mut().get_mut(&path.path),
        })
    }

    fn target_remove(
        &mut self,
        path: &OwnedTargetPath,
        compact: bool,
    ) -> Result<Option<Value>, String> {
        Ok(match path.prefix {
            PathPrefix::Event => self.value.remove(&path.path, compact),
            PathPrefix::Metadata => self.metadata_mut().remove(&path.path, compact),
        })
    }
}

impl SecretTarget for SharedMetadataTarget<'_> {
    fn get_secret(&self, key: &str) -> Option<&str> {
        self.secrets.get_secret(key)
    }

    fn insert_secret(&mut self, key: &str, value: &str) {
        self.secrets.insert_secret(key, value);
    }

    fn remove_secret(&mut self, key: &str) {
        self.secrets.remove_secret(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Value {
        Value::from(serde_json::json!({"tables": {"districts": {"01": "黄浦区"}}}))
    }

    fn path(prefix: PathPrefix, p: &str) -> OwnedTargetPath {
        let path = vrl::path::parse_value_path(p).expect("a path");
        OwnedTargetPath { prefix, path }
    }

    #[test]
    fn reads_come_from_the_shared_tables_and_the_overlay() {
        let shared = meta();
        let overlay = Value::from(serde_json::json!({"xml_root": "ticket"}));
        let t = SharedMetadataTarget::new(Value::Null, &shared, overlay);
        let got = t
            .target_get(&path(PathPrefix::Metadata, ".tables.districts.\"01\""))
            .unwrap();
        assert_eq!(got, Some(&Value::from("黄浦区")));
        let root = t
            .target_get(&path(PathPrefix::Metadata, ".xml_root"))
            .unwrap();
        assert_eq!(root, Some(&Value::from("ticket")));
        let whole = t.target_get(&path(PathPrefix::Metadata, ".")).unwrap();
        let expected = Value::from(serde_json::json!({
            "tables": {"districts": {"01": "黄浦区"}}, "xml_root": "ticket"
        }));
        assert_eq!(whole, Some(&expected));
    }

    #[test]
    fn a_write_to_the_metadata_changes_this_run_only() {
        let shared = meta();
        let mut t =
            SharedMetadataTarget::new(Value::Null, &shared, Value::Object(Default::default()));
        t.target_insert(
            &path(PathPrefix::Metadata, ".tables.districts.\"01\""),
            Value::from("changed"),
        )
        .unwrap();
        let got = t
            .target_get(&path(PathPrefix::Metadata, ".tables.districts.\"01\""))
            .unwrap();
        assert_eq!(got, Some(&Value::from("changed")));
        assert_eq!(shared, meta(), "the shared tables are untouched");
    }
}
