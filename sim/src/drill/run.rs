//! One drill, start to end: precheck, fault, watch, settle, restore, clear,
//! result. Each step prints one JSON line on stdout; the human summary goes
//! to stderr, so `sitewatch-sim drill ... | jq` sees only JSON.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};
use sitewatch_protocol::Signal;
use thiserror::Error;

use super::http::{CollectorUrl, HttpError};
use super::inject::{self, Device, InjectError};
use super::{BLIP_TAKEOVER, Injection, Judge, Outcome, Scenario, signal_json};

/// Everything a drill is told (see `sitewatch-sim drill --help`).
#[derive(Debug, Clone)]
pub struct Options {
    pub scenario: Scenario,
    /// The first `--collector`: the one a single-site drill polls.
    pub collector: CollectorUrl,
    /// Every `--collector`, with its site when given (`SITE=URL`): the
    /// observers of a site drill.
    pub observers: Vec<Observer>,
    /// `site-link-cut`: the other end of the link.
    pub peer_site: Option<String>,
    /// Simulator control ports; their class decides what each is told.
    pub controls: Vec<String>,
    /// Default: the collector's only site.
    pub site: Option<String>,
    /// `single-host-loss`, `psu-failure`, `disk-failure`: the host that fails.
    pub host: Option<String>,
    /// `network-cut`, `single-host-loss`: the agents to take off the network.
    pub agent_pids: Vec<u32>,
    /// The signal for them: STOP (restored with CONT: a silent link, as a cut
    /// cable is) or KILL (the process gone; not restorable from here).
    pub agent_signal: String,
    pub fault_cmd: Option<String>,
    pub restore_cmd: Option<String>,
    pub target: Duration,
    /// How long to wait for the expected signal.
    pub timeout: Duration,
    /// How long to keep watching after it came, for signals that should not.
    pub settle: Duration,
    pub clear_timeout: Duration,
    /// `power-blip`: the collector's generator start grace, the margin past it,
    /// and when the generator takes over.
    pub grace: Duration,
    pub margin: Duration,
    pub generator_start: Duration,
    pub poll: Duration,
}

/// A collector a site drill watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observer {
    pub url: CollectorUrl,
    pub site: Option<String>,
}

impl Observer {
    /// `http://HOST:PORT`, or `SITE=http://HOST:PORT` to say where it stands.
    pub fn parse(arg: &str) -> Result<Observer, HttpError> {
        let (site, url) = match arg.split_once('=') {
            Some((site, url)) if !site.contains("://") && !site.is_empty() => {
                (Some(site.to_owned()), url)
            }
            _ => (None, arg),
        };
        Ok(Observer {
            url: CollectorUrl::parse(url)?,
            site,
        })
    }

    /// How the report names it.
    pub fn label(&self) -> String {
        format!("http://{}{}", self.url.authority, self.url.prefix)
    }
}

/// Why a drill could not run at all (nothing was injected, or the injection
/// itself failed and was rolled back).
#[derive(Debug, Error)]
pub enum DrillError {
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error(transparent)]
    Inject(#[from] InjectError),
    #[error("{0}")]
    NotAvailable(String),
    #[error("{0}")]
    Precheck(String),
}

impl DrillError {
    pub fn kind(&self) -> &'static str {
        match self {
            DrillError::Http(e) => e.kind(),
            DrillError::Inject(e) => e.kind(),
            DrillError::NotAvailable(_) => "not_available",
            DrillError::Precheck(_) => "precheck",
        }
    }
}

/// The drill's JSON lines.
pub(super) struct Log {
    pub(super) drill: &'static str,
    pub(super) fault_at: Option<Instant>,
}

impl Log {
    pub(super) fn step(&self, step: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("drill".into(), json!(self.drill));
        line.insert("step".into(), json!(step));
        let ts = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        line.insert("ts".into(), json!(ts));
        if let Some(at) = self.fault_at {
            line.insert("t_ms".into(), json!(at.elapsed().as_millis() as u64));
        }
        if let Value::Object(fields) = fields {
            line.extend(fields);
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) must not stop a restore.
        let _ = writeln!(out, "{}", Value::Object(line));
        let _ = out.flush();
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

/// What the watch saw.
#[derive(Debug, Default)]
struct Watch {
    detected: Option<Duration>,
    wrong: Vec<String>,
    last: Vec<Signal>,
    polls_failed: u32,
    polls_ok: u32,
    interrupted: bool,
}

/// Runs the drill; `Ok` is its outcome, `Err` means it could not run.
pub async fn drill(o: &Options) -> Result<Outcome, DrillError> {
    if o.scenario.is_site() {
        return super::site_run::drill(o).await;
    }
    if o.observers.len() > 1 {
        return Err(DrillError::NotAvailable(format!(
            "{} watches one collector: give one --collector (several are for the site drills)",
            o.scenario
        )));
    }
    let mut log = Log {
        drill: o.scenario.name(),
        fault_at: None,
    };
    // What cannot be injected here is said before anything is asked of the
    // collector.
    let devices = prepare(o).await?;
    let site = match &o.site {
        Some(s) => s.clone(),
        None => match o.collector.sites().await?.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(DrillError::Precheck(
                    "the collector knows no site yet".into(),
                ));
            }
            many => {
                return Err(DrillError::Precheck(format!(
                    "the collector has several sites ({}): say which with --site",
                    many.join(", ")
                )));
            }
        },
    };
    let before = o.collector.signals().await?;
    let judge = Judge::new(o.scenario, &site, o.host.as_deref(), &before);
    if judge.still_up(&before) {
        return Err(DrillError::Precheck(format!(
            "{site} already has a {} signal: restore the site first",
            o.scenario.watched()
        )));
    }
    let fault_signal = o.agent_signal.to_ascii_uppercase();
    log.step(
        "precheck",
        json!({
            "site": site,
            "collector": format!("http://{}{}", o.collector.authority, o.collector.prefix),
            "expect": o.scenario.expectation(),
            "target_ms": ms(o.target),
            "devices": devices.iter().map(|d| json!({"control": d.addr, "class": d.class})).collect::<Vec<_>>(),
            "agents": o.agent_pids,
            "active": before.iter().filter(|s| s.site == site).map(signal_json).collect::<Vec<_>>(),
        }),
    );

    // The fault: the clock starts before the first command, so that the time
    // measured is never shorter than the real one.
    let started = Instant::now();
    let touched = touched(o.scenario, &devices);
    let mut actions = Vec::new();
    if let Err(e) = inject_fault(o, &touched, &fault_signal, &mut actions).await {
        log.fault_at = Some(started);
        log.step("fault", json!({"actions": actions, "error": e.to_string()}));
        restore(o, &touched, &fault_signal, &log).await;
        return Err(e.into());
    }
    log.fault_at = Some(started);
    log.step(
        "fault",
        json!({"actions": actions, "took_ms": ms(started.elapsed())}),
    );

    let watch = watch(o, &judge, &touched, started, &log).await;

    if let Some(signal) = judge.expected(&watch.last) {
        log.step(
            "settled",
            json!({"signal": signal_json(signal), "inhibits": super::inhibited(signal)}),
        );
    }
    let restored_at = Instant::now();
    let restored = restore(o, &touched, &fault_signal, &log).await;
    let mut reasons = Vec::new();
    if restored {
        let cleared = wait_clear(o, &judge).await;
        match cleared {
            Some(()) => log.step("cleared", json!({"clear_ms": ms(restored_at.elapsed())})),
            None => {
                log.step("not_cleared", json!({"waited_ms": ms(o.clear_timeout)}));
                reasons.push(format!(
                    "{} still up {} after the restore",
                    o.scenario.watched(),
                    super::limit(o.clear_timeout)
                ));
            }
        }
    }

    let observed = match (watch.detected, o.scenario.expected()) {
        (_, None) => o.grace + o.margin,
        (Some(d), _) => d,
        (None, _) => o.timeout,
    };
    let mut all = Vec::new();
    if watch.interrupted {
        all.push("interrupted".to_owned());
    }
    if watch.polls_ok == 0 {
        all.push("the collector never answered during the drill".to_owned());
    }
    match (o.scenario.expected(), watch.detected) {
        (Some(cause), None) => all.push(format!(
            "no {} {cause} within {}",
            cause.level(),
            super::limit(o.timeout)
        )),
        (Some(_), Some(d)) if d > o.target => all.push(format!(
            "missed the {} target by {}",
            super::limit(o.target),
            super::seconds(d - o.target)
        )),
        _ => {}
    }
    all.extend(watch.wrong.iter().map(|w| format!("wrong signal: {w}")));
    all.extend(reasons);
    let outcome = if all.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(all.clone())
    };
    log.step(
        "result",
        json!({
            "pass": outcome == Outcome::Pass,
            "expect": o.scenario.expectation(),
            "detect_ms": watch.detected.map(ms),
            "target_ms": ms(o.target),
            "met": o.scenario.expected().is_none() || watch.detected.is_some_and(|d| d <= o.target),
            "polls": watch.polls_ok,
            "poll_errors": watch.polls_failed,
            "reasons": all,
        }),
    );
    eprintln!(
        "{}",
        super::summary(o.scenario, watch.detected, observed, o.target, &outcome)
    );
    Ok(outcome)
}

/// Checks that the scenario can be injected here, and learns the devices.
async fn prepare(o: &Options) -> Result<Vec<Device>, DrillError> {
    let s = o.scenario;
    let devices = inject::classify(&o.controls).await?;
    match s.injection() {
        Injection::Devices if o.fault_cmd.is_none() => {
            for class in s.needed_classes() {
                if !devices.iter().any(|d| d.class == *class) {
                    return Err(DrillError::NotAvailable(format!(
                        "{s} needs a simulated {class} among --control (have: {}); \
                         `sitewatch-sim site` prints its control ports, or give --fault-cmd",
                        if devices.is_empty() {
                            "none".to_owned()
                        } else {
                            devices
                                .iter()
                                .map(|d| format!("{} {}", d.class, d.addr))
                                .collect::<Vec<_>>()
                                .join(", ")
                        }
                    )));
                }
            }
        }
        Injection::Agents if o.fault_cmd.is_none() => {
            if o.agent_pids.is_empty() {
                return Err(DrillError::NotAvailable(format!(
                    "{s} needs the agents to take off the network: --agent-pid PID (repeat), \
                     or a --fault-cmd that cuts them (and a --restore-cmd)"
                )));
            }
            if s == Scenario::SingleHostLoss && o.agent_pids.len() != 1 {
                return Err(DrillError::NotAvailable(format!(
                    "{s} takes exactly one --agent-pid"
                )));
            }
            if !matches!(
                o.agent_signal.to_ascii_uppercase().as_str(),
                "STOP" | "KILL"
            ) {
                return Err(DrillError::NotAvailable(
                    "--agent-signal is STOP or KILL".into(),
                ));
            }
        }
        Injection::External if o.fault_cmd.is_none() => {
            return Err(DrillError::NotAvailable(format!(
                "{s} is not available in the simulated site: it needs a disk (SMART) or a \
                 BMC (IPMI) fault, which no sitewatch-sim device provides; give a --fault-cmd \
                 that causes it (e.g. a fake smartctl's output swapped, an ipmi_sim console \
                 command) and a --restore-cmd"
            )));
        }
        _ => {}
    }
    Ok(devices)
}

/// The devices the scenario sends commands to (and restores afterwards).
fn touched(s: Scenario, devices: &[Device]) -> Vec<Device> {
    devices
        .iter()
        .filter(|d| !s.device_commands(&d.class).is_empty())
        .cloned()
        .collect()
}

pub(super) async fn inject_fault(
    o: &Options,
    touched: &[Device],
    fault_signal: &str,
    actions: &mut Vec<Value>,
) -> Result<(), InjectError> {
    for d in touched {
        for command in o.scenario.device_commands(&d.class) {
            actions.push(inject::device_command(d, command).await?);
        }
    }
    if !o.agent_pids.is_empty() && o.scenario.injection() == Injection::Agents {
        actions.push(inject::signal(&o.agent_pids, fault_signal).await?);
    }
    if let Some(cmd) = &o.fault_cmd {
        actions.push(inject::shell(cmd, Duration::from_secs(30)).await?);
    }
    Ok(())
}

/// Polls the collector until the expected signal has come and settled, or the
/// window is over. Ctrl-C ends the watch early (the fault is still restored).
async fn watch(
    o: &Options,
    judge: &Judge,
    touched: &[Device],
    started: Instant,
    log: &Log,
) -> Watch {
    let mut w = Watch::default();
    let window = match o.scenario.expected() {
        Some(_) => o.timeout,
        None => o.grace + o.margin,
    };
    let mut took_over = o.scenario != Scenario::PowerBlip;
    let mut wrong_seen = std::collections::BTreeSet::new();
    let mut last_error: Option<&'static str> = None;
    let mut advisory_seen = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let elapsed = started.elapsed();
        if let Some(d) = w.detected {
            if elapsed >= d + o.settle {
                break;
            }
        } else if elapsed >= window {
            break;
        }
        if !took_over && elapsed >= o.generator_start {
            took_over = true;
            let mut actions = Vec::new();
            for d in touched.iter().filter(|d| d.class == "generator") {
                match inject::device_command(d, BLIP_TAKEOVER).await {
                    Ok(a) => actions.push(a),
                    Err(e) => actions.push(json!({"control": d.addr, "error": e.to_string()})),
                }
            }
            log.step("takeover", json!({"actions": actions}));
        }
        match o.collector.signals().await {
            Ok(signals) => {
                w.polls_ok += 1;
                last_error = None;
                if w.detected.is_none()
                    && let Some(s) = judge.expected(&signals)
                {
                    let d = started.elapsed();
                    w.detected = Some(d);
                    log.step(
                        "raised",
                        json!({
                            "signal": signal_json(s),
                            "detect_ms": ms(d),
                            "target_ms": ms(o.target),
                            "met": d <= o.target,
                        }),
                    );
                }
                // The advisory a blip should bring (on generator): shown, not judged.
                if !advisory_seen
                    && let Some(s) = signals.iter().find(|s| {
                        s.site == judge.site
                            && s.cause == o.scenario.watched()
                            && !super::is_alarm(s)
                    })
                {
                    advisory_seen = true;
                    log.step("advisory", json!({"signal": signal_json(s)}));
                }
                for s in judge.wrong(&signals) {
                    let name = format!("{} {} {}", s.level, s.cause, s.subject);
                    if wrong_seen.insert(name.clone()) {
                        log.step("wrong", json!({"signal": signal_json(s)}));
                        w.wrong.push(name);
                    }
                }
                w.last = signals;
            }
            Err(e) => {
                w.polls_failed += 1;
                if last_error != Some(e.kind()) {
                    last_error = Some(e.kind());
                    log.step("poll_error", json!({"error": e.to_string()}));
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(o.poll) => {}
            _ = &mut ctrl_c => {
                w.interrupted = true;
                log.step("interrupted", json!({}));
                break;
            }
        }
    }
    w
}

/// Takes the fault away; false when it cannot be (agents killed, no restore
/// command), so there is no clear to wait for.
pub(super) async fn restore(
    o: &Options,
    touched: &[Device],
    fault_signal: &str,
    log: &Log,
) -> bool {
    let mut actions = Vec::new();
    let mut restorable = true;
    for d in touched {
        match inject::device_command(d, "healthy").await {
            Ok(a) => actions.push(a),
            Err(e) => actions.push(json!({"control": d.addr, "error": e.to_string()})),
        }
    }
    if !o.agent_pids.is_empty() && o.scenario.injection() == Injection::Agents {
        if fault_signal == "STOP" {
            match inject::signal(&o.agent_pids, "CONT").await {
                Ok(a) => actions.push(a),
                Err(e) => actions.push(json!({"error": e.to_string()})),
            }
        } else if o.restore_cmd.is_none() {
            restorable = false;
        }
    }
    if let Some(cmd) = &o.restore_cmd {
        match inject::shell(cmd, Duration::from_secs(30)).await {
            Ok(a) => actions.push(a),
            Err(e) => actions.push(json!({"error": e.to_string()})),
        }
    } else if o.scenario.injection() == Injection::External {
        restorable = false;
    }
    if restorable {
        log.step("restore", json!({"actions": actions}));
    } else {
        log.step(
            "restore",
            json!({"actions": actions, "skipped": "the fault cannot be undone from here \
                   (agents killed, or no --restore-cmd): restart or repair, then check the clear"}),
        );
    }
    restorable
}

/// Waits for the clear; Ctrl-C gives up on it (once the watch has listened for
/// SIGINT, the default "terminate" is gone for good, so it must be heard here too).
async fn wait_clear(o: &Options, judge: &Judge) -> Option<()> {
    let started = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        if let Ok(signals) = o.collector.signals().await
            && !judge.still_up(&signals)
        {
            return Some(());
        }
        if started.elapsed() >= o.clear_timeout {
            return None;
        }
        tokio::select! {
            _ = tokio::time::sleep(o.poll) => {}
            _ = &mut ctrl_c => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_observer_is_a_url_or_a_site_and_a_url() {
        let o = Observer::parse("bj1=http://10.1.0.11:9184").unwrap();
        assert_eq!(o.site.as_deref(), Some("bj1"));
        assert_eq!(o.label(), "http://10.1.0.11:9184");
        let o = Observer::parse("http://10.1.0.11:9184/sw").unwrap();
        assert_eq!(o.site, None);
        assert_eq!(o.label(), "http://10.1.0.11:9184/sw");
        assert_eq!(Observer::parse("bj1=ftp://x").unwrap_err().kind(), "url");
    }
}
