//! The agent measuring itself: readings with `src = "agent"` and `dev` the thing
//! measured (a source's name, `buffer`, `mqtt`), sent every heartbeat. The
//! `mqtt` readings carry a `broker` label: one set per broker.

use std::{collections::BTreeMap, time::Duration};

use sitewatch_protocol::{Reading, ReadingState};

use crate::{
    buffer::{queue::DeliveryStats, store::StoreStats},
    source::SourceError,
};

/// The `src` of the agent's own readings.
pub const SRC: &str = sitewatch_protocol::quantity::SELF_SRC;

/// The label naming the broker of an `mqtt` reading.
pub const BROKER_LABEL: &str = "broker";

/// Every self-metric quantity, in one place: the agent's own, the device
/// layer's health readings and the sources' counters about their own work.
///
/// They are `agent_<what>` ([`sitewatch_protocol::quantity::is_reserved`]
/// lets `src = "agent"` use the prefix), exposed by the collector as
/// `sitewatch_agent_<what>`; counters end in `_total`, gauges do not.
pub mod q {
    /// Duration of the source's (or device's) last poll (`dev` = source).
    pub const POLL_DURATION_SECONDS: &str = "agent_poll_duration_seconds";
    /// 1 when the source's last poll succeeded, 0 when it failed or timed out.
    pub const POLL_SUCCESS: &str = "agent_poll_success";
    /// Polls of the source since start.
    pub const POLLS: &str = "agent_polls_total";
    /// Failed polls of the source since start, timeouts excluded.
    pub const POLL_ERRORS: &str = "agent_poll_errors_total";
    /// Polls of the source that hit their timeout since start.
    pub const POLL_TIMEOUTS: &str = "agent_poll_timeouts_total";
    /// Readings acknowledged by the broker since start (`dev` = `mqtt`, per broker).
    pub const READINGS_PUBLISHED: &str = "agent_readings_published_total";
    /// Messages acknowledged by the broker since start.
    pub const MESSAGES_PUBLISHED: &str = "agent_messages_published_total";
    /// Connections established after the first one.
    pub const MQTT_RECONNECTS: &str = "agent_mqtt_reconnects_total";
    /// Failed connection attempts and lost connections since start.
    pub const MQTT_CONNECTION_ERRORS: &str = "agent_mqtt_connection_errors_total";
    /// 1 while connected to the broker.
    pub const MQTT_CONNECTED: &str = "agent_mqtt_connected";
    /// Messages the broker still has to acknowledge (its backlog).
    pub const MQTT_BACKLOG_MESSAGES: &str = "agent_mqtt_backlog_messages";
    /// Bytes of that backlog.
    pub const MQTT_BACKLOG_BYTES: &str = "agent_mqtt_backlog_bytes";
    /// Messages dropped from the buffer (full) before this broker had them.
    pub const MQTT_DROPPED_MESSAGES: &str = "agent_mqtt_dropped_messages_total";
    /// Messages waiting in the store-and-forward buffer for some broker (`dev` = `buffer`).
    pub const BUFFER_MESSAGES: &str = "agent_buffer_messages";
    /// Bytes held by the buffer: its disk files and what it keeps in memory.
    pub const BUFFER_BYTES: &str = "agent_buffer_bytes";
    /// Messages dropped because the buffer was full, since start.
    pub const BUFFER_DROPPED_MESSAGES: &str = "agent_buffer_dropped_messages_total";
    /// 1 while new messages go to the disk buffer, 0 in memory (by
    /// configuration, or fallen back after a disk error).
    pub const BUFFER_ON_DISK: &str = "agent_buffer_on_disk";
    /// Disk buffer writes, reads and fsyncs that failed since start.
    pub const BUFFER_DISK_ERRORS: &str = "agent_buffer_disk_errors_total";
    /// Messages the disk buffer held at start, due to some broker.
    pub const BUFFER_RECOVERED_MESSAGES: &str = "agent_buffer_recovered_messages_total";
    /// Segments whose torn or corrupt tail was cut off at start.
    pub const BUFFER_TRUNCATED_SEGMENTS: &str = "agent_buffer_truncated_segments_total";
    /// Duration of the last fsync of the disk buffer.
    pub const BUFFER_FSYNC_SECONDS: &str = "agent_buffer_fsync_seconds";
    /// Source checkpoints (SEL cursors) that could not be written.
    pub const CHECKPOINT_ERRORS: &str = "agent_checkpoint_errors_total";

    /// Requests a Modbus device answered with an exception since start
    /// (`dev` = `modbus/<device>`).
    pub const MODBUS_EXCEPTIONS: &str = "agent_modbus_exceptions_total";

    /// Requests sent to an SNMP device since start (GET, GETBULK, GETNEXT).
    pub const SNMP_REQUESTS: &str = "agent_snmp_requests_total";
    /// Values of the wrong type (or unparsable) since start: each a failed
    /// read of that point only.
    pub const SNMP_MALFORMED_VALUES: &str = "agent_snmp_malformed_values_total";
    /// Times the device was switched from GETBULK to GETNEXT.
    pub const SNMP_BULK_FALLBACKS: &str = "agent_snmp_bulk_fallbacks_total";
    /// Traps and informs the receiver took in (`dev` = `snmp/traps`).
    pub const SNMP_TRAPS_RECEIVED: &str = "agent_snmp_traps_received_total";
    /// Notifications from an address that is no configured device.
    pub const SNMP_TRAPS_UNKNOWN_SENDER: &str = "agent_snmp_traps_unknown_sender_total";
    /// Undecodable notifications, wrong communities, USM failures.
    pub const SNMP_TRAPS_REJECTED: &str = "agent_snmp_traps_rejected_total";
    /// The same notification again within the dedup window.
    pub const SNMP_TRAPS_REPEATED: &str = "agent_snmp_traps_repeated_total";

    /// upsd answers that did not decode since start (a line cut short, an
    /// unknown `ERR`, a list that does not close; `dev` = `nut/<server>`).
    pub const NUT_MALFORMED_ANSWERS: &str = "agent_nut_malformed_answers_total";
    /// Mapped NUT variables whose value was no number, since start.
    pub const NUT_MALFORMED_VALUES: &str = "agent_nut_malformed_values_total";
    /// NUT variables skipped as unknown, since start.
    pub const NUT_UNKNOWN_VARIABLES: &str = "agent_nut_unknown_variables_total";
    /// `ERR` answers from upsd since start (wrong credentials, a stale UPS).
    pub const NUT_SERVER_ERRORS: &str = "agent_nut_server_errors_total";

    /// Duration of a BMC's last sensor sweep (`dev` = `ipmi/<bmc>`).
    pub const IPMI_SWEEP_DURATION_SECONDS: &str = "agent_ipmi_sweep_duration_seconds";
    /// Sensors the last SDR load found unreadable (other controllers,
    /// non-linear, LUNs other than 0): a gauge, it restarts at each load.
    pub const IPMI_SENSORS_SKIPPED: &str = "agent_ipmi_sensors_skipped";
    /// SDR records the last load could not use.
    pub const IPMI_CORRUPT_SDRS: &str = "agent_ipmi_corrupt_sdrs";
    /// Malformed answers from the BMC since start.
    pub const IPMI_MALFORMED_RESPONSES: &str = "agent_ipmi_malformed_responses_total";

    /// HTTP requests sent to a Redfish service since start (`dev` = `redfish/<endpoint>`).
    pub const REDFISH_REQUESTS: &str = "agent_redfish_requests_total";
    /// Requests that failed (no answer, an error status, a malformed body).
    pub const REDFISH_FAILED_REQUESTS: &str = "agent_redfish_failed_requests_total";
    /// Redfish sessions the agent created (one per endpoint, again after a 401).
    pub const REDFISH_SESSIONS_CREATED: &str = "agent_redfish_sessions_created_total";
    /// TCP (and TLS) connections opened to the service.
    pub const REDFISH_CONNECTIONS: &str = "agent_redfish_connections_total";
    /// Whether the endpoint's event stream (SSE) is open now (1/0).
    pub const REDFISH_SSE_OPEN: &str = "agent_redfish_sse_open";
    /// Event streams opened since start (a reconnect counts).
    pub const REDFISH_SSE_CONNECTS: &str = "agent_redfish_sse_connects_total";
    /// Redfish events received on the stream.
    pub const REDFISH_SSE_EVENTS: &str = "agent_redfish_sse_events_total";
    /// Streams dropped and reopened for silence.
    pub const REDFISH_SSE_SILENT_DROPS: &str = "agent_redfish_sse_silent_drops_total";
    /// Stream events dropped as malformed, by `reason`.
    pub const REDFISH_SSE_MALFORMED: &str = "agent_redfish_sse_malformed_total";
}

/// A self reading's `name` (the collector's `sensor` label): its quantity
/// without the `agent_` prefix and the `_total` suffix (`polls` for
/// `agent_polls_total`), so the label says what is counted, once.
pub fn name(q: &str) -> &str {
    let short = q
        .strip_prefix(sitewatch_protocol::quantity::SELF_PREFIX)
        .unwrap_or(q);
    sitewatch_protocol::quantity::counter_base(short).unwrap_or(short)
}

/// A self reading: `src = "agent"`, state ok.
pub fn reading(dev: impl Into<String>, q: &str, value: f64) -> Reading {
    Reading::new(SRC, dev, name(q), q, Some(value), ReadingState::Ok)
}

/// One broker's connection as the self-metrics report it.
#[derive(Debug, Clone, Copy)]
pub struct BrokerReport<'a> {
    pub name: &'a str,
    pub connected: bool,
    pub connects: u64,
    pub connection_errors: u64,
    pub delivery: DeliveryStats,
}

#[derive(Debug, Clone, Default)]
struct SourceStats {
    last_duration: Duration,
    last_success: bool,
    polls: u64,
    errors: u64,
    timeouts: u64,
}

/// Counters kept by the publisher.
#[derive(Debug, Clone, Default)]
pub struct SelfMetrics {
    sources: BTreeMap<&'static str, SourceStats>,
    checkpoint_errors: u64,
}

impl SelfMetrics {
    pub fn record_poll(
        &mut self,
        source: &'static str,
        duration: Duration,
        error: Option<&SourceError>,
    ) {
        let stats = self.sources.entry(source).or_default();
        stats.last_duration = duration;
        stats.last_success = error.is_none();
        stats.polls += 1;
        match error {
            None => {}
            Some(SourceError::Timeout(_)) => stats.timeouts += 1,
            Some(_) => stats.errors += 1,
        }
    }

    /// A checkpoint could not be written.
    pub fn record_checkpoint_error(&mut self) {
        self.checkpoint_errors += 1;
    }

    /// The current values as readings.
    pub fn readings(&self, store: &StoreStats, brokers: &[BrokerReport<'_>]) -> Vec<Reading> {
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        let mut out = Vec::new();
        for (&source, s) in &self.sources {
            out.push(reading(
                source,
                q::POLL_DURATION_SECONDS,
                s.last_duration.as_secs_f64(),
            ));
            out.push(reading(source, q::POLL_SUCCESS, flag(s.last_success)));
            out.push(reading(source, q::POLLS, s.polls as f64));
            out.push(reading(source, q::POLL_ERRORS, s.errors as f64));
            out.push(reading(source, q::POLL_TIMEOUTS, s.timeouts as f64));
        }
        for b in brokers {
            let d = &b.delivery;
            for (q, value) in [
                (q::READINGS_PUBLISHED, d.published_readings as f64),
                (q::MESSAGES_PUBLISHED, d.published_messages as f64),
                (q::MQTT_RECONNECTS, b.connects.saturating_sub(1) as f64),
                (q::MQTT_CONNECTION_ERRORS, b.connection_errors as f64),
                (q::MQTT_CONNECTED, flag(b.connected)),
                (q::MQTT_BACKLOG_MESSAGES, d.pending_messages as f64),
                (q::MQTT_BACKLOG_BYTES, d.pending_bytes as f64),
                (q::MQTT_DROPPED_MESSAGES, d.dropped_messages as f64),
            ] {
                out.push(reading("mqtt", q, value).with_label(BROKER_LABEL, b.name));
            }
        }
        for (q, value) in [
            (q::BUFFER_MESSAGES, store.queue.messages as f64),
            (q::BUFFER_BYTES, store.bytes as f64),
            (
                q::BUFFER_DROPPED_MESSAGES,
                store.queue.dropped_messages as f64,
            ),
            (q::BUFFER_ON_DISK, flag(store.on_disk)),
            (q::BUFFER_DISK_ERRORS, store.disk_errors as f64),
            (
                q::BUFFER_RECOVERED_MESSAGES,
                store.recovered_messages as f64,
            ),
            (
                q::BUFFER_TRUNCATED_SEGMENTS,
                store.truncated_segments as f64,
            ),
            (q::BUFFER_FSYNC_SECONDS, store.last_fsync.as_secs_f64()),
            (q::CHECKPOINT_ERRORS, self.checkpoint_errors as f64),
        ] {
            out.push(reading("buffer", q, value));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn value(readings: &[Reading], dev: &str, q: &str) -> Option<f64> {
        readings
            .iter()
            .find(|r| r.dev == dev && r.q == q)
            .and_then(|r| r.value)
    }

    #[test]
    fn polls_are_counted_per_source_and_outcome() {
        let mut m = SelfMetrics::default();
        m.record_poll("host", Duration::from_millis(20), None);
        m.record_poll(
            "host",
            Duration::from_secs(3),
            Some(&SourceError::Timeout(Duration::from_secs(3))),
        );
        m.record_poll("host", Duration::from_millis(5), Some(&SourceError::Busy));
        let r = m.readings(&StoreStats::default(), &[]);
        assert!(r.iter().all(|r| r.src == "agent"));
        assert_eq!(value(&r, "host", q::POLL_SUCCESS), Some(0.0));
        assert_eq!(value(&r, "host", q::POLL_DURATION_SECONDS), Some(0.005));
        assert_eq!(value(&r, "host", q::POLLS), Some(3.0));
        assert_eq!(value(&r, "host", q::POLL_TIMEOUTS), Some(1.0));
        assert_eq!(value(&r, "host", q::POLL_ERRORS), Some(1.0));
    }

    #[test]
    fn self_readings_are_agent_quantities_with_counters_ending_in_total() {
        let mut m = SelfMetrics::default();
        m.record_poll("host", Duration::from_millis(20), None);
        let brokers = [BrokerReport {
            name: "bj1:1883",
            connected: true,
            connects: 1,
            connection_errors: 0,
            delivery: DeliveryStats::default(),
        }];
        let r = m.readings(&StoreStats::default(), &brokers);
        for x in &r {
            assert!(x.q.starts_with("agent_"), "{x:?}");
            assert!(
                !sitewatch_protocol::quantity::is_reserved(&x.src, &x.q),
                "{x:?}"
            );
        }
        let counters: BTreeSet<&str> = r
            .iter()
            .map(|x| x.q.as_str())
            .filter(|q| sitewatch_protocol::quantity::is_counter(q))
            .collect();
        for q in [
            q::POLLS,
            q::POLL_ERRORS,
            q::POLL_TIMEOUTS,
            q::READINGS_PUBLISHED,
            q::MESSAGES_PUBLISHED,
            q::MQTT_RECONNECTS,
            q::MQTT_CONNECTION_ERRORS,
            q::MQTT_DROPPED_MESSAGES,
            q::BUFFER_DROPPED_MESSAGES,
            q::BUFFER_DISK_ERRORS,
            q::CHECKPOINT_ERRORS,
        ] {
            assert!(counters.contains(q), "{q} is not a counter in {counters:?}");
        }
        for gauge in [
            q::POLL_SUCCESS,
            q::MQTT_CONNECTED,
            q::BUFFER_BYTES,
            q::BUFFER_ON_DISK,
        ] {
            assert!(!counters.contains(gauge), "{gauge}");
        }
    }

    #[test]
    fn a_self_reading_is_named_without_prefix_and_counter_suffix() {
        assert_eq!(name(q::POLLS), "polls");
        assert_eq!(name(q::BUFFER_BYTES), "buffer_bytes");
        let r = reading("modbus/ups-a", q::MODBUS_EXCEPTIONS, 3.0);
        assert_eq!(
            (r.src.as_str(), r.name.as_str()),
            ("agent", "modbus_exceptions")
        );
    }

    #[test]
    fn buffer_and_per_broker_counters_are_reported() {
        let m = SelfMetrics::default();
        let mut store = StoreStats::default();
        store.queue.messages = 4;
        store.queue.dropped_messages = 2;
        store.bytes = 400;
        store.on_disk = true;
        let brokers = [
            BrokerReport {
                name: "bj1:1883",
                connected: true,
                connects: 2,
                connection_errors: 1,
                delivery: DeliveryStats {
                    published_readings: 30,
                    pending_messages: 0,
                    ..DeliveryStats::default()
                },
            },
            BrokerReport {
                name: "sh1:1883",
                connected: false,
                connects: 0,
                connection_errors: 7,
                delivery: DeliveryStats {
                    pending_messages: 4,
                    dropped_messages: 2,
                    ..DeliveryStats::default()
                },
            },
        ];
        let r = m.readings(&store, &brokers);
        let of = |broker: &str, q: &str| {
            r.iter()
                .find(|x| {
                    x.dev == "mqtt"
                        && x.q == q
                        && x.labels.get(BROKER_LABEL).map(String::as_str) == Some(broker)
                })
                .and_then(|x| x.value)
        };
        assert_eq!(of("bj1:1883", q::MQTT_RECONNECTS), Some(1.0));
        assert_eq!(of("bj1:1883", q::MQTT_CONNECTION_ERRORS), Some(1.0));
        assert_eq!(of("bj1:1883", q::READINGS_PUBLISHED), Some(30.0));
        assert_eq!(of("bj1:1883", q::MQTT_CONNECTED), Some(1.0));
        assert_eq!(of("sh1:1883", q::MQTT_CONNECTED), Some(0.0));
        assert_eq!(of("sh1:1883", q::MQTT_BACKLOG_MESSAGES), Some(4.0));
        assert_eq!(of("sh1:1883", q::MQTT_DROPPED_MESSAGES), Some(2.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_MESSAGES), Some(4.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_BYTES), Some(400.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_DROPPED_MESSAGES), Some(2.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_ON_DISK), Some(1.0));
        let valid = sitewatch_protocol::encode(&sitewatch_protocol::ReadingsPayload {
            v: 1,
            seq: 1,
            ts: 1,
            readings: r,
            boot: None,
            site: None,
            host: None,
        })
        .unwrap();
        assert!(sitewatch_protocol::decode("sitewatch/v1/bj1/web-01/readings", &valid).is_ok());
    }
}
