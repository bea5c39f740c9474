//! The agent binary against a real mosquitto started on a free port: birth and
//! readings, the will on SIGKILL, the offline state on SIGTERM, and store and
//! forward across a broker outage.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sitewatch_protocol::{Body, OfflineReason, ReadingsPayload, StatePayload, Status, decode};
use tokio::sync::mpsc;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `ready` until it is true or the deadline passes.
fn wait_until(what: &str, timeout: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A mosquitto process with persistence, so that a subscriber's session and its
/// queued messages survive a stop and restart.
struct Broker {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        let mut broker = Broker {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        broker.restart();
        broker
    }

    fn restart(&mut self) {
        let conf = self.dir.join("mosquitto.conf");
        std::fs::write(
            &conf,
            format!(
                // `user root`: mosquitto started as root otherwise drops to the
                // `mosquitto` user, which cannot write its database into the
                // test's private tempdir (no effect when not started as root).
                "listener {} 127.0.0.1\nallow_anonymous true\nuser root\npersistence true\npersistence_location {}/\n",
                self.port,
                self.dir.display()
            ),
        )
        .unwrap();
        let log = std::fs::File::create(self.dir.join("mosquitto.log")).unwrap();
        self.child = Some(
            Command::new(MOSQUITTO)
                .arg("-c")
                .arg(&conf)
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("mosquitto is installed"),
        );
        let port = self.port;
        wait_until("mosquitto to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// SIGTERM, so that mosquitto saves its sessions, and wait for it to exit.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(&child, "TERM");
            child.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// The agent binary with a config written for the test.
struct Agent {
    child: Option<Child>,
    stderr: PathBuf,
}

impl Agent {
    fn start(dir: &Path, broker: &Broker, keepalive_s: u64) -> Agent {
        let config = dir.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                r#"site = "bj1"
host = "web-01"
heartbeat = "1s"
[labels]
room = "a1"
[mqtt]
url = "{}"
keepalive = "{keepalive_s}s"
reconnect_min = "100ms"
reconnect_max = "500ms"
[sources.host]
interval = "500ms"
timeout = "2s"
"#,
                broker.url()
            ),
        )
        .unwrap();
        let stderr = dir.join("agent.log");
        let child = Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Agent {
            child: Some(child),
            stderr,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(Debug)]
struct Received {
    body: Body,
    retain: bool,
}

/// A subscriber to everything under `sitewatch/`, with a persistent session
/// (resubscribing on every CONNACK too) so that it misses nothing across a
/// broker restart.
fn subscribe(broker: &Broker, id: &str) -> mpsc::UnboundedReceiver<Received> {
    let mut options = MqttOptions::new(id, "127.0.0.1", broker.port);
    options
        .set_clean_session(false)
        .set_keep_alive(Duration::from_secs(5))
        .set_max_packet_size(512 * 1024, 512 * 1024);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    client
                        .try_subscribe("sitewatch/#", QoS::AtLeastOnce)
                        .unwrap();
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let message = decode(&p.topic, &p.payload)
                        .unwrap_or_else(|e| panic!("the agent sent an invalid message: {e}"));
                    if tx
                        .send(Received {
                            body: message.body,
                            retain: p.retain,
                        })
                        .is_err()
                    {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    rx
}

/// The next message for which `pick` returns something, within `timeout`.
async fn next<T>(
    rx: &mut mpsc::UnboundedReceiver<Received>,
    timeout: Duration,
    what: &str,
    mut pick: impl FnMut(&Received) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let received = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
            .expect("subscriber running");
        if let Some(found) = pick(&received) {
            return found;
        }
    }
}

fn state(r: &Received) -> Option<StatePayload> {
    match &r.body {
        Body::State(s) => Some(s.clone()),
        _ => None,
    }
}

fn readings(r: &Received) -> Option<ReadingsPayload> {
    match &r.body {
        Body::Readings(p) => Some(p.clone()),
        _ => None,
    }
}

async fn wait_online(rx: &mut mpsc::UnboundedReceiver<Received>) -> StatePayload {
    next(rx, Duration::from_secs(10), "the birth state", |r| {
        state(r).filter(|s| s.status == Status::Online)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_is_retained_and_readings_batches_have_increasing_seq() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let agent = Agent::start(dir.path(), &broker, 5);
    let mut rx = subscribe(&broker, "t-birth");
    let birth = wait_online(&mut rx).await;
    assert_eq!(
        birth.agent.as_deref(),
        Some(concat!("sitewatch-agent/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(birth.interval_ms, Some(1000));
    assert_eq!(birth.sources.get("host"), Some(&500));
    assert_eq!(birth.labels.get("room").map(String::as_str), Some("a1"));
    let boot = birth.boot.clone().expect("a boot id");
    assert!(boot.len() >= 8 && boot.chars().all(|c| c.is_ascii_hexdigit()));
    assert!(birth.ts.is_some());

    let mut seqs = Vec::new();
    let mut quantities = BTreeSet::new();
    while seqs.len() < 5 {
        let batch = next(&mut rx, Duration::from_secs(10), "readings", readings).await;
        seqs.push(batch.seq);
        quantities.extend(batch.readings.iter().map(|r| (r.src.clone(), r.q.clone())));
    }
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "{seqs:?}");
    for (src, q) in [
        ("host", "cpu_usage_ratio"),
        ("host", "memory_usage_ratio"),
        ("agent", "agent_poll_success"),
        ("agent", "agent_buffer_messages"),
    ] {
        assert!(
            quantities.contains(&(src.to_owned(), q.to_owned())),
            "no {src}/{q} in {quantities:?}"
        );
    }

    // A late subscriber gets the birth as a retained message.
    let mut late = subscribe(&broker, "t-birth-late");
    let retained = next(&mut late, Duration::from_secs(5), "retained state", |r| {
        state(r).map(|s| (s, r.retain))
    })
    .await;
    assert_eq!(retained.0.boot, Some(boot));
    assert!(retained.1, "the state is retained");
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_makes_the_broker_publish_the_retained_lost_will() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let keepalive = Duration::from_secs(1);
    let mut agent = Agent::start(dir.path(), &broker, keepalive.as_secs());
    let mut rx = subscribe(&broker, "t-will");
    wait_online(&mut rx).await;

    let killed_at = Instant::now();
    agent.child.as_mut().unwrap().kill().unwrap(); // SIGKILL: no clean stop
    let will = next(
        &mut rx,
        keepalive.mul_f64(1.5) + Duration::from_secs(2),
        "the will",
        |r| state(r).filter(|s| s.status == Status::Offline),
    )
    .await;
    assert_eq!(will.reason, Some(OfflineReason::Lost));
    assert!(killed_at.elapsed() < keepalive.mul_f64(1.5) + Duration::from_secs(2));

    let mut late = subscribe(&broker, "t-will-late");
    let retained = next(&mut late, Duration::from_secs(5), "retained will", |r| {
        state(r).map(|s| (s, r.retain))
    })
    .await;
    assert_eq!(retained.0.reason, Some(OfflineReason::Lost));
    assert!(retained.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_publishes_the_retained_shutdown_state_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    let mut agent = Agent::start(dir.path(), &broker, 5);
    let mut rx = subscribe(&broker, "t-term");
    wait_online(&mut rx).await;

    signal(agent.child.as_ref().unwrap(), "TERM");
    let offline = next(&mut rx, Duration::from_secs(5), "the shutdown state", |r| {
        state(r).filter(|s| s.status == Status::Offline)
    })
    .await;
    assert_eq!(offline.reason, Some(OfflineReason::Shutdown));
    assert!(offline.ts.is_some());

    let mut child = agent.child.take().unwrap();
    let mut status = None;
    wait_until("the agent to exit", Duration::from_secs(5), || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    assert!(status.unwrap().success(), "{}", agent.log());

    // Retained, and no will follows a clean stop.
    let mut late = subscribe(&broker, "t-term-late");
    let retained = next(&mut late, Duration::from_secs(5), "retained state", |r| {
        state(r).map(|s| (s, r.retain))
    })
    .await;
    assert_eq!(retained.0.reason, Some(OfflineReason::Shutdown));
    assert!(retained.1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readings_taken_during_a_broker_outage_arrive_afterwards_in_order_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path());
    let agent = Agent::start(dir.path(), &broker, 5);
    let mut rx = subscribe(&broker, "t-outage");
    wait_online(&mut rx).await;
    let first = next(&mut rx, Duration::from_secs(10), "readings", readings).await;

    let mut batches = vec![first];
    broker.stop();
    let down_at = unix_ms();
    // The outage itself: readings keep being taken meanwhile.
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart();
    let up_at = unix_ms();

    // Everything up to a reading taken after the restart.
    while batches.last().unwrap().ts < up_at + 1000 {
        let batch = next(
            &mut rx,
            Duration::from_secs(20),
            "readings after the outage",
            readings,
        )
        .await;
        batches.push(batch);
    }
    let seqs: BTreeSet<u64> = batches.iter().map(|b| b.seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    let missing: Vec<u64> = (lo..=hi).filter(|s| !seqs.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "seq gaps {missing:?} in {seqs:?}\n{}",
        agent.log()
    );

    // Readings from the outage kept their read time and came oldest first.
    let during: Vec<&ReadingsPayload> = batches
        .iter()
        .filter(|b| b.ts > down_at && b.ts < up_at)
        .collect();
    assert!(
        during.len() >= 3,
        "{} batches from the outage",
        during.len()
    );
    assert!(
        during
            .iter()
            .any(|b| b.readings.iter().any(|r| r.q == "cpu_usage_ratio")),
        "host readings from the outage"
    );
    let mut first_seen = Vec::new();
    for b in &batches {
        if !first_seen.contains(&b.seq) {
            first_seen.push(b.seq);
        }
    }
    assert!(
        first_seen.windows(2).all(|w| w[0] < w[1]),
        "out of order: {first_seen:?}"
    );
    assert!(agent.log().contains("connection lost"), "{}", agent.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_in_flight_when_the_broker_freezes_are_sent_again_after_reconnecting() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path());
    // keepalive 1 s: an unanswered ping ends the connection about 2 s into the freeze.
    let agent = Agent::start(dir.path(), &broker, 1);
    let mut rx = subscribe(&broker, "t-freeze");
    wait_online(&mut rx).await;
    let mut batches = vec![next(&mut rx, Duration::from_secs(10), "readings", readings).await];

    // A frozen broker accepts publishes into its socket but never acknowledges
    // them: they are in flight when the agent gives the connection up.
    let mosquitto = broker.child.as_ref().unwrap();
    signal(mosquitto, "STOP");
    tokio::time::sleep(Duration::from_secs(4)).await;
    signal(mosquitto, "CONT");
    let resumed_at = unix_ms();

    while batches.last().unwrap().ts < resumed_at + 1000 {
        batches.push(
            next(
                &mut rx,
                Duration::from_secs(20),
                "readings after the freeze",
                readings,
            )
            .await,
        );
    }
    let seqs: BTreeSet<u64> = batches.iter().map(|b| b.seq).collect();
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    let missing: Vec<u64> = (lo..=hi).filter(|s| !seqs.contains(s)).collect();
    assert!(missing.is_empty(), "seq gaps {missing:?}\n{}", agent.log());
    let log = agent.log();
    let requeued = log
        .lines()
        .filter(|l| l.contains("connection lost"))
        .filter_map(|l| {
            l.split("requeued=")
                .nth(1)?
                .split(' ')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .any(|n| n > 0);
    assert!(
        requeued,
        "nothing was in flight when the connection was lost:\n{log}"
    );
}
