//! The latest readings of every device that has NUT variables: a small shared
//! view the publisher keeps up to date as polls come in, and the upsd facade
//! ([`crate::nutd`]) reads, so that the facade serves what the agent already
//! read over Modbus, SNMP or NUT rather than reading devices again.
//!
//! Only readings with a `nut` label are kept (a few dozen per UPS), and each
//! device's set is replaced whole by its next poll's, with the time it came.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
};

use sitewatch_protocol::Reading;
use tokio::time::Instant;

/// The label that marks a reading for the view.
pub const NUT_LABEL: &str = "nut";

/// One device's latest readings.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceView {
    pub src: String,
    pub dev: String,
    pub readings: Vec<Reading>,
    /// When they came (tokio's clock).
    pub at: Instant,
}

/// The view: `(src, dev) -> DeviceView`.
#[derive(Debug, Default)]
pub struct Latest {
    devices: Mutex<BTreeMap<(String, String), DeviceView>>,
}

impl Latest {
    pub fn new() -> Arc<Self> {
        Arc::new(Latest::default())
    }

    /// Takes one poll's readings: every device among them with a `nut`
    /// reading gets these as its latest.
    pub fn update(&self, readings: &[Reading]) {
        let now = Instant::now();
        let mut fresh: BTreeMap<(String, String), Vec<Reading>> = BTreeMap::new();
        for r in readings.iter().filter(|r| r.labels.contains_key(NUT_LABEL)) {
            fresh
                .entry((r.src.clone(), r.dev.clone()))
                .or_default()
                .push(r.clone());
        }
        if fresh.is_empty() {
            return;
        }
        let Ok(mut devices) = self.devices.lock() else {
            return;
        };
        for ((src, dev), readings) in fresh {
            devices.insert(
                (src.clone(), dev.clone()),
                DeviceView {
                    src,
                    dev,
                    readings,
                    at: now,
                },
            );
        }
    }

    /// Every device, in `(src, dev)` order.
    pub fn snapshot(&self) -> Vec<DeviceView> {
        self.devices
            .lock()
            .map(|d| d.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sitewatch_protocol::ReadingState;

    fn r(dev: &str, name: &str, nut: Option<&str>, v: f64) -> Reading {
        let r = Reading::new(
            "modbus",
            dev,
            name,
            "ups_on_battery",
            Some(v),
            ReadingState::Ok,
        );
        match nut {
            Some(n) => r.with_label(NUT_LABEL, n),
            None => r,
        }
    }

    #[test]
    fn keeps_only_nut_readings_and_replaces_a_device_whole() {
        let view = Latest::default();
        view.update(&[
            r("ups-a", "on_battery", Some("ups.status:OB"), 0.0),
            r("ups-a", "fault", None, 0.0),
            r("crac", "t", None, 1.0),
        ]);
        let s = view.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].readings.len(), 1);
        view.update(&[r("ups-a", "on_battery", Some("ups.status:OB"), 1.0)]);
        assert_eq!(view.snapshot()[0].readings[0].value, Some(1.0));
        // A poll of another source leaves the device alone.
        view.update(&[r("crac", "t", None, 2.0)]);
        assert_eq!(view.snapshot().len(), 1);
    }
}
