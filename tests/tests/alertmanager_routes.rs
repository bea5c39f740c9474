//! The DR plan's notification routes (`packaging/alertmanager/`), run by a real
//! Alertmanager (Debian's prometheus-alertmanager) against local receivers the
//! test starts: an HTTP server recording the WeChat Work API calls and the
//! webhooks (SMS gateway, on-call phone, DingTalk bridge), and an SMTP sink.
//!
//! The configuration is the shipped one with only addresses, secret paths and
//! `group_wait` (1 s, so that nobody waits 5 minutes for the digest) replaced;
//! every replaced text must be in the file. Each severity must reach exactly
//! its channels, with the secrets read from files, and every message must carry
//! site, level, cause, subject, evidence and the cause's runbook link.
//! (`amtool check-config` on the example is in `prometheus_rules.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use serde_json::{Value, json};
use sitewatch_protocol::Cause;
use sitewatch_tests::{
    alertmanager::Alertmanager,
    receivers::{HttpRecorder, HttpRequest, Mail, SmtpSink, WECHAT_TOKEN},
    wait,
};

fn packaging() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../packaging/alertmanager")
}

fn shipped() -> String {
    std::fs::read_to_string(packaging().join("alertmanager.yml")).unwrap()
}

fn amtool(args: &[&str]) -> String {
    let out = Command::new("amtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("amtool is required (scripts/install-test-deps.sh): {e}"));
    assert!(
        out.status.success(),
        "amtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SMTP_PASSWORD: &str = "smtp-secret-from-file";
const SMS_TOKEN: &str = "sms-token-from-file";
const PHONE_TOKEN: &str = "phone-token-from-file";

const SMS: &str = "/sitewatch/sms";
const PHONE: &str = "/sitewatch/call";
const DINGTALK: &str = "/dingtalk/sitewatch/send";
const WECHAT_SEND: &str = "/cgi-bin/message/send";
const ONCALL: &str = "oncall@example.net";
const DIGEST: &str = "ops-digest@example.net";

/// The shipped configuration pointed at the local receivers.
fn config_for_test(dir: &Path, http: &HttpRecorder, smtp: &SmtpSink) -> String {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    // Tokens with the newline an editor leaves (Alertmanager trims them); the
    // SMTP password without one, as the README says: Alertmanager 0.25 sends
    // that file's bytes as they are.
    for (file, secret) in [
        ("smtp.password", SMTP_PASSWORD.to_owned()),
        ("sms-gateway.token", format!("{SMS_TOKEN}\n")),
        ("oncall-phone.token", format!("{PHONE_TOKEN}\n")),
    ] {
        std::fs::write(secrets.join(file), secret).unwrap();
    }
    let base = http.base_url();
    let replacements = [
        (
            "smtp_smarthost: smtp.example.net:587".to_owned(),
            format!("smtp_smarthost: 127.0.0.1:{}", smtp.port),
        ),
        (
            "smtp_require_tls: true".to_owned(),
            // The sink speaks no STARTTLS; AUTH PLAIN over loopback is allowed.
            "smtp_require_tls: false".to_owned(),
        ),
        (
            "/etc/alertmanager/secrets/".to_owned(),
            format!("{}/", secrets.display()),
        ),
        (
            "https://qyapi.weixin.qq.com/cgi-bin/".to_owned(),
            format!("{base}/cgi-bin/"),
        ),
        ("https://sms-gateway.example.net".to_owned(), base.clone()),
        ("https://oncall-phone.example.net".to_owned(), base.clone()),
        ("http://127.0.0.1:8060".to_owned(), base.clone()),
        (
            "  - sitewatch.tmpl".to_owned(),
            format!("  - {}", packaging().join("sitewatch.tmpl").display()),
        ),
    ];
    let mut config = shipped();
    for (from, to) in &replacements {
        assert!(
            config.contains(from.as_str()),
            "alertmanager.yml no longer contains {from:?}"
        );
        config = config.replace(from.as_str(), to);
    }
    let waits = config.matches("group_wait:").count();
    assert!(waits >= 5, "{waits} group_wait settings");
    config
        .lines()
        .map(|l| match l.split_once("group_wait:") {
            Some((indent, _)) => format!("{indent}group_wait: 1s"),
            None => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// An alert as the collector pushes it.
fn alert(cause: Cause, site: &str, subject: &str, severity: &str, evidence: &str) -> Value {
    let name: String = cause
        .as_str()
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    json!({
        "labels": {
            "alertname": format!("Sitewatch{name}"),
            "site": site,
            "level": cause.level().as_str(),
            "cause": cause.as_str(),
            "subject": subject,
            "severity": severity,
        },
        "annotations": {
            "summary": format!("{} {} at {site}", cause.level(), cause),
            "description": evidence,
        },
    })
}

/// The sites of the alerts a webhook call carried (Alertmanager's JSON).
fn webhook_alerts(requests: &[HttpRequest]) -> BTreeSet<(String, String, String)> {
    requests
        .iter()
        .flat_map(|r| {
            let v: Value = serde_json::from_str(&r.body).unwrap();
            v["alerts"].as_array().cloned().unwrap_or_default()
        })
        .map(|a| {
            let l = &a["labels"];
            (
                l["site"].as_str().unwrap().to_owned(),
                l["level"].as_str().unwrap().to_owned(),
                l["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, &str, &str)]) -> BTreeSet<(String, String, String)> {
    items
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect()
}

/// A mail's or message's text says site, level, cause, subject, the evidence
/// and the cause's runbook, and the runbook exists.
fn assert_complete(text: &str, site: &str, cause: Cause, subject: &str, evidence: &str) {
    for must in [
        site,
        cause.level().as_str(),
        cause.as_str(),
        subject,
        evidence,
    ] {
        assert!(text.contains(must), "{must:?} missing from:\n{text}");
    }
    let runbook = format!("/docs/runbooks/{}.md", cause.as_str());
    assert!(text.contains(&runbook), "{runbook} missing from:\n{text}");
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(runbook.trim_start_matches('/'));
    assert!(file.exists(), "{} does not exist", file.display());
}

#[test]
fn each_severity_routes_to_its_receiver_with_the_plans_repeat_interval() {
    let config = packaging().join("alertmanager.yml");
    let config = config.to_str().unwrap();
    for (severity, receiver) in [
        ("critical", "page"),
        ("high", "page"),
        ("medium", "notify"),
        ("low", "digest"),
    ] {
        let out = amtool(&[
            "config",
            "routes",
            "test",
            &format!("--config.file={config}"),
            &format!("severity={severity}"),
            "site=bj1",
            "level=L3",
        ]);
        assert_eq!(out.trim(), receiver, "severity {severity}");
    }
    // The response times: Critical 5 minutes, High 15, Medium 1 hour, Low 4 hours.
    let text = shipped();
    for (severity, repeat) in [
        ("critical", "5m"),
        ("high", "15m"),
        ("medium", "1h"),
        ("low", "4h"),
    ] {
        let start = text
            .find(&format!(r#"- matchers: ['severity="{severity}"']"#))
            .unwrap_or_else(|| panic!("no route for {severity}"));
        let route = &text[start..];
        let end = route[1..]
            .find("- matchers:")
            .map_or(route.len(), |i| i + 1);
        let end = end.min(route.find("\ninhibit_rules:").unwrap_or(route.len()));
        assert!(
            route[..end].contains(&format!("repeat_interval: {repeat}\n")),
            "severity {severity}: repeat_interval {repeat} expected in\n{}",
            &route[..end]
        );
    }
}

#[test]
fn every_cause_has_a_runbook_listed_in_the_index() {
    let runbooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/runbooks");
    let index = std::fs::read_to_string(runbooks.join("README.md")).unwrap();
    for cause in Cause::ALL {
        let file = format!("{}.md", cause.as_str());
        let text = std::fs::read_to_string(runbooks.join(&file))
            .unwrap_or_else(|e| panic!("docs/runbooks/{file}: {e}"));
        assert!(
            text.starts_with(&format!("# {} `{}`", cause.level(), cause.as_str())),
            "{file} must open with its level and cause"
        );
        for section in ["## What it means", "## Check first", "## Recovery"] {
            assert!(text.contains(section), "{file} lacks {section:?}");
        }
        assert!(index.contains(&format!("]({file})")), "index lacks {file}");
    }
}

#[test]
fn the_dingtalk_bridge_templates_render_with_every_fact() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.json");
    let a = alert(
        Cause::Power,
        "bj1",
        "bj1",
        "critical",
        "ups-a on battery for 25 s\ngenerator not running",
    );
    std::fs::write(
        &data,
        json!({
            "receiver": "page", "status": "firing",
            "alerts": [{"status": "firing", "labels": a["labels"], "annotations": a["annotations"],
                        "startsAt": "2025-11-25T14:13:20Z", "endsAt": "0001-01-01T00:00:00Z"}],
            "groupLabels": {"site": "bj1", "level": "L3"},
            "commonLabels": a["labels"], "commonAnnotations": a["annotations"],
            "externalURL": "http://alertmanager.example.net:9093",
        })
        .to_string(),
    )
    .unwrap();
    let glob = packaging().join("sitewatch.tmpl");
    // The bridge's configuration names these two templates.
    let bridge = std::fs::read_to_string(packaging().join("dingtalk/config.yml")).unwrap();
    for name in ["sitewatch.dingtalk.title", "sitewatch.dingtalk.text"] {
        assert!(
            bridge.contains(name),
            "dingtalk/config.yml does not use {name}"
        );
        let out = amtool(&[
            "template",
            "render",
            &format!("--template.glob={}", glob.display()),
            &format!("--template.text={{{{ template \"{name}\" . }}}}"),
            &format!("--template.data={}", data.display()),
        ]);
        assert!(out.contains("[CRITICAL] bj1 L3 power"), "{name}: {out}");
        if name.ends_with("text") {
            assert_complete(&out, "bj1", Cause::Power, "bj1", "generator not running");
        }
    }
}

#[test]
fn a_real_alertmanager_delivers_each_severity_to_exactly_the_plans_channels() {
    let dir = tempfile::tempdir().unwrap();
    let http = HttpRecorder::start();
    let smtp = SmtpSink::start();
    let am = Alertmanager::start_with(dir.path(), &config_for_test(dir.path(), &http, &smtp));

    let power = "ups-a on battery for 25 s\ngenerator genset faulted";
    let psu = "PSU2 failed (psu_ok 0)";
    let cpu = "cpu 93 % for 5 min";
    let generator = "site on generator genset";
    let alerts = json!([
        // Critical, and an L2 of the same site that it explains (inhibited).
        alert(Cause::Power, "bj1", "bj1", "critical", power),
        alert(Cause::HostHardware, "bj1", "web-09", "high", psu),
        // High elsewhere.
        alert(Cause::HostHardware, "sh1", "db-02", "high", psu),
        // Medium.
        alert(Cause::HostResources, "gz1", "app-03:cpu", "medium", cpu),
        // Low (an advisory L3), and an L2 of its site, which it does not inhibit.
        alert(Cause::Power, "sz1", "sz1", "low", generator),
        alert(Cause::HostHardware, "sz1", "web-01", "high", psu),
    ]);
    assert_eq!(am.post_alerts(&alerts), 200, "{}", am.log());

    // What the plan expects: (site, level, severity) per channel.
    let paged = set(&[
        ("bj1", "L3", "critical"),
        ("sh1", "L2", "high"),
        ("sz1", "L2", "high"),
    ]);
    // Every group's notifications: 3 paging groups x 3 webhooks; WeChat for
    // the paging groups and the medium one; e-mail for those and the digest.
    let expected = [("webhook", 9.0), ("wechat", 4.0), ("email", 5.0)];
    wait::until(
        Duration::from_secs(30),
        "every expected notification",
        || {
            let done = http.to(SMS).len() >= 3
                && http.to(PHONE).len() >= 3
                && http.to(DINGTALK).len() >= 3
                && http.to(WECHAT_SEND).len() >= 4
                && smtp.mails().len() >= 5;
            done.then_some(())
        },
    );
    // Alertmanager's own count of what it sent agrees: nothing else went out,
    // and nothing failed.
    wait::until(Duration::from_secs(10), "Alertmanager's counters", || {
        expected
            .iter()
            .all(|(integration, n)| {
                am.metric(&format!(
                    r#"alertmanager_notifications_total{{integration="{integration}"}}"#
                )) == Some(*n)
            })
            .then_some(())
    });
    for (integration, _) in expected {
        assert_eq!(
            am.metric(&format!(
                r#"alertmanager_notifications_failed_total{{integration="{integration}"}}"#
            )),
            Some(0.0),
            "{integration} failures:\n{}",
            am.log()
        );
    }

    // SMS, phone and DingTalk: the paging alerts, nothing else, each with
    // the bearer token read from its file where it has one.
    for (path, token) in [
        (SMS, Some(SMS_TOKEN)),
        (PHONE, Some(PHONE_TOKEN)),
        (DINGTALK, None),
    ] {
        let calls = http.to(path);
        assert_eq!(webhook_alerts(&calls), paged, "{path}");
        for call in &calls {
            assert_eq!(call.method, "POST");
            assert_eq!(
                call.headers.get("authorization").map(String::as_str),
                token.map(|t| format!("Bearer {t}")).as_deref(),
                "{path}"
            );
        }
    }

    // WeChat Work: a token asked with the corporation's id and secret, then one
    // text message per group for the paging and medium alerts.
    let tokens = http.to("/cgi-bin/gettoken");
    assert!(!tokens.is_empty());
    assert_eq!(tokens[0].query("corpid"), Some("ww0000000000000000"));
    assert_eq!(
        tokens[0].query("corpsecret"),
        Some("CHANGE-ME-wechat-application-secret")
    );
    let messages: Vec<Value> = http
        .to(WECHAT_SEND)
        .iter()
        .map(|r| {
            assert_eq!(r.query("access_token"), Some(WECHAT_TOKEN));
            serde_json::from_str(&r.body).unwrap()
        })
        .collect();
    let wechat: Vec<&str> = messages
        .iter()
        .map(|m| {
            assert_eq!(m["msgtype"], "text");
            assert_eq!(m["agentid"], "1000002");
            assert_eq!(m["toparty"], "2");
            m["text"]["content"].as_str().unwrap()
        })
        .collect();
    let find = |needle: &str| wechat.iter().find(|c| c.contains(needle)).copied();
    assert_complete(
        find("[CRITICAL] bj1").unwrap(),
        "bj1",
        Cause::Power,
        "bj1",
        "generator genset faulted",
    );
    assert_complete(
        find("[HIGH] sh1").unwrap(),
        "sh1",
        Cause::HostHardware,
        "db-02",
        psu,
    );
    assert_complete(
        find("[HIGH] sz1").unwrap(),
        "sz1",
        Cause::HostHardware,
        "web-01",
        psu,
    );
    assert_complete(
        find("[MEDIUM] gz1").unwrap(),
        "gz1",
        Cause::HostResources,
        "app-03:cpu",
        cpu,
    );
    assert!(
        wechat
            .iter()
            .all(|c| !c.contains("web-09") && !c.contains(generator)),
        "an inhibited or low alert reached WeChat: {wechat:#?}"
    );

    // E-mail: the on-call list gets the paging and medium alerts, the digest
    // the advisory; the SMTP password came from its file.
    let mails = smtp.mails();
    for m in &mails {
        assert_eq!(
            m.auth,
            Some(("sitewatch@example.net".to_owned(), SMTP_PASSWORD.to_owned()))
        );
        assert_eq!(m.from, "sitewatch@example.net");
    }
    let subject = |m: &Mail| m.header("Subject").unwrap_or_default();
    let oncall = smtp.to(ONCALL);
    let mut subjects: Vec<String> = oncall.iter().map(subject).collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "[CRITICAL] bj1 L3 power: 1 firing",
            "[HIGH] sh1 L2 host_hardware: 1 firing",
            "[HIGH] sz1 L2 host_hardware: 1 firing",
            "[MEDIUM] gz1 L1 host_resources: 1 firing",
        ]
    );
    let critical = oncall
        .iter()
        .find(|m| subject(m).starts_with("[CRITICAL]"))
        .unwrap();
    assert_complete(
        &critical.text(),
        "bj1",
        Cause::Power,
        "bj1",
        "ups-a on battery for 25 s",
    );
    assert!(!critical.text().contains("web-09"), "inhibited L2 mailed");
    let digest = smtp.to(DIGEST);
    assert_eq!(digest.len(), 1, "{digest:#?}");
    assert_eq!(subject(&digest[0]), "[sitewatch digest] sz1: 1 advisory");
    assert_complete(&digest[0].text(), "sz1", Cause::Power, "sz1", generator);
    assert_eq!(mails.len(), oncall.len() + digest.len(), "{mails:#?}");
}
