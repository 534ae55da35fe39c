//! Which consumer groups have read a record: asked of the cluster when an operator traces a
//! message. Every hub egress route and every domain app commits its offsets to Kafka, so a
//! group whose committed offset on the record's partition is past the record has finished it.
//! [`app_groups`] uses the same probes to list the groups that are not the hub's own (domain
//! apps) with their committed offsets and lag, for the console's flow picture.

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
        let lister = probe_client(&section)?;
        let names = list_groups(&lister, left())?;
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
        let (answers, groups_checked) = probe_groups(&section, names, &tpl, deadline);
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

/// The client the probes list groups, topics and watermarks with; it joins no group.
fn probe_client(section: &BusSection) -> Result<BaseConsumer, BusError> {
    consumer_config(section, "hub-trace-probe")
        .create()
        .map_err(BusError::Config)
}

/// The cluster's consumer groups (Kafka consumer protocol), sorted, without duplicates.
fn list_groups(lister: &BaseConsumer, timeout: Duration) -> Result<Vec<String>, BusError> {
    let list = lister
        .fetch_group_list(None, timeout)
        .map_err(|e| BusError::Unreachable(format!("listing consumer groups: {e}")))?;
    let mut names: Vec<String> = list
        .groups()
        .iter()
        .filter(|g| g.protocol_type() == "consumer" || g.protocol_type().is_empty())
        .map(|g| g.name().to_string())
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Each group's committed offsets on the partitions of `tpl`, asked [`PARALLEL_PROBES`] at a
/// time until `deadline`; sorted by group, with how many groups were asked.
#[allow(clippy::type_complexity)]
fn probe_groups(
    section: &BusSection,
    names: Vec<String>,
    tpl: &TopicPartitionList,
    deadline: Instant,
) -> (Vec<(String, BTreeMap<(String, i32), i64>)>, usize) {
    let left = || deadline.saturating_duration_since(Instant::now());
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
                let committed = committed(section, &name, tpl, remaining);
                let mut f = found.lock().expect("not poisoned");
                f.1 += 1;
                f.0.push((name, committed));
            });
        }
    });
    let (mut answers, checked) = found.into_inner().expect("not poisoned");
    answers.sort();
    (answers, checked)
}

/// Consumer groups the hub uses for itself (probes that never join; listed only if a broker
/// reports them anyway).
pub const HUB_INTERNAL_GROUPS: &[&str] = &["hub-trace-probe", "hub-fetch-one"];

/// A group's position on one topic, summed over the partitions it committed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppTopic {
    pub topic: String,
    /// Partitions of the topic the group has a committed offset on.
    pub partitions: usize,
    /// The sum of its committed offsets (the next records it will read).
    pub committed: i64,
    /// The sum of those partitions' high watermarks; `None` when not all were answered in time.
    pub high_watermark: Option<i64>,
    /// Records written but not yet committed by the group, over those partitions (see
    /// [`partition_lag`]); `None` with `high_watermark`.
    pub lag: Option<i64>,
}

/// A consumer group that is not the hub's own, with the topics it committed offsets on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppGroup {
    pub group: String,
    pub topics: Vec<AppTopic>,
}

/// What [`app_groups`] found.
#[derive(Debug, Clone, Default)]
pub struct AppGroups {
    /// Groups with committed offsets on at least one topic, by name.
    pub groups: Vec<AppGroup>,
    /// Groups the cluster listed, the hub's own included.
    pub groups_listed: usize,
    /// Groups not the hub's own that were left out by `max_groups`.
    pub groups_skipped: usize,
    /// Groups whose offsets were asked before the budget ran out.
    pub groups_checked: usize,
}

/// The records of a partition a group has not finished: the high watermark minus the group's
/// committed offset, where a committed offset below the low watermark (records deleted by
/// retention) counts from the low watermark.
pub fn partition_lag(committed: i64, low: i64, high: i64) -> i64 {
    (high - committed.max(low)).max(0)
}

/// Whether `group` is one of the hub's own: an egress route's (`<egress_prefix>.<partner>.<delivery>`)
/// or an internal probe's.
pub fn is_hub_group(group: &str, egress_prefix: &str) -> bool {
    HUB_INTERNAL_GROUPS.contains(&group)
        || (!egress_prefix.is_empty()
            && (group == egress_prefix
                || group
                    .strip_prefix(egress_prefix)
                    .is_some_and(|rest| rest.starts_with('.'))))
}

/// The cluster's consumer groups that are not the hub's own (see [`is_hub_group`]), at most
/// `max_groups` of them by name, each with its committed offsets and the high watermarks of
/// the topics it committed on (so its lag), within `budget` in total. Domain apps appear here
/// once they commit offsets to Kafka. Topics whose names start with `__` are not asked about.
/// Never commits: the probing clients join no group.
pub async fn app_groups(
    section: &BusSection,
    egress_prefix: &str,
    max_groups: usize,
    budget: Duration,
) -> Result<AppGroups, BusError> {
    /// At most this many partitions are asked about per group.
    const MAX_PARTITIONS: usize = 5_000;
    let section = section.clone();
    let egress_prefix = egress_prefix.to_string();
    tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + budget;
        let left = || deadline.saturating_duration_since(Instant::now());
        let lister = probe_client(&section)?;
        let names = list_groups(&lister, left())?;
        let groups_listed = names.len();
        let mut names: Vec<String> = names
            .into_iter()
            .filter(|g| !is_hub_group(g, &egress_prefix))
            .collect();
        let groups_skipped = names.len().saturating_sub(max_groups);
        names.truncate(max_groups);
        if names.is_empty() {
            return Ok(AppGroups {
                groups_listed,
                groups_skipped,
                ..Default::default()
            });
        }
        let metadata = lister
            .fetch_metadata(None, left())
            .map_err(|e| BusError::Unreachable(format!("listing topics: {e}")))?;
        let mut tpl = TopicPartitionList::new();
        for t in metadata.topics() {
            if t.name().starts_with("__") {
                continue;
            }
            for p in t.partitions() {
                if tpl.count() < MAX_PARTITIONS {
                    tpl.add_partition(t.name(), p.id());
                }
            }
        }
        let (answers, groups_checked) = probe_groups(&section, names, &tpl, deadline);
        // Watermarks once per partition any group committed on.
        let mut marks: BTreeMap<(String, i32), Option<(i64, i64)>> = BTreeMap::new();
        for (_, committed) in &answers {
            for key in committed.keys() {
                marks.entry(key.clone()).or_insert(None);
            }
        }
        for ((topic, partition), mark) in marks.iter_mut() {
            let remaining = left();
            if remaining.is_zero() {
                break;
            }
            *mark = lister.fetch_watermarks(topic, *partition, remaining).ok();
        }
        let groups = answers
            .into_iter()
            .filter(|(_, committed)| !committed.is_empty())
            .map(|(group, committed)| {
                let mut topics: BTreeMap<String, AppTopic> = BTreeMap::new();
                for ((topic, partition), offset) in committed {
                    let mark = marks.get(&(topic.clone(), partition)).copied().flatten();
                    let t = topics.entry(topic.clone()).or_insert(AppTopic {
                        topic,
                        partitions: 0,
                        committed: 0,
                        high_watermark: Some(0),
                        lag: Some(0),
                    });
                    t.partitions += 1;
                    t.committed += offset;
                    match mark {
                        Some((low, high)) => {
                            t.high_watermark = t.high_watermark.map(|h| h + high);
                            t.lag = t.lag.map(|l| l + partition_lag(offset, low, high));
                        }
                        None => {
                            t.high_watermark = None;
                            t.lag = None;
                        }
                    }
                }
                AppGroup {
                    group,
                    topics: topics.into_values().collect(),
                }
            })
            .collect();
        Ok(AppGroups {
            groups,
            groups_listed,
            groups_skipped,
            groups_checked,
        })
    })
    .await
    .map_err(|e| BusError::Unreachable(format!("group probe task failed: {e}")))?
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_from_the_committed_offset_or_the_low_watermark() {
        assert_eq!(partition_lag(7, 0, 10), 3);
        assert_eq!(partition_lag(10, 0, 10), 0);
        // Records deleted by retention are not owed.
        assert_eq!(partition_lag(2, 5, 10), 5);
        // A watermark read before the commit landed never gives a negative lag.
        assert_eq!(partition_lag(12, 0, 10), 0);
    }

    #[test]
    fn the_hubs_own_groups_are_recognised() {
        assert!(is_hub_group("hub-egress.hotline12345.sign", "hub-egress"));
        assert!(is_hub_group("hub-egress", "hub-egress"));
        assert!(is_hub_group("hub-trace-probe", "hub-egress"));
        assert!(!is_hub_group("hub-egressive.x", "hub-egress"));
        assert!(!is_hub_group("hotline-app", "hub-egress"));
        assert!(!is_hub_group("hotline-app", ""));
    }
}
