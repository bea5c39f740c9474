//! The `host` source: this machine's CPU, memory, filesystems, network traffic,
//! load, uptime and temperatures, through sysinfo.
//!
//! sysinfo reads `/proc` and calls `statvfs` synchronously (and a hard NFS mount
//! can hang that call), so a poll runs on the blocking pool. The sysinfo state is
//! behind a mutex that a poll only `try_lock`s: while an earlier poll is still
//! stuck, the next one reports [`SourceError::Busy`] instead of piling up
//! threads. Turning a [`Snapshot`] into readings is a pure function.

pub mod config;

use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex, TryLockError},
    time::Instant,
};

use sitewatch_protocol::{Reading, ReadingState, limits, quantity};
use sysinfo::{Components, Disks, Networks, System};

use self::config::HostSourceConfig;
use super::{Poll, Polled, SourceError};

/// The source's name and its readings' `src`.
pub const NAME: &str = "host";

/// Quantities this source emits beyond the shared vocabulary.
pub mod q {
    /// Bytes received by an interface since boot (a counter, as node_exporter's
    /// `node_network_receive_bytes_total`).
    pub const NETWORK_RECEIVE_BYTES_TOTAL: &str = "network_receive_bytes_total";
    pub const NETWORK_TRANSMIT_BYTES_TOTAL: &str = "network_transmit_bytes_total";
    /// Receive and transmit errors of an interface since boot.
    pub const NETWORK_RECEIVE_ERRORS_TOTAL: &str = "network_receive_errors_total";
    pub const NETWORK_TRANSMIT_ERRORS_TOTAL: &str = "network_transmit_errors_total";
    pub const LOAD_AVERAGE_1M: &str = "load_average_1m";
    pub const LOAD_AVERAGE_5M: &str = "load_average_5m";
    pub const LOAD_AVERAGE_15M: &str = "load_average_15m";
    pub const UPTIME_SECONDS: &str = "uptime_seconds";
}

/// One reading of the machine, as plain data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Busy CPU time since the previous refresh, 0..1.
    pub cpu_usage: Option<f64>,
    pub memory_total_bytes: u64,
    pub memory_available_bytes: u64,
    pub filesystems: Vec<Filesystem>,
    pub interfaces: Vec<Interface>,
    /// 1, 5 and 15 minute load averages.
    pub load: Option<[f64; 3]>,
    pub uptime_seconds: Option<u64>,
    pub temperatures: Vec<Temperature>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Filesystem {
    pub mount_point: String,
    pub device: String,
    pub fstype: String,
    pub total_bytes: u64,
    pub available_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Interface {
    pub name: String,
    pub received_bytes: u64,
    pub transmitted_bytes: u64,
    pub receive_errors: u64,
    pub transmit_errors: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Temperature {
    pub label: String,
    pub celsius: f64,
    pub critical_celsius: Option<f64>,
}

fn ratio(used: f64, total: f64) -> Option<f64> {
    (total > 0.0).then(|| (used / total).clamp(0.0, 1.0))
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// The readings of one snapshot, of the interfaces and filesystems `config`
/// lets through.
pub fn readings(s: &Snapshot, config: &HostSourceConfig) -> Vec<Reading> {
    let ok = ReadingState::Ok;
    let mut out = Vec::new();
    if let Some(cpu) = s.cpu_usage {
        out.push(Reading::new(
            NAME,
            "cpu",
            "cpu",
            quantity::CPU_USAGE_RATIO,
            Some(cpu.clamp(0.0, 1.0)),
            ok,
        ));
    }
    let memory_used = s
        .memory_total_bytes
        .saturating_sub(s.memory_available_bytes);
    if let Some(memory) = ratio(memory_used as f64, s.memory_total_bytes as f64) {
        out.push(Reading::new(
            NAME,
            "memory",
            "memory",
            quantity::MEMORY_USAGE_RATIO,
            Some(memory),
            ok,
        ));
    }
    let mut seen_mounts = BTreeSet::new();
    for fs in &s.filesystems {
        if !config.filesystems.allows(&fs.mount_point, &fs.fstype)
            || !seen_mounts.insert(fs.mount_point.as_str())
        {
            continue;
        }
        let used = fs.total_bytes.saturating_sub(fs.available_bytes) as f64;
        let Some(usage) = ratio(used, fs.total_bytes as f64) else {
            continue;
        };
        let dev = truncate(&fs.mount_point, limits::MAX_DEV_LEN);
        out.push(
            Reading::new(
                NAME,
                dev.clone(),
                dev,
                quantity::FILESYSTEM_USAGE_RATIO,
                Some(usage),
                ok,
            )
            .with_label("fstype", truncate(&fs.fstype, limits::MAX_LABEL_VALUE_LEN))
            .with_label("device", truncate(&fs.device, limits::MAX_LABEL_VALUE_LEN)),
        );
    }
    for iface in &s.interfaces {
        if !config.interfaces.allows(&iface.name) {
            continue;
        }
        let dev = truncate(&iface.name, limits::MAX_DEV_LEN);
        for (q, count) in [
            (q::NETWORK_RECEIVE_BYTES_TOTAL, iface.received_bytes),
            (q::NETWORK_TRANSMIT_BYTES_TOTAL, iface.transmitted_bytes),
            (q::NETWORK_RECEIVE_ERRORS_TOTAL, iface.receive_errors),
            (q::NETWORK_TRANSMIT_ERRORS_TOTAL, iface.transmit_errors),
        ] {
            out.push(Reading::new(
                NAME,
                dev.clone(),
                dev.clone(),
                q,
                Some(count as f64),
                ok,
            ));
        }
    }
    if let Some([one, five, fifteen]) = s.load {
        for (q, value) in [
            (q::LOAD_AVERAGE_1M, one),
            (q::LOAD_AVERAGE_5M, five),
            (q::LOAD_AVERAGE_15M, fifteen),
        ] {
            out.push(Reading::new(NAME, "system", q, q, Some(value), ok));
        }
    }
    if let Some(uptime) = s.uptime_seconds {
        out.push(Reading::new(
            NAME,
            "system",
            "uptime",
            q::UPTIME_SECONDS,
            Some(uptime as f64),
            ok,
        ));
    }
    // Two sensors may share a label (one per core on some boards): the later
    // ones get a suffix so that each keeps its own series.
    let mut seen_labels = BTreeSet::new();
    for t in &s.temperatures {
        let base = truncate(&t.label, limits::MAX_DEV_LEN - 4);
        let mut dev = base.clone();
        let mut n = 2;
        while !seen_labels.insert(dev.clone()) {
            dev = format!("{base} #{n}");
            n += 1;
        }
        let state = match t.critical_celsius {
            Some(critical) if t.celsius >= critical => ReadingState::Critical,
            _ => ok,
        };
        out.push(Reading::new(
            NAME,
            dev.clone(),
            dev,
            quantity::TEMPERATURE_CELSIUS,
            Some(t.celsius),
            state,
        ));
    }
    out
}

/// The sysinfo state kept between polls (counters and CPU times need a previous value).
struct Probe {
    system: System,
    disks: Disks,
    networks: Networks,
    components: Option<Components>,
    cpu_refreshed_at: Instant,
}

impl Probe {
    fn new() -> Result<Self, SourceError> {
        let read = |what| {
            move |e: sysinfo::Error| SourceError::Read {
                what,
                message: e.to_string(),
            }
        };
        let mut system = System::new().map_err(read("system"))?;
        system.refresh_cpu_usage();
        Ok(Probe {
            system,
            disks: Disks::new_with_refreshed_list().map_err(read("disks"))?,
            networks: Networks::new_with_refreshed_list().map_err(read("network interfaces"))?,
            // No hwmon (a VM, a container) means no temperatures, not a failure.
            components: Components::new_with_refreshed_list().ok(),
            cpu_refreshed_at: Instant::now(),
        })
    }

    /// `wait_for_cpu`: on a poll closer than sysinfo's minimum interval to the
    /// previous one (the first poll after start), wait for it (`run`: the first
    /// batch has its CPU share, 200 ms late) or report no CPU share (`once`,
    /// which is not held up by a sampling wait; as Telegraf's cpu input, whose
    /// first gather has no usage either).
    fn snapshot(&mut self, wait_for_cpu: bool) -> Snapshot {
        // CPU usage is the busy share between two refreshes; closer than sysinfo's
        // minimum interval (a poll right after start) it would be noise.
        let since = self.cpu_refreshed_at.elapsed();
        let cpu_measured = if since >= sysinfo::MINIMUM_CPU_UPDATE_INTERVAL {
            true
        } else if wait_for_cpu {
            std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL - since);
            true
        } else {
            false
        };
        if cpu_measured {
            self.system.refresh_cpu_usage();
            self.cpu_refreshed_at = Instant::now();
        }
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        if let Some(components) = &mut self.components {
            components.refresh(true);
        }
        let has_cpus = cpu_measured && !self.system.cpus().is_empty();
        Snapshot {
            cpu_usage: has_cpus.then(|| f64::from(self.system.global_cpu_usage()) / 100.0),
            memory_total_bytes: self.system.total_memory(),
            memory_available_bytes: self.system.available_memory(),
            filesystems: self
                .disks
                .iter()
                .map(|d| Filesystem {
                    mount_point: d.mount_point().to_string_lossy().into_owned(),
                    device: d.name().to_string_lossy().into_owned(),
                    fstype: d.file_system().to_string_lossy().into_owned(),
                    total_bytes: d.total_space(),
                    available_bytes: d.available_space(),
                })
                .collect(),
            interfaces: self
                .networks
                .iter()
                .map(|(name, data)| Interface {
                    name: name.to_string_lossy().into_owned(),
                    received_bytes: data.total_received(),
                    transmitted_bytes: data.total_transmitted(),
                    receive_errors: data.total_errors_on_received(),
                    transmit_errors: data.total_errors_on_transmitted(),
                })
                .collect(),
            load: System::load_average()
                .ok()
                .map(|l| [l.one, l.five, l.fifteen]),
            uptime_seconds: System::uptime().ok(),
            temperatures: self
                .components
                .iter()
                .flat_map(|c| c.iter())
                .filter_map(|c| {
                    Some(Temperature {
                        label: c.label().to_owned(),
                        celsius: f64::from(c.temperature()?),
                        critical_celsius: c.critical().map(f64::from),
                    })
                })
                .collect(),
        }
    }
}

/// The `host` source.
pub struct HostSource {
    probe: Arc<Mutex<Probe>>,
    config: Arc<HostSourceConfig>,
    /// See [`Probe::snapshot`]; `once` turns it off.
    wait_for_cpu: bool,
}

impl std::fmt::Debug for HostSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostSource").finish_non_exhaustive()
    }
}

impl HostSource {
    pub fn new(config: HostSourceConfig) -> Result<Self, SourceError> {
        Ok(HostSource {
            probe: Arc::new(Mutex::new(Probe::new()?)),
            config: Arc::new(config),
            wait_for_cpu: true,
        })
    }

    /// A poll closer than 200 ms to the previous one (or to the start) reports
    /// no CPU share instead of waiting for one: for `once`.
    pub fn skip_cpu_wait(&mut self) {
        self.wait_for_cpu = false;
    }
}

impl Poll for HostSource {
    fn name(&self) -> &'static str {
        NAME
    }

    async fn poll(&mut self) -> Result<Polled, SourceError> {
        let probe = Arc::clone(&self.probe);
        let config = Arc::clone(&self.config);
        let wait_for_cpu = self.wait_for_cpu;
        tokio::task::spawn_blocking(move || {
            let mut probe = match probe.try_lock() {
                Ok(guard) => guard,
                // A poll that panicked left plain counters behind: still usable.
                Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
                Err(TryLockError::WouldBlock) => return Err(SourceError::Busy),
            };
            Ok(readings(&probe.snapshot(wait_for_cpu), &config).into())
        })
        .await
        .map_err(|e| SourceError::Crashed(e.to_string()))?
    }
}

impl super::Build for HostSource {
    type Config = config::HostSourceConfig;

    fn build(config: &Self::Config) -> Result<Self, SourceError> {
        HostSource::new(config.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs(mount: &str, fstype: &str, total: u64, available: u64) -> Filesystem {
        Filesystem {
            mount_point: mount.into(),
            device: "/dev/sda1".into(),
            fstype: fstype.into(),
            total_bytes: total,
            available_bytes: available,
        }
    }

    fn find<'a>(readings: &'a [Reading], q: &str, dev: &str) -> Option<&'a Reading> {
        readings.iter().find(|r| r.q == q && r.dev == dev)
    }

    fn iface(name: &str, rx: u64, tx: u64) -> Interface {
        Interface {
            name: name.into(),
            received_bytes: rx,
            transmitted_bytes: tx,
            receive_errors: 1,
            transmit_errors: 2,
        }
    }

    #[test]
    fn a_poll_right_after_start_waits_for_the_cpu_share_or_leaves_it_out() {
        let Ok(mut probe) = Probe::new() else {
            return; // no /proc here
        };
        assert_eq!(probe.snapshot(false).cpu_usage, None);
        if probe.system.cpus().is_empty() {
            return;
        }
        assert!(probe.snapshot(true).cpu_usage.is_some());
        // Right after that refresh again: without waiting there is no share.
        assert_eq!(probe.snapshot(false).cpu_usage, None);
    }

    #[test]
    fn pseudo_filesystems_and_kernel_or_container_mounts_are_left_out_by_default() {
        let cfg = HostSourceConfig::default().filesystems;
        for pseudo in [
            "proc",
            "sysfs",
            "tmpfs",
            "devtmpfs",
            "overlay",
            "squashfs",
            "cgroup",
            "cgroup2",
            "fuse.lxcfs",
        ] {
            assert!(!cfg.allows("/somewhere", pseudo), "{pseudo}");
        }
        for real in ["ext4", "xfs", "btrfs", "zfs", "nfs4", "vfat"] {
            assert!(cfg.allows("/data", real), "{real}");
        }
        for mount in [
            "/dev/shm",
            "/proc/sys/fs/binfmt_misc",
            "/sys/fs/cgroup",
            "/var/lib/docker/overlay2/abc/merged",
            "/run/credentials/systemd-journald.service",
            "/snap/core22/1380",
        ] {
            assert!(!cfg.allows(mount, "ext4"), "{mount}");
        }
        for mount in ["/", "/home", "/var/lib/mysql", "/boot/efi", "/devices"] {
            assert!(cfg.allows(mount, "ext4"), "{mount}");
        }
    }

    #[test]
    fn loopback_shaping_and_container_interfaces_are_left_out_by_default() {
        let cfg = HostSourceConfig::default().interfaces;
        for pseudo in [
            "lo",
            "ifb0",
            "ifb1",
            "veth1a2b3c",
            "docker0",
            "br-0f1e2d",
            "virbr0",
            "cni0",
            "flannel.1",
            "cali1234",
            "kube-ipvs0",
            "cilium_host",
            "lxcbr0",
            "dummy0",
        ] {
            assert!(!cfg.allows(pseudo), "{pseudo}");
        }
        for real in [
            "eth0", "ens3", "enp1s0f0", "bond0", "br0", "eno1.100", "wlan0", "ib0",
        ] {
            assert!(cfg.allows(real), "{real}");
        }
    }

    #[test]
    fn configured_patterns_choose_the_interfaces_and_mounts() {
        let cfg: HostSourceConfig = toml::from_str(
            "interfaces = { include = [\"eth*\", \"lo\"] }\n\
             [filesystems]\ninclude = [\"/data*\"]\nexclude_types = []\n",
        )
        .unwrap();
        let snapshot = Snapshot {
            filesystems: vec![
                fs("/", "ext4", 100, 50),
                fs("/data1", "xfs", 100, 50),
                fs("/data-tmp", "tmpfs", 100, 50),
            ],
            interfaces: vec![iface("lo", 1, 1), iface("eth0", 1, 1), iface("bond0", 1, 1)],
            ..Snapshot::default()
        };
        let r = readings(&snapshot, &cfg);
        let devs = |q: &str| -> Vec<&str> {
            r.iter()
                .filter(|r| r.q == q)
                .map(|r| r.dev.as_str())
                .collect()
        };
        // lo is included, but the default exclude list still wins over it.
        assert_eq!(devs("network_receive_bytes_total"), ["eth0"]);
        // Without type excludes a tmpfs under an included mount is read.
        assert_eq!(devs("filesystem_usage_ratio"), ["/data1", "/data-tmp"]);
        let all: HostSourceConfig = toml::from_str("interfaces = { exclude = [] }").unwrap();
        let r = readings(&snapshot, &all);
        assert_eq!(
            r.iter()
                .filter(|r| r.q == "network_receive_bytes_total")
                .count(),
            3
        );
    }

    #[test]
    fn an_invalid_pattern_is_refused_naming_its_key() {
        let cfg: HostSourceConfig = toml::from_str("filesystems = { exclude = [\"\"] }").unwrap();
        use crate::source::Section;
        let (key, why) = cfg.validate().unwrap_err();
        assert_eq!(key, "sources.host.filesystems.exclude");
        assert!(why.contains("empty"), "{why}");
    }

    #[test]
    fn snapshot_becomes_readings_with_ratios_labels_and_counters() {
        let snapshot = Snapshot {
            cpu_usage: Some(0.25),
            memory_total_bytes: 1000,
            memory_available_bytes: 250,
            filesystems: vec![
                fs("/", "ext4", 100, 40),
                fs("/", "ext4", 100, 40), // a second listing of the same mount
                fs("/run", "tmpfs", 100, 100),
                fs("/empty", "ext4", 0, 0),
            ],
            interfaces: vec![
                iface("lo", 1, 1),
                iface("eth0", 10, 20),
                iface("ifb0", 5, 5),
            ],
            load: Some([0.5, 0.25, 0.125]),
            uptime_seconds: Some(3600),
            temperatures: vec![
                Temperature {
                    label: "coretemp".into(),
                    celsius: 50.0,
                    critical_celsius: Some(100.0),
                },
                Temperature {
                    label: "coretemp".into(),
                    celsius: 101.0,
                    critical_celsius: Some(100.0),
                },
            ],
        };
        let r = readings(&snapshot, &HostSourceConfig::default());
        assert!(r.iter().all(|r| r.src == "host"));
        assert_eq!(
            find(&r, "cpu_usage_ratio", "cpu").unwrap().value,
            Some(0.25)
        );
        assert_eq!(
            find(&r, "memory_usage_ratio", "memory").unwrap().value,
            Some(0.75)
        );
        let root = find(&r, "filesystem_usage_ratio", "/").unwrap();
        assert_eq!(root.value, Some(0.6));
        assert_eq!(root.labels["fstype"], "ext4");
        assert_eq!(root.labels["device"], "/dev/sda1");
        assert_eq!(
            r.iter().filter(|r| r.q == "filesystem_usage_ratio").count(),
            1
        );
        assert_eq!(
            find(&r, "network_receive_bytes_total", "eth0")
                .unwrap()
                .value,
            Some(10.0)
        );
        assert_eq!(
            find(&r, "network_transmit_bytes_total", "eth0")
                .unwrap()
                .value,
            Some(20.0)
        );
        assert_eq!(
            find(&r, "network_receive_errors_total", "eth0")
                .unwrap()
                .value,
            Some(1.0)
        );
        assert_eq!(
            find(&r, "network_transmit_errors_total", "eth0")
                .unwrap()
                .value,
            Some(2.0)
        );
        assert!(find(&r, "network_receive_bytes_total", "lo").is_none());
        assert!(find(&r, "network_receive_bytes_total", "ifb0").is_none());
        assert_eq!(
            find(&r, "load_average_5m", "system").unwrap().value,
            Some(0.25)
        );
        assert_eq!(
            find(&r, "uptime_seconds", "system").unwrap().value,
            Some(3600.0)
        );
        assert_eq!(
            find(&r, "temperature_celsius", "coretemp").unwrap().state,
            ReadingState::Ok
        );
        assert_eq!(
            find(&r, "temperature_celsius", "coretemp #2")
                .unwrap()
                .state,
            ReadingState::Critical
        );
    }

    #[test]
    fn an_empty_machine_gives_no_readings_not_an_error() {
        assert!(readings(&Snapshot::default(), &HostSourceConfig::default()).is_empty());
    }

    #[tokio::test]
    async fn polling_this_machine_gives_the_expected_quantities_in_range() {
        let mut source = HostSource::new(HostSourceConfig::default()).unwrap();
        let r = source.poll().await.unwrap().readings;
        for q in [
            "cpu_usage_ratio",
            "memory_usage_ratio",
            "load_average_1m",
            "load_average_5m",
            "load_average_15m",
            "uptime_seconds",
        ] {
            assert!(r.iter().any(|r| r.q == q), "no {q} in {r:?}");
        }
        for reading in r.iter().filter(|r| r.q.ends_with("_ratio")) {
            let v = reading.value.unwrap();
            assert!((0.0..=1.0).contains(&v), "{reading:?}");
        }
        // Every reading passes the collector's validation.
        let mut batcher = crate::batch::Batcher::new(
            Arc::from("sitewatch/v1/a/b/readings"),
            Arc::from("sitewatch/v1/a/b/events"),
        );
        for m in batcher.encode(1, r).unwrap() {
            sitewatch_protocol::decode("sitewatch/v1/a/b/readings", &m.payload).unwrap();
        }
    }
}
