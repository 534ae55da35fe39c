//! Which offsets may be committed: a partition's committed offset only moves past a record
//! once it and every record before it are finished (delivered, dead-lettered or skipped).

use std::collections::{BTreeSet, HashMap};

type Partition = (String, i32);

#[derive(Debug, Default)]
pub struct OffsetTracker {
    /// Offsets read and not finished, per partition.
    open: HashMap<Partition, BTreeSet<i64>>,
    /// The highest offset read, per partition.
    highest: HashMap<Partition, i64>,
    /// The next offset last committed, per partition.
    committed: HashMap<Partition, i64>,
}

impl OffsetTracker {
    /// A record was read. Returns `false` for a record this worker already read (the client
    /// fetched it again after a rebalance): it is in flight or done, not new work.
    pub fn read(&mut self, topic: &str, partition: i32, offset: i64) -> bool {
        let p = (topic.to_string(), partition);
        if self.highest.get(&p).is_some_and(|h| offset <= *h) {
            return false;
        }
        self.open.entry(p.clone()).or_default().insert(offset);
        self.highest.insert(p, offset);
        true
    }

    /// A record is finished.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(set) = self.open.get_mut(&(topic.to_string(), partition)) {
            set.remove(&offset);
        }
    }

    /// Records read and not finished.
    pub fn held(&self) -> usize {
        self.open.values().map(BTreeSet::len).sum()
    }

    /// `(topic, partition, next offset)` for every partition whose committable offset moved
    /// since the last call; the caller commits them, then calls [`OffsetTracker::committed`].
    pub fn committable(&self) -> Vec<(String, i32, i64)> {
        let mut out = Vec::new();
        for (p, highest) in &self.highest {
            let next = match self.open.get(p).and_then(|s| s.first()) {
                Some(first_open) => *first_open,
                None => highest + 1,
            };
            if self.committed.get(p).is_none_or(|c| next > *c) {
                out.push((p.0.clone(), p.1, next));
            }
        }
        out.sort();
        out
    }

    /// The offsets of [`OffsetTracker::committable`] were stored by the coordinator.
    pub fn committed(&mut self, done: &[(String, i32, i64)]) {
        for (t, p, next) in done {
            self.committed.insert((t.clone(), *p), *next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_still_open_holds_its_partition_back() {
        let mut t = OffsetTracker::default();
        for o in 10..15 {
            t.read("a", 0, o);
        }
        t.read("a", 1, 7);
        assert!(!t.read("a", 0, 12), "a record read again is not new work");
        t.finish("a", 0, 10);
        t.finish("a", 0, 12);
        t.finish("a", 0, 13);
        assert_eq!(
            t.committable(),
            vec![("a".into(), 0, 11), ("a".into(), 1, 7)],
            "11 is open: nothing after it may be committed"
        );
        t.committed(&t.committable());
        assert!(t.committable().is_empty(), "nothing moved since");
        t.finish("a", 0, 11);
        t.finish("a", 0, 14);
        t.finish("a", 1, 7);
        assert_eq!(
            t.committable(),
            vec![("a".into(), 0, 15), ("a".into(), 1, 8)]
        );
        assert_eq!(t.held(), 0);
    }
}
