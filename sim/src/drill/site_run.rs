//! A site drill, start to end, watched from every `--collector` at once:
//! precheck (every observer answers, none shows the drill's signals), the
//! operator's fault, watch (each observer's signal as it comes, the wrong ones),
//! settle, restore, clear, result. One JSON line per step, as the other drills.
//!
//! The fault is always the operator's (`--fault-cmd`): a drill cannot cut a
//! site's power or its links itself.

use std::time::{Duration, Instant};

use serde_json::json;
use sitewatch_protocol::Signal;
use tokio::task::JoinSet;

use super::http::{CollectorUrl, HttpError};
use super::run::{DrillError, Log, Options, ms};
use super::sites::{Duty, Seat, SiteJudge, observer_sites};
use super::{Outcome, signal_json};

/// Asks every observer at once, so that a dead one (5 s timeout) does not
/// delay the others' answers; results in the observers' order.
async fn poll_all<T, F, Fut>(urls: &[CollectorUrl], ask: F) -> Vec<Result<T, HttpError>>
where
    T: Send + 'static,
    F: Fn(CollectorUrl) -> Fut,
    Fut: Future<Output = Result<T, HttpError>> + Send + 'static,
{
    let mut set = JoinSet::new();
    for (i, url) in urls.iter().enumerate() {
        let f = ask(url.clone());
        set.spawn(async move { (i, f.await) });
    }
    let mut out: Vec<Option<Result<T, HttpError>>> = (0..urls.len()).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        if let Ok((i, r)) = joined
            && let Some(slot) = out.get_mut(i)
        {
            *slot = Some(r);
        }
    }
    out.into_iter()
        .map(|r| r.unwrap_or_else(|| Err(HttpError::Malformed("poll task failed".into()))))
        .collect()
}

async fn ask_signals(url: CollectorUrl) -> Result<Vec<Signal>, HttpError> {
    url.signals().await
}

async fn ask_peers(url: CollectorUrl) -> Result<Vec<(String, String)>, HttpError> {
    url.peers().await
}

/// What one observer showed during the watch.
#[derive(Debug, Default, Clone)]
struct Seen {
    at: Option<Duration>,
    answered: bool,
    polls_ok: u32,
    polls_failed: u32,
    last_error: Option<&'static str>,
}

pub async fn drill(o: &Options) -> Result<Outcome, DrillError> {
    let s = o.scenario;
    let Some(site) = o.site.clone() else {
        return Err(DrillError::NotAvailable(format!(
            "{s} needs the site drilled: --site"
        )));
    };
    if o.fault_cmd.is_none() {
        return Err(DrillError::NotAvailable(format!(
            "{s} needs the operator's fault: --fault-cmd (e.g. the site's links set down, \
             its power cut at the PDU) and, to see the clear, --restore-cmd"
        )));
    }
    let mut log = Log {
        drill: s.name(),
        fault_at: None,
    };
    let urls: Vec<CollectorUrl> = o.observers.iter().map(|ob| ob.url.clone()).collect();
    let labels: Vec<String> = o.observers.iter().map(|ob| ob.label()).collect();

    // Precheck: every observer answers, and its site is given or learnt.
    let mut before = Vec::new();
    for (r, label) in poll_all(&urls, ask_signals).await.into_iter().zip(&labels) {
        match r {
            Ok(signals) => before.push(signals),
            Err(e) => {
                return Err(DrillError::Precheck(format!(
                    "observer {label} does not answer: {e}"
                )));
            }
        }
    }
    let peers: Vec<_> = poll_all(&urls, ask_peers)
        .await
        .into_iter()
        .map(Result::ok)
        .collect();
    let given: Vec<Option<String>> = o.observers.iter().map(|ob| ob.site.clone()).collect();
    let seats: Vec<Seat> = labels
        .iter()
        .zip(observer_sites(&given, &peers))
        .map(|(label, site)| Seat {
            label: label.clone(),
            site,
        })
        .collect();
    let judge = SiteJudge::new(s, &site, o.peer_site.as_deref(), seats, &before)
        .map_err(DrillError::NotAvailable)?;
    if judge.still_up(&before) {
        return Err(DrillError::Precheck(format!(
            "an observer already shows what the drill raises ({}): restore first",
            judge.expectation()
        )));
    }
    log.step(
        "precheck",
        json!({
            "site": site,
            "peer_site": judge.peer,
            "expect": judge.expectation(),
            "target_ms": ms(o.target),
            "observers": judge.seats.iter().enumerate().map(|(i, seat)| json!({
                "collector": seat.label,
                "site": seat.site,
                "duty": format!("{:?}", judge.duty(i)).to_lowercase(),
                "active": before.get(i).map(|b| b.iter().map(signal_json).collect::<Vec<_>>()),
            })).collect::<Vec<_>>(),
        }),
    );

    let started = Instant::now();
    let mut actions = Vec::new();
    if let Err(e) = super::run::inject_fault(o, &[], "", &mut actions).await {
        log.fault_at = Some(started);
        log.step("fault", json!({"actions": actions, "error": e.to_string()}));
        super::run::restore(o, &[], "", &log).await;
        return Err(e.into());
    }
    log.fault_at = Some(started);
    log.step(
        "fault",
        json!({"actions": actions, "took_ms": ms(started.elapsed())}),
    );

    let (seen, detected, wrong, interrupted) = watch(o, &judge, &urls, started, &log).await;

    let restored_at = Instant::now();
    let restored = super::run::restore(o, &[], "", &log).await;
    let mut all = Vec::new();
    if interrupted {
        all.push("interrupted".to_owned());
    }
    for (i, w) in seen.iter().enumerate() {
        let label = judge.seats.get(i).map_or("?", |s| s.label.as_str());
        // The isolated collector may be out of the drill's reach too.
        if w.polls_ok == 0 && !matches!(judge.duty(i), Duty::None | Duty::Isolated) {
            all.push(format!("observer {label} never answered during the drill"));
        }
    }
    match detected {
        None => all.push(format!(
            "not raised within {}: {}",
            super::limit(o.timeout),
            judge.expectation()
        )),
        Some(d) if d > o.target => all.push(format!(
            "missed the {} target by {}",
            super::limit(o.target),
            super::seconds(d - o.target)
        )),
        _ => {}
    }
    all.extend(wrong.iter().map(|w| format!("wrong signal: {w}")));
    if restored {
        if wait_clear(o, &judge, &urls).await {
            log.step("cleared", json!({"clear_ms": ms(restored_at.elapsed())}));
        } else {
            log.step("not_cleared", json!({"waited_ms": ms(o.clear_timeout)}));
            all.push(format!(
                "the drill's signals still up {} after the restore",
                super::limit(o.clear_timeout)
            ));
        }
    }
    let outcome = if all.is_empty() {
        Outcome::Pass
    } else {
        Outcome::Fail(all.clone())
    };
    log.step(
        "result",
        json!({
            "pass": outcome == Outcome::Pass,
            "expect": judge.expectation(),
            "detect_ms": detected.map(ms),
            "target_ms": ms(o.target),
            "met": detected.is_some_and(|d| d <= o.target),
            "observers": judge.seats.iter().zip(&seen).map(|(seat, w)| json!({
                "collector": seat.label,
                "detect_ms": w.at.map(ms),
                "polls": w.polls_ok,
                "poll_errors": w.polls_failed,
            })).collect::<Vec<_>>(),
            "reasons": all,
        }),
    );
    eprintln!(
        "{}",
        super::sites::summary(&judge, detected, o.timeout, o.target, &outcome)
    );
    Ok(outcome)
}

/// Polls every observer until the drill's signal is raised everywhere it is
/// owed and has settled, or the timeout. Returns each observer's record, the
/// detection time, the wrong signals seen and whether Ctrl-C ended it.
async fn watch(
    o: &Options,
    judge: &SiteJudge,
    urls: &[CollectorUrl],
    started: Instant,
    log: &Log,
) -> (Vec<Seen>, Option<Duration>, Vec<String>, bool) {
    let mut seen = vec![Seen::default(); urls.len()];
    let mut detected = None;
    let mut wrong = Vec::new();
    let mut wrong_seen = std::collections::BTreeSet::new();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let elapsed = started.elapsed();
        match detected {
            Some(d) if elapsed >= d + o.settle => break,
            None if elapsed >= o.timeout => break,
            _ => {}
        }
        let answers = poll_all(urls, ask_signals).await;
        for (i, answer) in answers.into_iter().enumerate() {
            let (Some(w), Some(seat)) = (seen.get_mut(i), judge.seats.get(i)) else {
                continue;
            };
            match answer {
                Ok(signals) => {
                    w.polls_ok += 1;
                    w.answered = true;
                    w.last_error = None;
                    if w.at.is_none()
                        && let Some(sig) = judge.expected(i, &signals)
                    {
                        let d = started.elapsed();
                        w.at = Some(d);
                        log.step(
                            "raised",
                            json!({
                                "observer": seat.label,
                                "signal": signal_json(sig),
                                "detect_ms": ms(d),
                            }),
                        );
                    }
                    for sig in judge.wrong(i, &signals) {
                        let name = format!(
                            "{} {} {} at {} (from {})",
                            sig.level, sig.cause, sig.subject, sig.site, seat.label
                        );
                        if wrong_seen.insert(name.clone()) {
                            log.step(
                                "wrong",
                                json!({"observer": seat.label, "signal": signal_json(sig)}),
                            );
                            wrong.push(name);
                        }
                    }
                }
                Err(e) => {
                    w.polls_failed += 1;
                    if w.last_error != Some(e.kind()) {
                        w.last_error = Some(e.kind());
                        log.step(
                            "poll_error",
                            json!({"observer": seat.label, "error": e.to_string()}),
                        );
                    }
                }
            }
        }
        if detected.is_none() {
            let at: Vec<Option<Duration>> = seen.iter().map(|w| w.at).collect();
            let answered: Vec<bool> = seen.iter().map(|w| w.answered).collect();
            if let Some(d) = judge.detected(&at, &answered) {
                detected = Some(d);
                log.step(
                    "detected",
                    json!({
                        "detect_ms": ms(d),
                        "target_ms": ms(o.target),
                        "met": d <= o.target,
                    }),
                );
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(o.poll) => {}
            _ = &mut ctrl_c => {
                log.step("interrupted", json!({}));
                return (seen, detected, wrong, true);
            }
        }
    }
    (seen, detected, wrong, false)
}

/// Waits until no answering observer shows the drill's signals (an observer
/// still coming back does not hold the clear up, nor confirm it alone).
async fn wait_clear(o: &Options, judge: &SiteJudge, urls: &[CollectorUrl]) -> bool {
    let started = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let answers: Vec<Vec<Signal>> = poll_all(urls, ask_signals)
            .await
            .into_iter()
            .filter_map(Result::ok)
            .collect();
        if !answers.is_empty() && !judge.still_up(&answers) {
            return true;
        }
        if started.elapsed() >= o.clear_timeout {
            return false;
        }
        tokio::select! {
            _ = tokio::time::sleep(o.poll) => {}
            _ = &mut ctrl_c => return false,
        }
    }
}
