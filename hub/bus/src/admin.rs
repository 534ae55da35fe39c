//! Topic administration: topics are created from declarations, never by the broker on first use.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::util::Timeout;

use crate::client_config::producer_config;
use crate::{BusError, BusSection};

/// A topic as the contracts declare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    /// Topic-level configuration, e.g. `retention.ms`, `cleanup.policy`.
    pub config: BTreeMap<String, String>,
}

/// What [`TopicAdmin::ensure`] found or did for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicOutcome {
    /// It did not exist and was created as declared.
    Created,
    /// It existed with the declared partition count.
    Exists,
    /// It existed with another partition count. Never changed automatically: adding partitions
    /// moves keys between partitions and breaks per-key order, so it is an operator's decision.
    PartitionsDiffer { declared: i32, actual: i32 },
}

/// Lists and creates topics.
pub struct TopicAdmin {
    admin: Arc<AdminClient<DefaultClientContext>>,
    replication: i32,
    timeout: Duration,
}

impl TopicAdmin {
    pub fn new(section: &BusSection, timeout: Duration) -> Result<Self, BusError> {
        let admin: AdminClient<DefaultClientContext> = producer_config(section)
            .create()
            .map_err(BusError::Config)?;
        Ok(Self {
            admin: Arc::new(admin),
            replication: i32::from(section.replication_factor),
            timeout,
        })
    }

    /// Every topic on the cluster with its partition count.
    pub async fn existing(&self) -> Result<BTreeMap<String, i32>, BusError> {
        let admin = Arc::clone(&self.admin);
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || {
            let md = admin
                .inner()
                .fetch_metadata(None, Timeout::After(timeout))
                .map_err(|e| BusError::Unreachable(e.to_string()))?;
            Ok(md
                .topics()
                .iter()
                .filter(|t| t.error().is_none())
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect())
        })
        .await
        .map_err(|e| BusError::Admin(format!("metadata task failed: {e}")))?
    }

    /// Creates the declared topics that do not exist and reports on every one. Safe to run
    /// from several hub replicas at once: "already exists" counts as success.
    pub async fn ensure(
        &self,
        specs: &[TopicSpec],
    ) -> Result<Vec<(String, TopicOutcome)>, BusError> {
        let existing = self.existing().await?;
        let missing: Vec<&TopicSpec> = specs
            .iter()
            .filter(|s| !existing.contains_key(&s.name))
            .collect();
        let mut created = Vec::new();
        if !missing.is_empty() {
            let new_topics: Vec<NewTopic<'_>> = missing
                .iter()
                .map(|s| {
                    s.config.iter().fold(
                        NewTopic::new(
                            &s.name,
                            s.partitions,
                            TopicReplication::Fixed(self.replication),
                        ),
                        |t, (k, v)| t.set(k, v),
                    )
                })
                .collect();
            let opts = AdminOptions::new()
                .operation_timeout(Some(Timeout::After(self.timeout)))
                .request_timeout(Some(Timeout::After(self.timeout)));
            let results = self
                .admin
                .create_topics(new_topics.iter(), &opts)
                .await
                .map_err(|e| BusError::Admin(e.to_string()))?;
            for r in results {
                match r {
                    Ok(name) => created.push(name),
                    Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                    Err((name, code)) => {
                        return Err(BusError::Admin(format!("creating `{name}` failed: {code}")))
                    }
                }
            }
            self.wait_visible(&missing).await?;
        }
        let mut out = Vec::with_capacity(specs.len());
        for s in specs {
            let outcome = match existing.get(&s.name) {
                None if created.contains(&s.name) => TopicOutcome::Created,
                None => TopicOutcome::Exists,
                Some(&actual) if actual == s.partitions => TopicOutcome::Exists,
                Some(&actual) => TopicOutcome::PartitionsDiffer {
                    declared: s.partitions,
                    actual,
                },
            };
            out.push((s.name.clone(), outcome));
        }
        Ok(out)
    }

    /// Topic creation is asynchronous on a Kafka cluster: wait until the metadata shows every
    /// new topic with all its partitions, so the first produce does not race the controller.
    async fn wait_visible(&self, specs: &[&TopicSpec]) -> Result<(), BusError> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let existing = self.existing().await?;
            let pending: Vec<&str> = specs
                .iter()
                .filter(|s| existing.get(&s.name) != Some(&s.partitions))
                .map(|s| s.name.as_str())
                .collect();
            if pending.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(BusError::Admin(format!(
                    "created topics are not visible in the metadata after {:?}: {}",
                    self.timeout,
                    pending.join(", ")
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
