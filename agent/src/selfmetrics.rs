//! The agent measuring itself: readings with `src = "agent"` and `dev` the thing
//! measured (a source's name, `buffer`, `mqtt`), sent every heartbeat.

use std::{collections::BTreeMap, time::Duration};

use sitewatch_protocol::{Reading, ReadingState};

use crate::{buffer, source::SourceError};

/// The `src` of the agent's own readings.
pub const SRC: &str = "agent";

/// Every self-metric quantity, in one place.
pub mod q {
    /// Duration of the source's last poll (`dev` = source).
    pub const POLL_DURATION_SECONDS: &str = "poll_duration_seconds";
    /// 1 when the source's last poll succeeded, 0 when it failed or timed out.
    pub const POLL_SUCCESS: &str = "poll_success";
    /// Polls of the source since start.
    pub const POLLS: &str = "polls";
    /// Failed polls of the source since start, timeouts excluded.
    pub const POLL_ERRORS: &str = "poll_errors";
    /// Polls of the source that hit their timeout since start.
    pub const POLL_TIMEOUTS: &str = "poll_timeouts";
    /// Readings acknowledged by the broker since start (`dev` = `mqtt`).
    pub const READINGS_PUBLISHED: &str = "readings_published";
    /// Readings messages acknowledged by the broker since start.
    pub const MESSAGES_PUBLISHED: &str = "messages_published";
    /// Connections established after the first one (`dev` = `mqtt`).
    pub const MQTT_RECONNECTS: &str = "mqtt_reconnects";
    /// Failed connection attempts and lost connections since start.
    pub const MQTT_CONNECTION_ERRORS: &str = "mqtt_connection_errors";
    /// Messages waiting in the store-and-forward buffer (`dev` = `buffer`).
    pub const BUFFER_MESSAGES: &str = "buffer_messages";
    /// Bytes waiting in the buffer.
    pub const BUFFER_BYTES: &str = "buffer_bytes";
    /// Messages dropped because the buffer was full, since start.
    pub const BUFFER_DROPPED_MESSAGES: &str = "buffer_dropped_messages";
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
    connects: u64,
    connection_errors: u64,
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

    /// A CONNACK arrived.
    pub fn record_connect(&mut self) {
        self.connects += 1;
    }

    /// A connection attempt failed or a connection was lost.
    pub fn record_connection_error(&mut self) {
        self.connection_errors += 1;
    }

    /// The current values as readings.
    pub fn readings(&self, buffer: &buffer::Stats) -> Vec<Reading> {
        let reading = |dev: &str, q: &'static str, value: f64| {
            Reading::new(SRC, dev, q, q, Some(value), ReadingState::Ok)
        };
        let mut out = Vec::new();
        for (source, s) in &self.sources {
            out.push(reading(
                source,
                q::POLL_DURATION_SECONDS,
                s.last_duration.as_secs_f64(),
            ));
            out.push(reading(
                source,
                q::POLL_SUCCESS,
                if s.last_success { 1.0 } else { 0.0 },
            ));
            out.push(reading(source, q::POLLS, s.polls as f64));
            out.push(reading(source, q::POLL_ERRORS, s.errors as f64));
            out.push(reading(source, q::POLL_TIMEOUTS, s.timeouts as f64));
        }
        out.push(reading(
            "mqtt",
            q::READINGS_PUBLISHED,
            buffer.published_readings as f64,
        ));
        out.push(reading(
            "mqtt",
            q::MESSAGES_PUBLISHED,
            buffer.published_messages as f64,
        ));
        out.push(reading(
            "mqtt",
            q::MQTT_RECONNECTS,
            self.connects.saturating_sub(1) as f64,
        ));
        out.push(reading(
            "mqtt",
            q::MQTT_CONNECTION_ERRORS,
            self.connection_errors as f64,
        ));
        out.push(reading(
            "buffer",
            q::BUFFER_MESSAGES,
            buffer.messages as f64,
        ));
        out.push(reading("buffer", q::BUFFER_BYTES, buffer.bytes as f64));
        out.push(reading(
            "buffer",
            q::BUFFER_DROPPED_MESSAGES,
            buffer.dropped_messages as f64,
        ));
        out
    }
}

#[cfg(test)]
mod tests {
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
        let r = m.readings(&buffer::Stats::default());
        assert!(r.iter().all(|r| r.src == "agent"));
        assert_eq!(value(&r, "host", q::POLL_SUCCESS), Some(0.0));
        assert_eq!(value(&r, "host", q::POLL_DURATION_SECONDS), Some(0.005));
        assert_eq!(value(&r, "host", q::POLLS), Some(3.0));
        assert_eq!(value(&r, "host", q::POLL_TIMEOUTS), Some(1.0));
        assert_eq!(value(&r, "host", q::POLL_ERRORS), Some(1.0));
    }

    #[test]
    fn buffer_and_connection_counters_are_reported() {
        let mut m = SelfMetrics::default();
        m.record_connect();
        m.record_connection_error();
        m.record_connect();
        let stats = buffer::Stats {
            messages: 4,
            bytes: 400,
            dropped_messages: 2,
            published_readings: 30,
            ..Default::default()
        };
        let r = m.readings(&stats);
        assert_eq!(value(&r, "mqtt", q::MQTT_RECONNECTS), Some(1.0));
        assert_eq!(value(&r, "mqtt", q::MQTT_CONNECTION_ERRORS), Some(1.0));
        assert_eq!(value(&r, "mqtt", q::READINGS_PUBLISHED), Some(30.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_MESSAGES), Some(4.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_BYTES), Some(400.0));
        assert_eq!(value(&r, "buffer", q::BUFFER_DROPPED_MESSAGES), Some(2.0));
    }
}
