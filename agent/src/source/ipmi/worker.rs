//! One BMC: its session, SDR cache, SEL cursor and sweep, run on a thread of
//! its own (ipmi-rs is blocking), so that a BMC that hangs holds only its own
//! thread. The poller hands a sweep to an idle worker and waits for it until a
//! deadline; a worker still busy with an earlier sweep is skipped, never queued.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    time::{Duration, Instant},
};

use sitewatch_protocol::{Event, Reading, ReadingState};

use super::{
    NAME, chassis,
    commands::{DcmiGetPowerReading, GetChassisStatus, GetSensorReading, GetSensorThresholds},
    sdr::{self, SdrCache, SensorRecord},
    sel::{self, SelCursor},
    sensor::{self, Plan, Thresholds, q},
    transport::{Link, LinkError, LocalLink, RmcpLink, call, close_session},
};
use crate::{selfmetrics, source::Checkpoint};

/// The BMC's own IPMB address: sensors owned by other controllers would need
/// bridged requests, which this source does not send.
const BMC_ADDRESS: u8 = 0x20;

/// How to reach a BMC.
#[derive(Clone)]
pub enum Target {
    Lan {
        host: String,
        port: u16,
        username: String,
        password: Vec<u8>,
    },
    Local,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // Never the password.
            Target::Lan {
                host,
                port,
                username,
                ..
            } => f
                .debug_struct("Lan")
                .field("host", host)
                .field("port", port)
                .field("username", username)
                .finish_non_exhaustive(),
            Target::Local => f.write_str("Local"),
        }
    }
}

type Opener = Box<dyn FnMut() -> Result<Box<dyn Link>, LinkError> + Send>;

/// What one sweep of one BMC produced.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BmcSweep {
    pub readings: Vec<Reading>,
    pub events: Vec<Event>,
    /// The SEL cursor to save once `events` are delivered (at least once:
    /// see `buffer::checkpoint`).
    pub checkpoints: Vec<Checkpoint>,
    /// Why the sweep stopped early; its readings then end with `bmc_up 0`.
    pub error: Option<LinkError>,
}

/// A sensor and how it is read.
#[derive(Debug, Clone)]
struct Planned {
    record: SensorRecord,
    plan: Plan,
    thresholds: Option<Thresholds>,
}

/// One BMC's state between sweeps.
pub struct Bmc {
    name: String,
    open: Opener,
    state_dir: Option<PathBuf>,
    link: Option<Box<dyn Link>>,
    sdr: Option<SdrCache>,
    sensors: Vec<Planned>,
    skipped: usize,
    corrupt_sdrs: usize,
    sel_cursor: Option<SelCursor>,
    dcmi_supported: Option<bool>,
    malformed: u64,
    /// Events of a sweep whose poller had already given up: sent next time.
    pending_events: Vec<Event>,
    /// Their cursor checkpoints, likewise.
    pending_checkpoints: Vec<Checkpoint>,
}

impl std::fmt::Debug for Bmc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bmc")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Bmc {
    /// A BMC reached through `target`; each command waits `command_timeout`.
    pub fn new(
        name: &str,
        target: Target,
        command_timeout: Duration,
        state_dir: Option<PathBuf>,
    ) -> Bmc {
        let open: Opener = Box::new(move || -> Result<Box<dyn Link>, LinkError> {
            match &target {
                Target::Lan {
                    host,
                    port,
                    username,
                    password,
                } => Ok(Box::new(RmcpLink::open(
                    host,
                    *port,
                    username,
                    password,
                    command_timeout,
                )?)),
                Target::Local => Ok(Box::new(LocalLink::open(command_timeout)?)),
            }
        });
        Bmc::with_opener(name, open, state_dir)
    }

    /// A BMC whose links come from `open` (tests give scripted links).
    pub fn with_opener(name: &str, open: Opener, state_dir: Option<PathBuf>) -> Bmc {
        let mut bmc = Bmc {
            name: name.to_owned(),
            open,
            state_dir,
            link: None,
            sdr: None,
            sensors: Vec::new(),
            skipped: 0,
            corrupt_sdrs: 0,
            sel_cursor: None,
            dcmi_supported: None,
            malformed: 0,
            pending_events: Vec::new(),
            pending_checkpoints: Vec::new(),
        };
        // A cache from an earlier run is used once the repository's stamps
        // confirm it; the SEL cursor is used as it is.
        if let Some(cache) = bmc.state_file("sdr").and_then(|p| SdrCache::load(&p)) {
            bmc.set_sdr(cache);
        }
        bmc.sel_cursor = bmc.state_file("sel").and_then(|p| SelCursor::load(&p));
        bmc
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn state_file(&self, what: &str) -> Option<PathBuf> {
        self.state_dir
            .as_ref()
            .map(|d| d.join(format!("{}.{what}.json", self.name)))
    }

    fn set_sdr(&mut self, cache: SdrCache) {
        let (records, corrupt) = cache.sensors();
        for c in &corrupt {
            tracing::warn!(bmc = %self.name, error = %c, "corrupt SDR record skipped");
        }
        self.corrupt_sdrs = corrupt.len();
        self.sensors.clear();
        self.skipped = 0;
        for record in records {
            let plan = if record.owner != BMC_ADDRESS {
                Err(format!(
                    "owned by controller {:#04x}: bridged reads are not supported",
                    record.owner
                ))
            } else if record.lun != 0 {
                Err(format!("on LUN {}: only LUN 0 is read", record.lun))
            } else {
                sensor::plan(&record)
            };
            match plan {
                Ok(plan) => self.sensors.push(Planned {
                    record,
                    plan,
                    thresholds: None,
                }),
                Err(reason) => {
                    tracing::debug!(bmc = %self.name, sensor = %record.name, %reason, "sensor skipped");
                    self.skipped += 1;
                }
            }
        }
        self.sdr = Some(cache);
    }

    /// Sweeps the BMC once; stops at `deadline` (plus at most one command).
    pub fn sweep(&mut self, deadline: Instant) -> BmcSweep {
        let started = Instant::now();
        let mut out = BmcSweep {
            events: std::mem::take(&mut self.pending_events),
            checkpoints: std::mem::take(&mut self.pending_checkpoints),
            ..BmcSweep::default()
        };
        let result = self.sweep_inner(deadline, &mut out);
        let up = result.is_ok();
        let mut bmc_up = Reading::new(
            NAME,
            self.name.clone(),
            "bmc",
            q::BMC_UP,
            Some(if up { 1.0 } else { 0.0 }),
            // Not critical: an unreachable BMC is a monitoring gap, not a
            // hardware failure (the host's own agent and probes tell that).
            if up {
                ReadingState::Ok
            } else {
                ReadingState::Warning
            },
        );
        if let Err(e) = result {
            bmc_up = bmc_up.with_label("error", e.kind());
            out.error = Some(e);
        }
        out.readings.push(bmc_up);
        // How the sweep went is about the agent's work, not the BMC: self
        // readings on the device layer's `dev` for this BMC.
        let dev = format!("{NAME}/{}", self.name);
        for (q, v) in [
            (
                selfmetrics::q::IPMI_SWEEP_DURATION_SECONDS,
                started.elapsed().as_secs_f64(),
            ),
            (selfmetrics::q::IPMI_SENSORS_SKIPPED, self.skipped as f64),
            (selfmetrics::q::IPMI_CORRUPT_SDRS, self.corrupt_sdrs as f64),
            (
                selfmetrics::q::IPMI_MALFORMED_RESPONSES,
                self.malformed as f64,
            ),
        ] {
            out.readings.push(selfmetrics::reading(dev.clone(), q, v));
        }
        out
    }

    fn sweep_inner(&mut self, deadline: Instant, out: &mut BmcSweep) -> Result<(), LinkError> {
        if self.link.is_none() {
            self.link = Some((self.open)()?);
            self.dcmi_supported = None;
        }
        let mut link = self.link.take().ok_or(LinkError::Deadline)?;
        let result = self.sweep_link(link.as_mut(), deadline, out);
        if result.is_ok() {
            self.link = Some(link);
        } else if let Err(e) = &result
            && !e.is_unreachable()
        {
            // The session is dropped after any failure (see `transport`);
            // give its slot back first, BMCs have few.
            close_session(link.as_mut());
        }
        result
    }

    fn count_malformed<T>(&mut self, r: Result<T, LinkError>) -> Result<Option<T>, LinkError> {
        match r {
            Ok(v) => Ok(Some(v)),
            Err(LinkError::Malformed(m)) => {
                self.malformed += 1;
                tracing::debug!(bmc = %self.name, error = %m, "malformed answer skipped");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn sweep_link(
        &mut self,
        link: &mut dyn Link,
        deadline: Instant,
        out: &mut BmcSweep,
    ) -> Result<(), LinkError> {
        // The SDRs: re-read only when the repository says it changed.
        let info = sdr::repository_info(link);
        if let Some(Ok(info)) = self.count_malformed(info)?
            && !self.sdr.as_ref().is_some_and(|c| c.matches(&info))
        {
            let read = sdr::read_repository(link, &info, deadline);
            // A garbage reservation answer leaves the old cache (if any) in use.
            let Some((cache, stats)) = self.count_malformed(read)? else {
                return self.sweep_sensors(link, deadline, out);
            };
            tracing::info!(
                bmc = %self.name,
                records = cache.records.len(),
                skipped = stats.skipped_records,
                reservations = stats.reservations,
                "SDR repository read"
            );
            if let Some(path) = self.state_file("sdr")
                && let Err(e) = cache.save(&path)
            {
                tracing::warn!(bmc = %self.name, path = %path.display(), error = %e, "cannot save the SDR cache");
            }
            self.set_sdr(cache);
            self.corrupt_sdrs += stats.skipped_records;
        }
        self.sweep_sensors(link, deadline, out)
    }

    /// Sensors, SEL, chassis and DCMI: everything after the SDR check.
    fn sweep_sensors(
        &mut self,
        link: &mut dyn Link,
        deadline: Instant,
        out: &mut BmcSweep,
    ) -> Result<(), LinkError> {
        let check = || {
            if Instant::now() > deadline {
                Err(LinkError::Deadline)
            } else {
                Ok(())
            }
        };
        // The sensors.
        let mut names = BTreeSet::new();
        let mut sensors = std::mem::take(&mut self.sensors);
        let result = (|| {
            for planned in &mut sensors {
                check()?;
                let number = planned.record.number;
                let Some(reading) =
                    self.count_malformed(call(link, &GetSensorReading { sensor: number }))?
                else {
                    continue;
                };
                // Thresholds matter only to BMCs that leave out the status bits.
                if matches!(planned.plan, Plan::Analog { .. })
                    && planned.thresholds.is_none()
                    && reading.as_ref().is_ok_and(|r| r.states.is_none())
                    && let Some(Ok(raw)) =
                        self.count_malformed(call(link, &GetSensorThresholds { sensor: number }))?
                {
                    planned.thresholds = Some(Thresholds::convert(&raw, &planned.record));
                }
                for mut r in sensor::readings(
                    &self.name,
                    &planned.record,
                    &planned.plan,
                    reading,
                    planned.thresholds.as_ref(),
                ) {
                    // Two sensors may share a name: each keeps its own series.
                    let base = r.name.clone();
                    let mut n = 2;
                    while !names.insert((r.name.clone(), r.q.clone())) {
                        r.name = format!("{base} #{n}");
                        n += 1;
                    }
                    out.readings.push(r);
                }
            }
            Ok::<(), LinkError>(())
        })();
        self.sensors = sensors;
        result?;
        check()?;
        // The SEL.
        let swept = sel::sweep(link, self.sel_cursor);
        let mut new_events = Vec::new();
        let mut new_cursor = None;
        let swept = self.count_malformed(swept)?;
        let by_number: BTreeMap<u8, &SensorRecord> = self
            .sensors
            .iter()
            .map(|p| (p.record.number, &p.record))
            .collect();
        if let Some(Ok(s)) = swept {
            if let Some(info) = s.info {
                let full = info.overflow || info.free_bytes < 16;
                out.readings.push(Reading::new(
                    NAME,
                    self.name.clone(),
                    "SEL",
                    q::SEL_FULL,
                    Some(if full { 1.0 } else { 0.0 }),
                    if full {
                        ReadingState::Warning
                    } else {
                        ReadingState::Ok
                    },
                ));
                out.readings.push(Reading::new(
                    NAME,
                    self.name.clone(),
                    "SEL",
                    q::SEL_ENTRIES,
                    Some(f64::from(info.entries)),
                    ReadingState::Ok,
                ));
            }
            for record in &s.new_entries {
                // Events of the BMC's own sensors (generator 20h) get their names.
                let sensor = (record[7] == BMC_ADDRESS)
                    .then(|| by_number.get(&record[11]).copied())
                    .flatten();
                new_events.push(sel::event(&self.name, record, sensor));
            }
            new_cursor = Some(s.cursor);
        }
        if let Some(cursor) = new_cursor
            && self.sel_cursor != Some(cursor)
        {
            // The read position moves now; the file (where a restart starts)
            // only once the publisher has these events acknowledged.
            self.sel_cursor = Some(cursor);
            if let Some(path) = self.state_file("sel") {
                match cursor.to_bytes() {
                    Ok(contents) => out.checkpoints.push(Checkpoint { path, contents }),
                    Err(e) => {
                        tracing::warn!(bmc = %self.name, error = %e, "cannot encode the SEL cursor")
                    }
                }
            }
        }
        out.events.extend(new_events);
        check()?;
        // Chassis status and DCMI power: optional, a refusal is "not here".
        if let Some(Ok(status)) = self.count_malformed(call(link, &GetChassisStatus))? {
            out.readings.extend(chassis::readings(&self.name, &status));
        }
        if self.dcmi_supported != Some(false) {
            check()?;
            match self.count_malformed(call(link, &DcmiGetPowerReading))? {
                Some(Ok(p)) => {
                    self.dcmi_supported = Some(true);
                    out.readings.push(chassis::power(&self.name, &p));
                }
                // ipmi_sim and non-DCMI BMCs answer C1h: not asked again
                // until the next session.
                Some(Err(_)) => self.dcmi_supported = Some(false),
                None => {}
            }
        }
        Ok(())
    }
}

/// A sweep request: until when, and where the answer goes.
#[derive(Debug)]
struct SweepRequest {
    deadline: Instant,
    reply: tokio::sync::oneshot::Sender<BmcSweep>,
}

/// The handle of one BMC's thread.
#[derive(Debug)]
pub struct Worker {
    name: String,
    requests: SyncSender<SweepRequest>,
    /// Set by the poller when it hands a sweep over, cleared by the thread
    /// when the sweep is done (a rendezvous channel alone would also refuse
    /// a thread that has not reached its first receive yet).
    busy: Arc<AtomicBool>,
}

/// Why a worker did not take a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Still sweeping (a hung BMC): skipped, not queued.
    Busy,
    /// Its thread is gone.
    Gone,
}

impl Worker {
    pub fn spawn(mut bmc: Bmc) -> std::io::Result<Worker> {
        let (requests, rx): (SyncSender<SweepRequest>, Receiver<SweepRequest>) = sync_channel(1);
        let name = bmc.name().to_owned();
        let busy = Arc::new(AtomicBool::new(false));
        let done = Arc::clone(&busy);
        std::thread::Builder::new()
            .name(format!("ipmi-{name}"))
            .spawn(move || {
                for request in rx {
                    let swept = bmc.sweep(request.deadline);
                    done.store(false, Ordering::Release);
                    if let Err(late) = request.reply.send(swept) {
                        // The poller gave up on this sweep: keep its events
                        // and the cursor that covers them.
                        bmc.pending_events.extend(late.events);
                        bmc.pending_checkpoints.extend(late.checkpoints);
                    }
                }
            })?;
        Ok(Worker {
            name,
            requests,
            busy,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Hands a sweep to the worker if it is idle.
    pub fn start(
        &self,
        deadline: Instant,
    ) -> Result<tokio::sync::oneshot::Receiver<BmcSweep>, Refused> {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Refused::Busy);
        }
        let (reply, rx) = tokio::sync::oneshot::channel();
        match self.requests.try_send(SweepRequest { deadline, reply }) {
            Ok(()) => Ok(rx),
            Err(TrySendError::Full(_)) => Err(Refused::Busy),
            Err(TrySendError::Disconnected(_)) => {
                self.busy.store(false, Ordering::Release);
                Err(Refused::Gone)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::source::ipmi::{commands::Request, transport::Reply};

    /// A scripted BMC: one good temperature record, one corrupt record, and
    /// answers that can be made short or garbage per command.
    #[derive(Default)]
    struct Script {
        addition_ts: u32,
        sensor_reading: Vec<u8>,
        get_sdr_calls: usize,
        garbage_for: Vec<u8>,
    }

    struct Scripted(Arc<Mutex<Script>>);

    fn temp_record() -> Vec<u8> {
        let mut r = vec![
            0x00, 0x00, 0x51, 0x01, 0x00, 0x20, 0x00, 0x01, 0x37, 0x01, 0x7f, 0x68, 0x01, 0x01,
        ];
        r.extend_from_slice(&[0; 6]); // masks
        r.extend_from_slice(&[0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        r.extend_from_slice(&[0; 17]);
        r.push(0xc5);
        r.extend_from_slice(b"Inlet");
        r[4] = u8::try_from(r.len() - 5).unwrap_or(0);
        r
    }

    fn corrupt_record() -> Vec<u8> {
        // A full sensor record declaring 20 bytes: too short to be one.
        let mut r = vec![0x01, 0x00, 0x51, 0x01, 20];
        r.extend_from_slice(&[0; 20]);
        r
    }

    impl Link for Scripted {
        fn exchange(&mut self, r: &Request) -> Result<Reply, LinkError> {
            let mut s = self.0.lock().unwrap_or_else(|p| p.into_inner());
            let ok = |data: Vec<u8>| Ok(Reply { cc: 0, data });
            if s.garbage_for.contains(&r.cmd) {
                return ok(vec![0x01]);
            }
            let records = [temp_record(), corrupt_record()];
            match (r.netfn, r.cmd) {
                (0x0a, 0x20) => {
                    let mut d = vec![0x51, 2, 0, 0, 0];
                    d.extend_from_slice(&s.addition_ts.to_le_bytes());
                    d.extend_from_slice(&[0, 0, 0, 0, 0x02]);
                    ok(d)
                }
                (0x0a, 0x22) => ok(vec![0x01, 0x00]),
                (0x0a, 0x23) => {
                    s.get_sdr_calls += 1;
                    let id = usize::from(r.data[2]);
                    let (offset, len) = (usize::from(r.data[4]), usize::from(r.data[5]));
                    let rec = &records[id.min(1)];
                    let next: u16 = if id == 0 { 1 } else { 0xffff };
                    let mut d = next.to_le_bytes().to_vec();
                    d.extend_from_slice(&rec[offset.min(rec.len())..(offset + len).min(rec.len())]);
                    ok(d)
                }
                (0x04, 0x2d) => ok(s.sensor_reading.clone()),
                (0x00, 0x01) => ok(vec![0x01, 0x00, 0x00]),
                _ => Ok(Reply {
                    cc: 0xc1,
                    data: vec![],
                }),
            }
        }
    }

    fn scripted(script: &Arc<Mutex<Script>>, state_dir: Option<PathBuf>) -> Bmc {
        let s = Arc::clone(script);
        Bmc::with_opener(
            "b",
            Box::new(move || Ok(Box::new(Scripted(Arc::clone(&s))) as Box<dyn Link>)),
            state_dir,
        )
    }

    fn later() -> Instant {
        Instant::now() + Duration::from_secs(30)
    }

    fn value(s: &BmcSweep, q: &str) -> Option<f64> {
        s.readings.iter().find(|r| r.q == q).and_then(|r| r.value)
    }

    #[test]
    fn the_sdr_cache_is_reused_until_the_repository_changes_and_survives_a_restart() {
        let script = Arc::new(Mutex::new(Script {
            addition_ts: 1,
            sensor_reading: vec![24, 0xc0, 0x00],
            ..Script::default()
        }));
        let dir = tempfile::tempdir().unwrap();
        let mut bmc = scripted(&script, Some(dir.path().to_owned()));
        let first = bmc.sweep(later());
        assert_eq!(first.error, None);
        // The air-inlet entity (37h) makes it an inlet temperature.
        assert_eq!(value(&first, "inlet_temperature_celsius"), Some(24.0));
        assert_eq!(value(&first, "agent_ipmi_corrupt_sdrs"), Some(1.0));
        assert_eq!(value(&first, "bmc_up"), Some(1.0));
        assert_eq!(value(&first, "chassis_power_on"), Some(1.0));
        let calls = script.lock().unwrap().get_sdr_calls;
        assert!(calls > 4, "{calls} Get SDR calls");
        bmc.sweep(later());
        assert_eq!(
            script.lock().unwrap().get_sdr_calls,
            calls,
            "cache not reused"
        );
        // A restarted agent takes the cache from disk.
        let mut again = scripted(&script, Some(dir.path().to_owned()));
        assert_eq!(
            value(&again.sweep(later()), "inlet_temperature_celsius"),
            Some(24.0)
        );
        assert_eq!(script.lock().unwrap().get_sdr_calls, calls);
        // A new addition stamp: read again.
        script.lock().unwrap().addition_ts = 2;
        bmc.sweep(later());
        assert!(script.lock().unwrap().get_sdr_calls > calls);
    }

    #[test]
    fn malformed_answers_are_counted_and_skipped_never_a_panic() {
        let script = Arc::new(Mutex::new(Script {
            addition_ts: 1,
            sensor_reading: vec![24], // one byte: too short
            ..Script::default()
        }));
        let mut bmc = scripted(&script, None);
        let s = bmc.sweep(later());
        assert_eq!(s.error, None);
        assert_eq!(value(&s, "agent_ipmi_malformed_responses_total"), Some(1.0));
        assert!(
            s.readings
                .iter()
                .all(|r| r.q != "inlet_temperature_celsius")
        );
        // Garbage for every command: still a sweep, still no panic.
        for cmd in [0x20, 0x22, 0x23, 0x2d, 0x40, 0x43, 0x01, 0x02] {
            let script = Arc::new(Mutex::new(Script {
                addition_ts: 1,
                sensor_reading: vec![24, 0xc0, 0],
                garbage_for: vec![cmd],
                ..Script::default()
            }));
            let s = scripted(&script, None).sweep(later());
            assert_eq!(
                value(&s, "bmc_up"),
                Some(1.0),
                "garbage for {cmd:#04x}: {s:?}"
            );
        }
    }

    #[test]
    fn a_sweep_past_its_deadline_reports_the_bmc_down() {
        let script = Arc::new(Mutex::new(Script {
            addition_ts: 1,
            sensor_reading: vec![24, 0xc0, 0],
            ..Script::default()
        }));
        let s = scripted(&script, None).sweep(Instant::now());
        assert_eq!(s.error, Some(LinkError::Deadline));
        let up = s.readings.iter().find(|r| r.q == "bmc_up").unwrap();
        assert_eq!(up.value, Some(0.0));
        assert_eq!(up.labels["error"], "deadline");
    }
}
