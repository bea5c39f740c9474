#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `net` source against real sockets: loopback, and network namespaces the
//! tests create (a veth pair: one end in the root namespace, where the agent
//! runs, the other in the namespace). Traffic goes only to loopback and to those
//! namespaces.
//!
//! The namespace tests need root (`ip netns`); without it they write
//! `SKIPPED <test>: <why>` to stderr (uncaptured, so it shows in a plain
//! `cargo test`) and return. The netem test also needs the `sch_netem` qdisc and
//! says so the same way when it is missing: here that line means nothing was
//! measured, whatever libtest's `ok` says.
//!
//! Two `#[ignore]`d helpers are not tests: the namespace tests run this binary
//! again inside a namespace to listen there (`helper_listen`) or to try ICMP
//! sockets there (`helper_icmp`).

use std::{
    io::{BufRead, BufReader, Read as _, Write as _},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use sitewatch_agent::{
    source::net::config::{Method, NetSourceConfig, NetTarget, Role},
    source::{
        Poll,
        net::{NetSource, SocketKind},
    },
};
use sitewatch_protocol::{Reading, ReadingState};

const LISTEN_ENV: &str = "SITEWATCH_NET_HELPER_LISTEN";
const ICMP_ENV: &str = "SITEWATCH_NET_HELPER_ICMP";

fn target(name: &str, address: &str, role: Role, interval_ms: u64, timeout_ms: u64) -> NetTarget {
    let mut t = NetTarget::new(name, address, role);
    t.interval = Duration::from_millis(interval_ms);
    t.timeout = Duration::from_millis(timeout_ms);
    t
}

fn source(targets: Vec<NetTarget>) -> NetSource {
    NetSource::new(&NetSourceConfig {
        enabled: true,
        interval: None,
        targets,
    })
    .unwrap()
}

async fn poll(source: &mut NetSource) -> Vec<Reading> {
    let polled = tokio::time::timeout(Duration::from_secs(10), source.poll())
        .await
        .expect("a poll finishes within its targets' timeouts")
        .unwrap();
    assert!(polled.events.is_empty());
    polled.readings
}

fn find<'a>(readings: &'a [Reading], dev: &str, q: &str) -> &'a Reading {
    readings
        .iter()
        .find(|r| r.dev == dev && r.q == q)
        .unwrap_or_else(|| panic!("no {q} of {dev} in {readings:#?}"))
}

fn up(readings: &[Reading], dev: &str) -> (f64, String) {
    let r = find(readings, dev, "probe_up");
    (r.value.unwrap(), r.labels["reason"].clone())
}

fn rtt(readings: &[Reading], dev: &str) -> Option<f64> {
    find(readings, dev, "probe_rtt_seconds").value
}

// ---------------------------------------------------------------- loopback

#[tokio::test]
async fn icmp_echo_to_ipv4_loopback_is_up_with_a_measured_rtt() {
    let mut s = source(vec![target("lo", "127.0.0.1", Role::Switch, 200, 150)]);
    eprintln!("ICMP socket kind here: {:?}", s.icmp_socket());
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "lo"), (1.0, "ok".into()));
    let probe_up = find(&r, "lo", "probe_up");
    assert_eq!(probe_up.state, ReadingState::Ok);
    assert_eq!(probe_up.labels["method"], "icmp");
    assert_eq!(probe_up.labels["role"], "switch");
    assert_eq!(probe_up.labels["address"], "127.0.0.1");
    let seconds = rtt(&r, "lo").unwrap();
    assert!(seconds > 0.0 && seconds < 0.1, "{seconds}");
    assert_eq!(find(&r, "lo", "probe_loss_ratio").value, Some(0.0));
    // Later probes keep answering, each with its own time.
    let first_ts = probe_up.ts.unwrap();
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "lo").0, 1.0);
    assert!(find(&r, "lo", "probe_up").ts.unwrap() >= first_ts + 350);
}

#[tokio::test]
async fn many_concurrent_icmp_probes_each_get_their_own_reply() {
    // 127.0.0.0/8 is all loopback: 40 addresses, 40 concurrent sockets, each of
    // which (raw) also sees the others' replies and must pick its own.
    let targets = (1..=40)
        .map(|i| {
            target(
                &format!("lo-{i}"),
                &format!("127.0.0.{i}"),
                Role::Switch,
                200,
                150,
            )
        })
        .collect();
    let mut s = source(targets);
    for _ in 0..3 {
        let r = poll(&mut s).await;
        for i in 1..=40 {
            assert_eq!(up(&r, &format!("lo-{i}")), (1.0, "ok".into()), "lo-{i}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn icmp_echo_to_ipv6_loopback_is_up() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        skipped(
            "icmp_echo_to_ipv6_loopback_is_up",
            "no IPv6 loopback (::1) here",
        );
        return;
    }
    let mut s = source(vec![target("lo6", "::1", Role::Router, 200, 150)]);
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "lo6"), (1.0, "ok".into()));
    assert!(rtt(&r, "lo6").unwrap() < 0.1);
}

#[tokio::test]
async fn tcp_connect_to_a_listener_is_up_and_to_a_closed_port_is_refused() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let open = listener.local_addr().unwrap();
    // A port that was free a moment ago and has no listener now.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut s = source(vec![
        target("open", &open.to_string(), Role::Service, 200, 150),
        target("closed", &closed.to_string(), Role::Service, 200, 150),
        target("closed-router", &closed.to_string(), Role::Router, 200, 150),
    ]);
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "open"), (1.0, "ok".into()));
    assert_eq!(find(&r, "open", "probe_up").labels["method"], "tcp");
    assert!(rtt(&r, "open").unwrap() < 0.1);
    assert_eq!(up(&r, "closed"), (0.0, "refused".into()));
    assert_eq!(rtt(&r, "closed"), None);
    assert_eq!(
        find(&r, "closed", "probe_rtt_seconds").state,
        ReadingState::Unknown
    );
    // Down: a warning for a service, critical for network infrastructure.
    assert_eq!(find(&r, "closed", "probe_up").state, ReadingState::Warning);
    assert_eq!(
        find(&r, "closed-router", "probe_up").state,
        ReadingState::Critical
    );
    assert_eq!(find(&r, "closed", "probe_loss_ratio").value, Some(1.0));
}

/// A listener whose accept queue is full drops new SYNs without an answer, as a
/// DROP rule would: the loopback stand-in for a filtered port.
fn silent_listener() -> (tokio::net::TcpListener, std::net::TcpStream) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    // Backlog 0 holds one connection: this one, never accepted.
    let filler = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}

#[tokio::test]
async fn a_silent_port_times_out_without_delaying_another_target() {
    let (silent, _filler) = silent_listener();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut s = source(vec![
        target(
            "silent",
            &silent.local_addr().unwrap().to_string(),
            Role::Service,
            400,
            300,
        ),
        target(
            "fast",
            &listener.local_addr().unwrap().to_string(),
            Role::Service,
            100,
            100,
        ),
    ]);
    let started = Instant::now();
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "silent"), (0.0, "timeout".into()));
    assert_eq!(up(&r, "fast").0, 1.0);
    // The fast target keeps its 100 ms rhythm while the silent one hangs for 300 ms each time.
    let mut fast_probes = std::collections::BTreeSet::new();
    while started.elapsed() < Duration::from_millis(1500) {
        let r = poll(&mut s).await;
        fast_probes.insert(find(&r, "fast", "probe_up").ts.unwrap());
        assert_eq!(up(&r, "fast").0, 1.0);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(fast_probes.len() >= 10, "{} fast probes", fast_probes.len());
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "silent"), (0.0, "timeout".into()));
    assert_eq!(find(&r, "silent", "probe_loss_ratio").value, Some(1.0));
}

#[test]
fn once_prints_probe_readings_with_their_own_time() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "site = \"bj1\"\n{host_off}\
             [[sources.net.targets]]\nname = \"svc\"\naddress = \"{}\"\nrole = \"service\"\n",
            listener.local_addr().unwrap(),
            // Only a build with the host source has (and turns off) its table.
            host_off = if cfg!(feature = "host") {
                "[sources.host]\nenabled = false\n"
            } else {
                ""
            },
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sitewatch-agent"))
        .args(["once", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Reading> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(up(&lines, "svc"), (1.0, "ok".into()));
    assert!(lines.iter().all(|r| r.ts.is_some() && r.src == "net"));
}

// ---------------------------------------------------------- namespaces

/// A network namespace joined to the root namespace by a veth pair:
/// `root_addr` (root side) <-> `ns_addr` (inside), a /29 with `absent_addr`
/// unassigned (nobody answers ARP for it). Removed on drop, even after a failure.
struct Netns {
    name: String,
    root_if: String,
    ns_if: String,
    root_addr: String,
    ns_addr: String,
    absent_addr: String,
}

/// Says that a test did not run and why, on the real stderr: libtest captures
/// `eprintln!` of a passing test, and a skip must be seen, never mistaken for a pass.
fn skipped(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

fn ip(args: &[&str]) -> Output {
    Command::new("ip").args(args).output().unwrap()
}

fn check(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    /// `tag` keeps the tests of one process apart; the pid keeps processes apart.
    /// `None` (with a SKIPPED line) where namespaces cannot be made.
    fn create(test: &str, tag: u32) -> Option<Netns> {
        let pid = std::process::id();
        // 10.(200+tag).x.y/29: unique per pid modulo 8192 and per tag.
        let third = (pid >> 5) & 0xff;
        let base = (pid & 0x1f) << 3;
        let net = format!("10.{}.{third}", 200 + tag);
        let ns = Netns {
            name: format!("sitewatch-test-{pid}-{tag}"),
            root_if: format!("sw{pid}t{tag}r"),
            ns_if: format!("sw{pid}t{tag}n"),
            root_addr: format!("{net}.{}", base + 1),
            ns_addr: format!("{net}.{}", base + 2),
            absent_addr: format!("{net}.{}", base + 3),
        };
        remove_leftovers();
        // Leftovers of an earlier run that died with the same pid.
        ns.remove();
        let out = ip(&["netns", "add", &ns.name]);
        if !out.status.success() {
            skipped(
                test,
                &format!(
                    "cannot create a network namespace (`ip netns add`: {}); run the tests as root to include it",
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            );
            return None;
        }
        // From here on, `ns` is dropped (and cleaned up) if anything fails.
        check(
            ip(&[
                "link",
                "add",
                &ns.root_if,
                "type",
                "veth",
                "peer",
                "name",
                &ns.ns_if,
            ]),
            "veth",
        );
        check(
            ip(&["link", "set", &ns.ns_if, "netns", &ns.name]),
            "move veth",
        );
        check(
            ip(&[
                "addr",
                "add",
                &format!("{}/29", ns.root_addr),
                "dev",
                &ns.root_if,
            ]),
            "root address",
        );
        check(ip(&["link", "set", &ns.root_if, "up"]), "root link up");
        ns.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/29", ns.ns_addr),
            "dev",
            &ns.ns_if,
        ]);
        ns.exec_ok(&["ip", "link", "set", &ns.ns_if, "up"]);
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        Some(ns)
    }

    fn exec(&self, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .output()
            .unwrap()
    }

    fn exec_ok(&self, args: &[&str]) {
        check(self.exec(args), &args.join(" "));
    }

    fn remove(&self) {
        // Deleting the namespace destroys its veth end, and with it the pair.
        let _ = ip(&["netns", "del", &self.name]);
        let _ = ip(&["link", "del", &self.root_if]);
    }

    /// Runs this test binary's `helper` inside the namespace.
    fn helper(&self, helper: &str, env: (&str, &str), prefix: &[&str]) -> Helper {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).args(prefix);
        if prefix.is_empty() {
            cmd.arg(&exe);
        } else {
            // capsh runs bash: `-c 'exec "$0" ...' exe`.
            cmd.args(["-c", "exec \"$0\" \"$@\""]).arg(&exe);
        }
        let child = cmd
            .args([
                "--exact",
                helper,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(env.0, env.1)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Helper { child }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes the namespaces (and so their veth pairs) of test processes that were
/// killed before their `Drop` could run (a panic does run it).
fn remove_leftovers() {
    let list = ip(&["netns", "list"]);
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix("sitewatch-test-")
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A helper process; killed on drop.
struct Helper {
    child: Child,
}

impl Helper {
    /// The text after `marker` on the first stdout line holding it (libtest
    /// prints `test name ... ` before the helper's own output on that line).
    /// Waits 10 s at most: a helper that never says it is a failure, not a hang.
    fn line(&mut self, marker: &str) -> String {
        let stdout = self.child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let owned = marker.to_owned();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(at) = line.find(&owned) {
                    let _ = tx.send(line[at + owned.len()..].trim().to_owned());
                    return;
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(rest) => rest,
            Err(e) => {
                let _ = self.child.kill();
                let mut stderr = String::new();
                let _ = self
                    .child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut stderr);
                panic!("the helper printed no {marker:?} line ({e}); stderr: {stderr}");
            }
        }
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "helper: listens inside a namespace for the namespace tests"]
fn helper_listen() {
    let Ok(addr) = std::env::var(LISTEN_ENV) else {
        return;
    };
    let listener = std::net::TcpListener::bind(addr).unwrap();
    println!("LISTENING {}", listener.local_addr().unwrap());
    std::io::stdout().flush().unwrap();
    // Accepted and closed at once, so that probes never fill the accept queue.
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    // Lives until the parent kills it or closes stdin.
    let mut sink = String::new();
    let _ = std::io::stdin().read_line(&mut sink);
}

#[test]
#[ignore = "helper: tries ICMP sockets inside a namespace for the namespace tests"]
fn helper_icmp() {
    if std::env::var(ICMP_ENV).is_err() {
        return;
    }
    let config = NetSourceConfig {
        enabled: true,
        interval: None,
        targets: vec![target("lo", "127.0.0.1", Role::Switch, 200, 150)],
    };
    match NetSource::new(&config) {
        Err(e) => println!("ERROR {e}"),
        Ok(mut s) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let r = rt.block_on(poll(&mut s));
            println!("KIND {:?} UP {}", s.icmp_socket().unwrap(), up(&r, "lo").0);
        }
    }
}

async fn wait_until(
    s: &mut NetSource,
    within: Duration,
    mut done: impl FnMut(&[Reading]) -> bool,
) -> (Vec<Reading>, Duration) {
    let started = Instant::now();
    loop {
        let r = poll(s).await;
        if done(&r) {
            return (r, started.elapsed());
        }
        assert!(started.elapsed() < within, "not within {within:?}: {r:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn namespace_target_goes_down_within_three_intervals_of_its_link_going_down() {
    let test = "namespace_target_goes_down_within_three_intervals_of_its_link_going_down";
    let Some(ns) = Netns::create(test, 0) else {
        return;
    };
    let mut listener = ns.helper(
        "helper_listen",
        (LISTEN_ENV, &format!("{}:0", ns.ns_addr)),
        &[],
    );
    let listening = listener.line("LISTENING ");
    let interval = 200;
    let mut s = source(vec![
        target("ns-router", &ns.ns_addr, Role::Router, interval, 150),
        target("ns-service", &listening, Role::Service, interval, 150),
    ]);
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "ns-router"), (1.0, "ok".into()));
    assert_eq!(up(&r, "ns-service"), (1.0, "ok".into()));
    assert!(rtt(&r, "ns-router").unwrap() < 0.1);
    assert!(rtt(&r, "ns-service").unwrap() < 0.1);

    ns.exec_ok(&["ip", "link", "set", &ns.ns_if, "down"]);
    let down_at = sitewatch_agent::unix_ms();
    let (r, _) = wait_until(&mut s, Duration::from_secs(5), |r| {
        ["ns-router", "ns-service"].iter().all(|dev| {
            let p = find(r, dev, "probe_up");
            p.ts.unwrap() >= down_at && p.value == Some(0.0)
        })
    })
    .await;
    for dev in ["ns-router", "ns-service"] {
        let p = find(&r, dev, "probe_up");
        // The first probe started after the link went down already failed.
        let late = p.ts.unwrap() - down_at;
        assert!(late <= 3 * interval as i64, "{dev}: down {late} ms after");
        assert_eq!(p.labels["reason"], "timeout", "{dev}");
        assert_eq!(rtt(&r, dev), None);
    }
    assert_eq!(
        find(&r, "ns-router", "probe_up").state,
        ReadingState::Critical
    );
    assert_eq!(
        find(&r, "ns-service", "probe_up").state,
        ReadingState::Warning
    );

    // Back up: reachable again, and the window remembers the losses.
    ns.exec_ok(&["ip", "link", "set", &ns.ns_if, "up"]);
    let (r, _) = wait_until(&mut s, Duration::from_secs(5), |r| {
        up(r, "ns-router").0 == 1.0 && up(r, "ns-service").0 == 1.0
    })
    .await;
    let loss = find(&r, "ns-router", "probe_loss_ratio").value.unwrap();
    assert!(loss > 0.0 && loss < 1.0, "{loss}");
}

#[tokio::test]
async fn namespace_closed_port_is_refused_and_filtered_ports_and_absent_hosts_time_out() {
    let test = "namespace_closed_port_is_refused_and_filtered_ports_and_absent_hosts_time_out";
    let Some(ns) = Netns::create(test, 1) else {
        return;
    };
    // A filtered port without iptables: policy routing drops incoming SYNs to
    // port 7 in the namespace without an answer, as a DROP rule would. The
    // `local` rule moves behind it (rule 0 would deliver them first).
    ns.exec_ok(&[
        "ip",
        "rule",
        "add",
        "pref",
        "10",
        "ipproto",
        "tcp",
        "dport",
        "7",
        "blackhole",
    ]);
    ns.exec_ok(&["ip", "rule", "add", "pref", "100", "lookup", "local"]);
    ns.exec_ok(&["ip", "rule", "del", "pref", "0"]);
    let mut listener = ns.helper(
        "helper_listen",
        (LISTEN_ENV, &format!("{}:0", ns.ns_addr)),
        &[],
    );
    let listening = listener.line("LISTENING ");
    let port = listening.rsplit_once(':').unwrap().1;
    let mut s = source(vec![
        target("icmp", &ns.ns_addr, Role::Router, 300, 250),
        target("open", &listening, Role::Service, 300, 250),
        target(
            "closed",
            &format!("{}:9", ns.ns_addr),
            Role::Service,
            300,
            250,
        ),
        target(
            "filtered",
            &format!("{}:7", ns.ns_addr),
            Role::Service,
            300,
            250,
        ),
        target(
            "absent",
            &format!("{}:{port}", ns.absent_addr),
            Role::Service,
            300,
            250,
        ),
        target("absent-icmp", &ns.absent_addr, Role::Switch, 300, 250),
    ]);
    let r = poll(&mut s).await;
    assert_eq!(up(&r, "icmp"), (1.0, "ok".into()));
    assert_eq!(up(&r, "open"), (1.0, "ok".into()));
    // Closed: the host answered with a RST.
    assert_eq!(up(&r, "closed"), (0.0, "refused".into()));
    // Filtered, and nobody there: no answer at all.
    assert_eq!(up(&r, "filtered"), (0.0, "timeout".into()));
    assert_eq!(up(&r, "absent"), (0.0, "timeout".into()));
    assert_eq!(up(&r, "absent-icmp"), (0.0, "timeout".into()));
    assert_eq!(
        find(&r, "closed", "probe_up").labels["method"],
        Method::Tcp.as_str()
    );
}

#[tokio::test]
async fn namespace_netem_delay_is_measured_within_ten_percent() {
    let test = "namespace_netem_delay_is_measured_within_ten_percent";
    let Some(ns) = Netns::create(test, 2) else {
        return;
    };
    let out = ns.exec(&[
        "tc", "qdisc", "add", "dev", &ns.ns_if, "root", "netem", "delay", "100ms",
    ]);
    if !out.status.success() {
        skipped(
            test,
            &format!(
                "netem is not available here (`tc qdisc add ... netem`: {}); load sch_netem to run it. Nothing was measured.",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        );
        return;
    }
    let mut s = source(vec![target(
        "delayed",
        &ns.ns_addr,
        Role::PeerSite,
        300,
        250,
    )]);
    let r = poll(&mut s).await;
    let seconds = rtt(&r, "delayed").unwrap();
    assert!((seconds - 0.100).abs() <= 0.010, "{seconds}");
}

#[test]
fn icmp_uses_datagram_sockets_where_ping_group_range_allows_and_explains_what_is_missing() {
    let test =
        "icmp_uses_datagram_sockets_where_ping_group_range_allows_and_explains_what_is_missing";
    let Some(ns) = Netns::create(test, 3) else {
        return;
    };
    if Command::new("capsh").arg("--help").output().is_err() {
        skipped(
            test,
            "capsh (libcap) is not installed; it drops CAP_NET_RAW for the helper",
        );
        return;
    }
    // ping_group_range is per namespace: this changes nothing outside it.
    let set_range = |range: &str| {
        ns.exec_ok(&[
            "sh",
            "-c",
            &format!("echo '{range}' > /proc/sys/net/ipv4/ping_group_range"),
        ]);
    };
    let without_raw = ["capsh", "--drop=cap_net_raw", "--"];

    // Neither: a message naming both ways.
    set_range("1 0");
    let error = ns
        .helper("helper_icmp", (ICMP_ENV, "1"), &without_raw)
        .line("ERROR ");
    assert!(
        error.contains("ping_group_range is \"1 0\": unprivileged ICMP is disabled"),
        "{error}"
    );
    assert!(error.contains("lacks CAP_NET_RAW"), "{error}");

    // Unprivileged ICMP allowed: datagram sockets, no capability needed.
    set_range("0 2147483647");
    let ok = ns
        .helper("helper_icmp", (ICMP_ENV, "1"), &without_raw)
        .line("KIND ");
    assert_eq!(ok, format!("{:?} UP 1", SocketKind::Datagram));

    // CAP_NET_RAW without the range: raw sockets.
    set_range("1 0");
    let ok = ns.helper("helper_icmp", (ICMP_ENV, "1"), &[]).line("KIND ");
    assert_eq!(ok, format!("{:?} UP 1", SocketKind::Raw));
}
