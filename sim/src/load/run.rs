//! The load's I/O: one tokio task per simulated agent (a few threads carry
//! them all), each with its own TCP connection, and the shared counters the
//! summary is made of.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use rand::Rng;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, sleep_until, timeout},
};

use super::{
    Options,
    message::AgentMessages,
    mqtt::{self, Incoming},
};

/// Counters shared by every simulated agent.
#[derive(Debug)]
pub struct Stats {
    pub first_connects: AtomicU64,
    pub connect_failures: AtomicU64,
    pub connections_lost: AtomicU64,
    pub births_acked: AtomicU64,
    pub batches_made: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_resent: AtomicU64,
    pub batches_acked: AtomicU64,
    pub readings_acked: AtomicU64,
    pub batches_dropped: AtomicU64,
    pub batches_unacked: AtomicU64,
    pub shutdowns_acked: AtomicU64,
    /// Successful reconnects (a CONNACK after a lost connection), per second
    /// since the start.
    pub reconnects: Vec<AtomicU64>,
    /// Connections lost, per second since the start.
    pub losses: Vec<AtomicU64>,
}

fn counters(n: usize) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Stats {
    pub fn new(seconds: usize) -> Stats {
        Stats {
            first_connects: AtomicU64::new(0),
            connect_failures: AtomicU64::new(0),
            connections_lost: AtomicU64::new(0),
            births_acked: AtomicU64::new(0),
            batches_made: AtomicU64::new(0),
            batches_sent: AtomicU64::new(0),
            batches_resent: AtomicU64::new(0),
            batches_acked: AtomicU64::new(0),
            readings_acked: AtomicU64::new(0),
            batches_dropped: AtomicU64::new(0),
            batches_unacked: AtomicU64::new(0),
            shutdowns_acked: AtomicU64::new(0),
            reconnects: counters(seconds),
            losses: counters(seconds),
        }
    }

    fn per_second(series: &[AtomicU64], start: Instant) {
        let at = (Instant::now() - start).as_secs() as usize;
        if let Some(c) = series.get(at).or(series.last()) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

/// The shared, read-only part of a run.
#[derive(Debug)]
pub struct Run {
    pub options: Options,
    pub broker: SocketAddr,
    pub password: Option<Vec<u8>>,
    pub stats: Stats,
    pub start: Instant,
    /// The wall clock at `start`, for the batches' `ts`.
    pub start_ms: i64,
}

impl Run {
    fn end(&self) -> Instant {
        self.start + self.options.ramp + self.options.duration
    }

    fn give_up(&self) -> Instant {
        self.end() + self.options.drain
    }

    fn wall_ms(&self, at: Instant) -> i64 {
        self.start_ms + (at - self.start).as_millis() as i64
    }
}

pub fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A batch waiting for its PUBACK.
#[derive(Debug)]
struct Pending {
    seq: u64,
    ts: i64,
    /// The packet id of its latest send in this connection, `None` until sent.
    pkid: Option<u16>,
}

/// One simulated agent's state across its connections.
#[derive(Debug)]
struct Agent {
    messages: AgentMessages,
    seq: u64,
    next_batch: Instant,
    pending: VecDeque<Pending>,
    next_pkid: u16,
    out: Vec<u8>,
    payload: Vec<u8>,
}

impl Agent {
    fn pkid(&mut self) -> u16 {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        self.next_pkid
    }

    /// Queues every batch due by `now` (also while disconnected, as an agent's
    /// buffer would), dropping the oldest past the bound.
    fn make_due(&mut self, run: &Run, now: Instant) {
        let end = run.end();
        while self.next_batch <= now && self.next_batch < end {
            self.seq += 1;
            self.pending.push_back(Pending {
                seq: self.seq,
                ts: run.wall_ms(self.next_batch),
                pkid: None,
            });
            add(&run.stats.batches_made, 1);
            self.next_batch += run.options.interval;
            if self.pending.len() > run.options.max_buffered {
                self.pending.pop_front();
                add(&run.stats.batches_dropped, 1);
            }
        }
    }

    /// Encodes every batch not yet sent in this connection into `out`.
    fn encode_unsent(&mut self, run: &Run) {
        for i in 0..self.pending.len() {
            if self.pending[i].pkid.is_some() {
                continue;
            }
            let pkid = self.pkid();
            let p = &mut self.pending[i];
            p.pkid = Some(pkid);
            self.messages.batch.write(p.seq, p.ts, &mut self.payload);
            mqtt::publish(
                &mut self.out,
                &self.messages.readings_topic,
                pkid,
                &self.payload,
                false,
                false,
            );
            add(&run.stats.batches_sent, 1);
        }
    }

    fn acked(&mut self, run: &Run, pkid: u16) {
        if let Some(i) = self.pending.iter().position(|p| p.pkid == Some(pkid)) {
            self.pending.remove(i);
            add(&run.stats.batches_acked, 1);
            add(
                &run.stats.readings_acked,
                self.messages.batch.readings as u64,
            );
        }
    }
}

/// How a connection ended.
enum Ended {
    /// The run is over and the clean stop was sent.
    Finished,
    /// The broker went away, or never answered.
    Lost,
}

/// Runs simulated agent number `index` until the run ends.
pub async fn agent(run: Arc<Run>, index: usize, messages: AgentMessages) {
    let o = &run.options;
    // Spread the first connections over the ramp and the batches over the
    // interval (or what the run says), so that N agents do not all speak in
    // the same millisecond.
    let ramp_ms = o.ramp.as_millis() as u64;
    let connect_at = run.start + Duration::from_millis(rand::rng().random_range(0..=ramp_ms));
    let within_ms = o.first_batch_within.as_millis() as u64;
    let phase = Duration::from_millis(rand::rng().random_range(0..=within_ms));
    let mut agent = Agent {
        messages,
        seq: 0,
        next_batch: connect_at + phase,
        pending: VecDeque::new(),
        next_pkid: 0,
        out: Vec::with_capacity(4096),
        payload: Vec::new(),
    };
    agent.payload.reserve(agent.messages.batch.max_len());
    sleep_until(connect_at).await;
    let mut attempt: u32 = 0;
    let mut connected_before = false;
    loop {
        let now = Instant::now();
        agent.make_due(&run, now);
        if now >= run.give_up()
            || (now >= run.end() && agent.pending.is_empty() && !connected_before)
        {
            break;
        }
        match session(&run, &mut agent, connected_before).await {
            Ok(Ended::Finished) => break,
            Ok(Ended::Lost) => {
                connected_before = true;
                attempt = 0;
                add(&run.stats.connections_lost, 1);
                Stats::per_second(&run.stats.losses, run.start);
            }
            Err(()) => {
                add(&run.stats.connect_failures, 1);
                attempt = attempt.saturating_add(1);
            }
        }
        // Full jitter (a uniform wait between 0 and the capped exponential):
        // ten thousand agents that lost the same broker come back spread
        // over the window instead of in one wave.
        let cap = o
            .backoff_base
            .saturating_mul(1u32 << attempt.min(16))
            .min(o.backoff_max);
        let wait = Duration::from_millis(rand::rng().random_range(0..=cap.as_millis() as u64));
        let resume = (Instant::now() + wait).min(run.give_up());
        sleep_until(resume).await;
        tracing::debug!(index, attempt, "reconnecting");
    }
    add(&run.stats.batches_unacked, agent.pending.len() as u64);
}

/// One connection: CONNECT, birth, what is pending, then batches until the
/// end or a loss. `Err` when the broker could not be reached or refused.
async fn session(run: &Run, agent: &mut Agent, reconnect: bool) -> Result<Ended, ()> {
    let o = &run.options;
    let mut stream = match timeout(o.connect_timeout, TcpStream::connect(run.broker)).await {
        Ok(Ok(s)) => s,
        _ => return Err(()),
    };
    let _ = stream.set_nodelay(true);
    let connect = mqtt::connect(&mqtt::Connect {
        client_id: &agent.messages.client_id,
        keepalive_s: o.keepalive.as_secs().clamp(1, u64::from(u16::MAX)) as u16,
        will_topic: &agent.messages.state_topic,
        will_payload: &agent.messages.will,
        username: o.username.as_deref(),
        password: run.password.as_deref(),
    });
    if stream.write_all(&connect).await.is_err() {
        return Err(());
    }
    let mut rbuf = Vec::with_capacity(256);
    let accepted = timeout(o.connect_timeout, async {
        loop {
            match mqtt::parse(&mut rbuf) {
                Ok(Some(Incoming::ConnAck(code))) => return code == mqtt::ACCEPTED,
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => return false,
            }
            match stream.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    })
    .await;
    if accepted != Ok(true) {
        return Err(());
    }
    if reconnect {
        Stats::per_second(&run.stats.reconnects, run.start);
    } else {
        add(&run.stats.first_connects, 1);
    }
    // A new session: whatever was sent before goes again under new ids
    // (the collector drops the copies it already had, by boot and seq).
    let mut resent = 0u64;
    for p in agent.pending.iter_mut() {
        if p.pkid.take().is_some() {
            resent += 1;
        }
    }
    add(&run.stats.batches_resent, resent);
    agent.out.clear();
    let birth_pkid = agent.pkid();
    mqtt::publish(
        &mut agent.out,
        &agent.messages.state_topic,
        birth_pkid,
        &agent.messages.birth,
        true,
        false,
    );
    let mut shutdown_pkid = None;
    let mut last_write = Instant::now();
    loop {
        let now = Instant::now();
        agent.make_due(run, now);
        agent.encode_unsent(run);
        if now >= run.end()
            && shutdown_pkid.is_none()
            && (agent.pending.is_empty() || now >= run.give_up())
        {
            let pkid = agent.pkid();
            mqtt::publish(
                &mut agent.out,
                &agent.messages.state_topic,
                pkid,
                &agent.messages.shutdown,
                true,
                false,
            );
            shutdown_pkid = Some(pkid);
        }
        if !agent.out.is_empty() {
            if stream.write_all(&agent.out).await.is_err() {
                return Ok(Ended::Lost);
            }
            agent.out.clear();
            last_write = now;
        }
        let ping_at = last_write + o.keepalive / 2;
        let wake = if now < run.end() {
            agent.next_batch.min(ping_at).min(run.end())
        } else {
            // Draining: wait for the acks, wake to give up.
            ping_at.min(run.give_up() + Duration::from_secs(2))
        };
        tokio::select! {
            read = stream.read_buf(&mut rbuf) => {
                match read {
                    Ok(0) | Err(_) => return Ok(Ended::Lost),
                    Ok(_) => {}
                }
                loop {
                    match mqtt::parse(&mut rbuf) {
                        Ok(Some(Incoming::PubAck(pkid))) => {
                            if pkid == birth_pkid {
                                add(&run.stats.births_acked, 1);
                            } else if Some(pkid) == shutdown_pkid {
                                add(&run.stats.shutdowns_acked, 1);
                                let _ = stream.write_all(&mqtt::DISCONNECT).await;
                                let _ = stream.shutdown().await;
                                return Ok(Ended::Finished);
                            } else {
                                agent.acked(run, pkid);
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(_) => return Ok(Ended::Lost),
                    }
                }
            }
            () = sleep_until(wake) => {
                let now = Instant::now();
                if now >= run.give_up() + Duration::from_secs(2) {
                    // The broker never acknowledged the clean stop.
                    return Ok(Ended::Finished);
                }
                if now >= ping_at {
                    agent.out.extend_from_slice(&mqtt::PINGREQ);
                }
            }
        }
    }
}
