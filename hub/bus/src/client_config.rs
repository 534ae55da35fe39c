//! librdkafka settings derived from the `[bus]` section.
//!
//! The properties that carry the delivery guarantees are set last, after the operator's
//! pass-through properties, so they always win (config validation refuses such overrides
//! up front; this is the second line).

use rdkafka::ClientConfig;

use hub_config::sections::BusSection;

fn base(section: &BusSection) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in &section.librdkafka {
        c.set(k, v);
    }
    c.set("bootstrap.servers", &section.bootstrap_servers)
        .set("client.id", &section.client_id)
        // Kafka's default (false) on every broker we target; topics come from declarations.
        .set("allow.auto.create.topics", "false");
    c
}

/// Settings of an idempotent, `acks=all` producer.
pub fn producer_config(section: &BusSection) -> ClientConfig {
    let mut c = base(section);
    c.set("compression.type", section.compression.as_str())
        .set("linger.ms", section.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            section.delivery_timeout_ms.to_string(),
        )
        .set("enable.idempotence", "true")
        .set("acks", "all")
        // Idempotence keeps order with up to 5 in flight per connection.
        .set("max.in.flight.requests.per.connection", "5");
    c
}

/// Settings of a consumer-group member that commits by hand after its work is done.
pub fn consumer_config(section: &BusSection, group_id: &str) -> ClientConfig {
    let mut c = base(section);
    c.set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", section.session_timeout_ms.to_string())
        // Heartbeats at a third of the session timeout, as Kafka recommends.
        .set(
            "heartbeat.interval.ms",
            (section.session_timeout_ms / 3).max(500).to_string(),
        )
        // Read only what producers committed, should a transactional producer ever write here.
        .set("isolation.level", "read_committed")
        // A subscribed topic that did not exist yet (a new contract's topic being created by
        // another replica) is looked for again within seconds, not librdkafka's 5 minutes.
        .set("topic.metadata.refresh.interval.ms", "5000");
    c
}
