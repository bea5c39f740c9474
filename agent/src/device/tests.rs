use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use super::*;

/// A device whose reads take `delay` and fail while `failing` is set.
struct Fake {
    delay: Duration,
    failing: Arc<std::sync::atomic::AtomicBool>,
    reads: Arc<AtomicU64>,
}

impl Device for Fake {
    async fn read(&mut self) -> Read {
        self.reads.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(self.delay).await;
        let point = Reading::new(
            "test",
            "d",
            "t",
            "temperature_celsius",
            Some(21.0),
            ReadingState::Ok,
        );
        if self.failing.load(Ordering::SeqCst) {
            let e = DeviceError::new("refused", "connection refused");
            Read::failed(self.unread(&e), e)
        } else {
            Read::ok(vec![point].into())
        }
    }

    fn unread(&self, _: &DeviceError) -> Polled {
        vec![Reading::new(
            "test",
            "d",
            "t",
            "temperature_celsius",
            None,
            ReadingState::Unknown,
        )]
        .into()
    }

    fn counters(&self) -> Vec<(&'static str, f64)> {
        vec![("fake_reads", self.reads.load(Ordering::SeqCst) as f64)]
    }
}

struct Handles {
    failing: Arc<std::sync::atomic::AtomicBool>,
    reads: Arc<AtomicU64>,
}

fn fake(delay_ms: u64, failing: bool) -> (Fake, Handles) {
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(failing));
    let reads = Arc::new(AtomicU64::new(0));
    (
        Fake {
            delay: Duration::from_millis(delay_ms),
            failing: Arc::clone(&failing),
            reads: Arc::clone(&reads),
        },
        Handles { failing, reads },
    )
}

fn settings(interval: Option<u64>, timeout_ms: u64, backoff: bool) -> Settings {
    Settings {
        interval: interval.map(Duration::from_secs),
        timeout: Duration::from_millis(timeout_ms),
        backoff_max: backoff.then(|| Duration::from_secs(60)),
    }
}

fn health<'a>(polled: &'a Polled, dev: &str, q: &str) -> &'a Reading {
    polled
        .readings
        .iter()
        .find(|r| r.src == "agent" && r.dev == dev && r.q == q)
        .unwrap_or_else(|| panic!("no {q} for {dev}: {:#?}", polled.readings))
}

#[tokio::test(start_paused = true)]
async fn a_hung_device_times_out_without_delaying_another() {
    let mut fleet = Fleet::new("test");
    let (hung, _h) = fake(3_600_000, false);
    let (quick, _q) = fake(10, false);
    fleet.add("hung", hung, settings(None, 1000, false));
    fleet.add("quick", quick, settings(None, 1000, false));
    let started = Instant::now();
    let (polled, outcomes) = fleet.poll().await;
    // The poll lasts the hung device's timeout, not its read.
    assert_eq!(started.elapsed(), Duration::from_millis(1000));
    let hung_up = health(&polled, "test/hung", "agent_poll_success");
    assert_eq!(hung_up.value, Some(0.0));
    assert_eq!(hung_up.labels["error"], "timeout");
    assert_eq!(
        health(&polled, "test/hung", "agent_poll_timeouts_total").value,
        Some(1.0)
    );
    assert_eq!(
        health(&polled, "test/quick", "agent_poll_success").value,
        Some(1.0)
    );
    assert!(
        !health(&polled, "test/quick", "agent_poll_success")
            .labels
            .contains_key("error")
    );
    assert_eq!(
        health(&polled, "test/quick", "agent_poll_duration_seconds").value,
        Some(0.01)
    );
    // The hung device's points are reported unknown; the quick one's read.
    let points: Vec<_> = polled.readings.iter().filter(|r| r.src == "test").collect();
    assert_eq!(points.len(), 2);
    assert!(points.iter().any(|r| r.value.is_none()));
    assert!(points.iter().any(|r| r.value == Some(21.0)));
    assert_eq!(outcomes.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_device_is_read_when_its_interval_comes_round() {
    let mut fleet = Fleet::new("test");
    let (d, h) = fake(1, false);
    fleet.add("d", d, settings(Some(5), 1000, false));
    assert!(!fleet.poll().await.0.readings.is_empty());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(fleet.poll().await.0.readings.is_empty(), "not due yet");
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(!fleet.poll().await.0.readings.is_empty());
    assert_eq!(h.reads.load(Ordering::SeqCst), 2);
    // A hurried device is read at once.
    assert!(fleet.hurry("d"));
    assert!(!fleet.poll().await.0.readings.is_empty());
    assert_eq!(h.reads.load(Ordering::SeqCst), 3);
    assert!(!fleet.hurry("nope"));
}

#[tokio::test(start_paused = true)]
async fn a_dead_device_is_backed_off_and_reported_unknown_until_it_answers() {
    let mut fleet = Fleet::new("test");
    let (d, h) = fake(1, true);
    fleet.add("d", d, settings(Some(1), 500, true));
    let mut reported = 0;
    let mut last = Polled::default();
    for _ in 0..40 {
        let p = fleet.poll().await.0;
        if !p.readings.is_empty() {
            reported += 1;
            let up = health(&p, "test/d", "agent_poll_success");
            assert_eq!(
                (up.value, up.labels["error"].as_str()),
                (Some(0.0), "refused")
            );
            assert_eq!(up.state, ReadingState::Warning);
            let point = p.readings.iter().find(|r| r.src == "test");
            assert!(point.is_some_and(|p| p.value.is_none()), "{p:#?}");
            last = p;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    let reads = h.reads.load(Ordering::SeqCst);
    // Read at most every interval, and far less once backing off.
    assert!(reads >= BACKOFF_AFTER, "{reads}");
    assert!(reads < 20, "not backed off: {reads} reads in 40 intervals");
    // Every interval is reported (unknown), read or skipped.
    assert_eq!(reported, 40);
    assert_eq!(
        health(&last, "test/d", "agent_poll_errors_total").value,
        Some(reads as f64)
    );
    assert_eq!(
        health(&last, "test/d", "fake_reads").value,
        Some(reads as f64)
    );
    // It comes back: within the backoff bound it is read again and is up.
    h.failing.store(false, Ordering::SeqCst);
    let mut back = false;
    for _ in 0..70 {
        let p = fleet.poll().await.0;
        if p.readings
            .iter()
            .any(|r| r.q == "agent_poll_success" && r.value == Some(1.0))
        {
            back = true;
            break;
        }
        tokio::time::advance(Duration::from_secs(1)).await;
    }
    assert!(back, "never read again after the device recovered");
}

#[test]
fn errors_are_logged_on_change_again_after_a_while_and_on_recovery() {
    let t0 = Instant::now();
    let mut log = ErrorLog::default();
    assert_eq!(log.observe(None, t0), LogAction::Quiet);
    assert_eq!(
        log.observe(Some("timeout"), t0),
        LogAction::Failing { failures: 1 }
    );
    assert_eq!(
        log.observe(Some("timeout"), t0 + Duration::from_secs(5)),
        LogAction::Quiet
    );
    assert_eq!(
        log.observe(Some("auth"), t0 + Duration::from_secs(10)),
        LogAction::Failing { failures: 3 }
    );
    assert_eq!(
        log.observe(Some("auth"), t0 + Duration::from_secs(15)),
        LogAction::Quiet
    );
    assert_eq!(
        log.observe(
            Some("auth"),
            t0 + Duration::from_secs(10) + REPEAT_LOG_EVERY
        ),
        LogAction::Failing { failures: 5 }
    );
    assert_eq!(
        log.observe(None, t0 + REPEAT_LOG_EVERY * 2),
        LogAction::Recovered { failures: 5 }
    );
    assert_eq!(
        log.observe(None, t0 + REPEAT_LOG_EVERY * 2),
        LogAction::Quiet
    );
}
