//! Which consumer groups have read a record: asked of the cluster when an operator traces a
//! message. Every hub egress route and every domain app commits its offsets to Kafka, so a
//! group whose committed offset on the record's partition is past the record has finished it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::client_config::consumer_config;
use crate::{BusError, BusSection};

/// A group that has committed past a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPosition {
    pub group: String,
    /// The group's committed offset on the partition: the next record it will read.
    pub committed: i64,
}

/// What [`consumed_by`] found.
#[derive(Debug, Clone, Default)]
pub struct ConsumedBy {
    /// For each record asked about, in the same order, the groups past it (by name).
    pub groups: Vec<Vec<GroupPosition>>,
    /// Groups the cluster listed.
    pub groups_listed: usize,
    /// Groups whose offsets were asked before `budget` ran out (all when equal to listed).
    pub groups_checked: usize,
}

/// For each record `(topic, partition, offset)`, the groups that committed past it. Lists the
/// cluster's groups once, then asks each group's committed offsets for the records'
/// partitions, within `budget` in total (a group not asked in time is left out and counted in
/// `groups_listed - groups_checked`). Never commits: the probing clients join no group.
pub async fn consumed_by(
    section: &BusSection,
    records: &[(String, i32, i64)],
    budget: Duration,
) -> Result<ConsumedBy, BusError> {
    let section = section.clone();
    let records = records.to_vec();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + budget;
        let left = || deadline.saturating_duration_since(Instant::now());
        let lister: BaseConsumer = consumer_config(&section, "hub-trace-probe")
            .create()
            .map_err(BusError::Config)?;
        let list = lister
            .fetch_group_list(None, left())
            .map_err(|e| BusError::Unreachable(format!("listing consumer groups: {e}")))?;
        let mut names: Vec<String> = list
            .groups()
            .iter()
            .filter(|g| g.protocol_type() == "consumer" || g.protocol_type().is_empty())
            .map(|g| g.name().to_string())
            .collect();
        names.sort();
        names.dedup();
        let groups_listed = names.len();
        if records.is_empty() {
            return Ok(ConsumedBy {
                groups: Vec::new(),
                groups_listed,
                groups_checked: 0,
            });
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, _) in &records {
            if tpl.find_partition(topic, *partition).is_none() {
                tpl.add_partition(topic, *partition);
            }
        }
        // A few probes at a time: each is a round trip to a group coordinator.
        let queue = std::sync::Mutex::new(names.into_iter());
        let found = std::sync::Mutex::new((Vec::new(), 0usize));
        std::thread::scope(|scope| {
            for _ in 0..PARALLEL_PROBES {
                scope.spawn(|| loop {
                    let remaining = left();
                    let next = queue.lock().expect("not poisoned").next();
                    let Some(name) = next.filter(|_| !remaining.is_zero()) else {
                        return;
                    };
                    let committed = committed(&section, &name, &tpl, remaining);
                    let mut f = found.lock().expect("not poisoned");
                    f.1 += 1;
                    f.0.push((name, committed));
                });
            }
        });
        let (mut answers, groups_checked) = found.into_inner().expect("not poisoned");
        answers.sort();
        let groups = records
            .iter()
            .map(|(topic, partition, offset)| {
                answers
                    .iter()
                    .filter_map(|(group, committed)| {
                        let o = committed.get(&(topic.clone(), *partition))?;
                        (*o > *offset).then(|| GroupPosition {
                            group: group.clone(),
                            committed: *o,
                        })
                    })
                    .collect()
            })
            .collect();
        Ok(ConsumedBy {
            groups,
            groups_listed,
            groups_checked,
        })
    })
    .await
    .map_err(|e| BusError::Unreachable(format!("group probe task failed: {e}")))?
}

/// How many groups are asked at once.
const PARALLEL_PROBES: usize = 8;

/// `group`'s committed offsets on the partitions of `tpl` (none when it has none or did not
/// answer in time).
fn committed(
    section: &BusSection,
    group: &str,
    tpl: &TopicPartitionList,
    timeout: Duration,
) -> BTreeMap<(String, i32), i64> {
    // OffsetFetch is asked for the client's own group.id, hence one client per group; it
    // never subscribes, so it does not join the group or disturb its members.
    let Ok(probe) = consumer_config(section, group).create::<BaseConsumer>() else {
        return BTreeMap::new();
    };
    let Ok(committed) = probe.committed_offsets(tpl.clone(), timeout) else {
        return BTreeMap::new();
    };
    committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect()
}
