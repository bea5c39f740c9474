//! Which of a host's readings each cause reads, kept between evaluations.
//!
//! A cause walks the readings of every host of a site and skips, without
//! effect, every reading that is not of its kind: at 100 series a host and
//! eight causes, most of a full look is string comparisons of readings no
//! cause wants. A [`HostIndex`] lists, per cause, the positions of the
//! readings it reads (each cause's own `reads` predicate, a superset of what
//! its loop uses), built once per content of a host: when the caller numbers
//! hosts ([`crate::Engine::evaluate_revised`]), a host whose number is
//! unchanged keeps its index, and a look at its site visits only those
//! readings. The order of the readings is kept, so a cause sees what it saw
//! before in the same order, and finds the same
//! (`an_incremental_evaluation_is_always_what_a_full_one_would_be`).

use std::collections::{BTreeMap, HashMap};

use sitewatch_protocol::ReadingState;

use crate::{
    causes::{
        cooling, host_hardware, host_resources, network, network_device, power, power_feed, storage,
    },
    config::SignalsConfig,
    snapshot::{HostSnapshot, SeriesSnapshot},
};

/// A cause that reads readings one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reader {
    HostResources,
    HostHardware,
    Storage,
    NetworkDevice,
    Power,
    PowerFeed,
    Cooling,
    Network,
}

impl Reader {
    const ALL: [Reader; 8] = [
        Reader::HostResources,
        Reader::HostHardware,
        Reader::Storage,
        Reader::NetworkDevice,
        Reader::Power,
        Reader::PowerFeed,
        Reader::Cooling,
        Reader::Network,
    ];

    /// Whether this cause reads `r` at all (whatever its value).
    fn reads(self, r: &SeriesSnapshot, cfg: &SignalsConfig) -> bool {
        self.reads_in(r, r.state, cfg)
    }

    /// Whether this cause reads `r` were it in `state`. The causes that read
    /// by state read critical readings: that is the widest.
    fn reads_in(self, r: &SeriesSnapshot, state: ReadingState, cfg: &SignalsConfig) -> bool {
        match self {
            Reader::HostResources => host_resources::reads(r),
            Reader::HostHardware => host_hardware::reads(r, state, cfg),
            Reader::Storage => storage::reads(r, state, cfg),
            Reader::NetworkDevice => network_device::reads(r),
            Reader::Power => power::reads(r),
            Reader::PowerFeed => power_feed::reads(r),
            Reader::Cooling => cooling::reads(r),
            Reader::Network => network::reads(r),
        }
    }

    /// Whether a host's `readings` (those this cause reads) are, taken alone,
    /// known to give it nothing to find: the host's content is what decides,
    /// never the time, what is raised or the other hosts, so the answer is
    /// kept with the index for as long as the host's content is the same.
    /// The causes whose findings are a site's aggregate, or need memory,
    /// say no.
    fn quiet<'a>(self, readings: Readings<'a>, cfg: &SignalsConfig) -> bool {
        match self {
            Reader::HostResources => host_resources::quiet(cfg, readings),
            Reader::HostHardware => host_hardware::quiet(cfg, readings),
            Reader::Power => power::quiet(readings),
            Reader::Storage
            | Reader::NetworkDevice
            | Reader::PowerFeed
            | Reader::Cooling
            | Reader::Network => false,
        }
    }
}

/// Whether any cause reads `r` under `cfg`. A reading for which this is
/// false can be left out of a snapshot without changing anything the engine
/// finds: every cause visits readings only through its own `reads` predicate
/// (`Ctx`'s `readings_for`), so none would look at it
/// (`every_cause_finds_with_the_index_or_what_it_reads_alone_what_it_finds_over_every_reading`). The collector copies
/// only these: most of a fleet's series (CPU and DIMM temperatures, voltages,
/// interface counters) are exposed as metrics but decide no signal. It is
/// decided without the labels, so that the collector can ask before copying
/// them (the equivalence test checks it over readings with labels).
pub fn is_read(r: &SeriesSnapshot, cfg: &SignalsConfig) -> bool {
    Reader::ALL.iter().any(|reader| reader.reads(r, cfg))
}

/// Whether any cause reads a series of `r`'s names in some state, whatever
/// its value: [`is_read`] asked before the value and state are looked up, so
/// that the collector does not look up what no cause would read.
pub fn may_be_read(r: &SeriesSnapshot, cfg: &SignalsConfig) -> bool {
    Reader::ALL
        .iter()
        .any(|reader| reader.reads_in(r, ReadingState::Critical, cfg))
}

/// Per cause, the positions (ascending) of the readings of one host it reads,
/// and whether they are known to give it nothing to find.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostIndex {
    by_reader: [Vec<u32>; Reader::ALL.len()],
    /// By reader, a bit set when its cause's `quiet` holds for this host.
    quiet: u16,
}

impl HostIndex {
    /// The index of `host` under `cfg`.
    pub fn build(host: &HostSnapshot, cfg: &SignalsConfig) -> Self {
        let mut index = HostIndex::default();
        for (i, r) in host.readings.iter().enumerate() {
            let Ok(i) = u32::try_from(i) else { break };
            for reader in Reader::ALL {
                if reader.reads(r, cfg) {
                    index.by_reader[reader as usize].push(i);
                }
            }
        }
        for reader in Reader::ALL {
            let readings = Readings::of(host, Some(&index), reader);
            if reader.quiet(readings, cfg) {
                index.quiet |= 1 << reader as u16;
            }
        }
        index
    }

    fn positions(&self, reader: Reader) -> &[u32] {
        &self.by_reader[reader as usize]
    }

    /// Whether this host's readings are known to give `reader`'s cause
    /// nothing to find (what that means is the cause's `quiet`).
    pub fn quiet(&self, reader: Reader) -> bool {
        self.quiet & (1 << reader as u16) != 0
    }
}

/// The engine's indexes between evaluations: per site, each host's by its
/// number.
#[derive(Debug, Clone, Default)]
pub struct IndexCache {
    by_site: BTreeMap<String, HashMap<u64, HostIndex>>,
    /// Indexes built, and kept from an earlier look, since the engine started.
    pub built: u64,
    pub reused: u64,
}

impl IndexCache {
    /// The index of each host of `site`, in order: kept from the last look
    /// under the same number, else built. Until [`IndexCache::put`] gives them
    /// back, the site has none; what is not taken is dropped.
    pub fn take(
        &mut self,
        site: &str,
        hosts: &[HostSnapshot],
        numbers: &[u64],
        cfg: &SignalsConfig,
    ) -> Vec<HostIndex> {
        let mut kept = self.by_site.remove(site).unwrap_or_default();
        hosts
            .iter()
            .zip(numbers)
            .map(|(host, number)| match kept.remove(number) {
                Some(index) => {
                    self.reused += 1;
                    index
                }
                None => {
                    self.built += 1;
                    HostIndex::build(host, cfg)
                }
            })
            .collect()
    }

    /// Keeps the indexes of a look, host by host under their numbers.
    pub fn put(&mut self, site: &str, numbers: &[u64], indexes: Vec<HostIndex>) {
        self.by_site.insert(
            site.to_owned(),
            numbers.iter().copied().zip(indexes).collect(),
        );
    }

    /// Forgets the sites not in `sites` (sorted).
    pub fn keep_sites(&mut self, sites: &[String]) {
        if self.by_site.len() > sites.len() {
            self.by_site
                .retain(|site, _| sites.binary_search(site).is_ok());
        }
    }
}

/// The readings of one host a cause visits: all of them, or those its index
/// lists.
#[derive(Debug, Clone)]
pub enum Readings<'a> {
    All(std::slice::Iter<'a, SeriesSnapshot>),
    Indexed {
        readings: &'a [SeriesSnapshot],
        positions: std::slice::Iter<'a, u32>,
    },
}

impl<'a> Readings<'a> {
    pub fn of(host: &'a HostSnapshot, index: Option<&'a HostIndex>, reader: Reader) -> Self {
        match index {
            Some(index) => Readings::Indexed {
                readings: &host.readings,
                positions: index.positions(reader).iter(),
            },
            None => Readings::All(host.readings.iter()),
        }
    }
}

impl<'a> Iterator for Readings<'a> {
    type Item = &'a SeriesSnapshot;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Readings::All(it) => it.next(),
            Readings::Indexed {
                readings,
                positions,
            } => positions
                .next()
                .and_then(|&i| readings.get(usize::try_from(i).ok()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use sitewatch_protocol::quantity as q;

    use super::*;
    use crate::{
        causes::{Ctx, Gate, Held, NothingHeld, SiteView},
        incremental::Deadline,
        liveness::Policy,
        snapshot::Liveness,
    };

    /// xorshift64*: a fixed sequence.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
        }

        fn pick<T: Copy>(&mut self, items: &[T]) -> T {
            items[self.below(items.len())]
        }
    }

    const STATES: [ReadingState; 4] = [
        ReadingState::Ok,
        ReadingState::Warning,
        ReadingState::Critical,
        ReadingState::Unknown,
    ];

    /// A reading of what some cause reads (or anything, one time in four), in
    /// any state, value and label.
    fn random_reading(rng: &mut Rng) -> SeriesSnapshot {
        const READ: [&str; 18] = [
            q::PSU_OK,
            q::FAN_SPEED_RPM,
            q::TEMPERATURE_CELSIUS,
            q::INLET_TEMPERATURE_CELSIUS,
            q::COOLING_UNIT_ALARM,
            q::PROBE_UP,
            q::INTERFACE_UP,
            q::MAINS_AVAILABLE,
            q::UPS_ON_BATTERY,
            q::UPS_BATTERY_LOW,
            q::POWER_FEED_AVAILABLE,
            q::GENERATOR_RUNNING,
            q::GENERATOR_FAULT,
            q::CPU_USAGE_RATIO,
            q::MEMORY_USAGE_RATIO,
            q::FILESYSTEM_USAGE_RATIO,
            q::DISK_SMART_PASSED,
            q::DISK_REALLOCATED_SECTORS,
        ];
        let quantity = if rng.below(4) == 0 {
            q::VOCABULARY[rng.below(q::VOCABULARY.len())].0
        } else {
            rng.pick(&READ)
        };
        let mut r = SeriesSnapshot::ok(
            rng.pick(&["ipmi", "redfish", "smart", "snmp", "host", "modbus"]),
            rng.pick(&["bmc", "sw-1", "sda", "ups-a", "/"]),
            quantity,
            0.0,
            0,
        )
        .named(rng.pick(&["Inlet Temp", "PSU2", "eth0"]))
        .in_state(rng.pick(&STATES));
        r.value = rng.pick(&[
            Some(0.0),
            Some(1.0),
            Some(0.97),
            Some(30.0),
            Some(9.0),
            // Within the CPU limit's hysteresis: held if raised, else not.
            Some(0.82),
            None,
        ]);
        for (k, v) in [
            (
                "role",
                rng.pick(&["switch", "uplink", "service", "peer_site"]),
            ),
            ("port_role", "uplink"),
            ("rack", "r1"),
            ("feed", rng.pick(&["a", "b"])),
        ] {
            if rng.below(3) == 0 {
                r = r.with_label(k, v);
            }
        }
        r
    }

    /// Every signal raised, alarm and advisory: each cause holds its limits
    /// less their hysteresis.
    struct EverythingHeld;

    impl Held for EverythingHeld {
        fn is_raised(&self, _: sitewatch_protocol::Cause, _: &str, _: crate::causes::Tier) -> bool {
            true
        }
    }

    /// Every cause, over a site built with or without the hosts' indexes.
    fn found(
        hosts: &[HostSnapshot],
        indexes: Option<&[HostIndex]>,
        memory: &mut (storage::Memory, cooling::Memory),
        now_ms: i64,
    ) -> Vec<crate::causes::Condition> {
        found_holding(hosts, indexes, memory, now_ms, &NothingHeld)
    }

    fn found_holding(
        hosts: &[HostSnapshot],
        indexes: Option<&[HostIndex]>,
        memory: &mut (storage::Memory, cooling::Memory),
        now_ms: i64,
        held: &dyn Held,
    ) -> Vec<crate::causes::Condition> {
        let cfg = SignalsConfig::default();
        let policy = Policy::new(&cfg, i64::MIN / 2);
        let view = SiteView::build("bj1", hosts, indexes, &policy, now_ms);
        let ctx = Ctx {
            cfg: &cfg,
            now_ms,
            site: &view,
            held,
            gate: &Gate::Alone,
            deadline: &Deadline::default(),
        };
        // The shortcut of a site where nothing senses a loss of the mains
        // leaves out nothing sorting out every device would find.
        assert_eq!(power::evaluate(&ctx), power::every_device(&ctx));
        let mut out = host_resources::evaluate(&ctx);
        out.extend(host_hardware::evaluate(&ctx));
        out.extend(storage::evaluate(&ctx, &mut memory.0));
        out.extend(network_device::evaluate(&ctx));
        out.extend(power_feed::evaluate(&ctx));
        out.extend(power::evaluate(&ctx));
        out.extend(cooling::evaluate(&ctx, &mut memory.1));
        out.extend(network::evaluate(&ctx));
        out
    }

    #[test]
    fn every_cause_finds_with_the_index_or_what_it_reads_alone_what_it_finds_over_every_reading() {
        let cfg = SignalsConfig::default();
        let mut rng = Rng(0x5eed);
        let mut found_something = 0;
        let mut left_out = 0;
        let mut quiet_hosts = 0;
        let mut unread = 0;
        for trial in 0..3_000 {
            let mut plain = Default::default();
            let mut indexed = Default::default();
            let mut filtered = Default::default();
            let mut plain_held = Default::default();
            let mut indexed_held = Default::default();
            // Half or most of the hosts lost: the site-level network rule
            // holds at times, and its evidence lists the probes.
            let online_one_in = rng.pick(&[8, 2]);
            let mut hosts: Vec<HostSnapshot> = (0..1 + rng.below(6))
                .map(|h| {
                    let liveness = if rng.below(online_one_in) != 0 {
                        Liveness::Lost { since_ms: 0 }
                    } else {
                        Liveness::Online
                    };
                    HostSnapshot::new(format!("h{h}"), liveness)
                        .with_readings((0..rng.below(16)).map(|_| random_reading(&mut rng)))
                })
                .collect();
            // Twice, the second time with some values changed: the causes
            // with memory (disk counters growing) see a history.
            for step in 0..2 {
                let now_ms = 1_000_000 + step * 60_000;
                let indexes: Vec<HostIndex> =
                    hosts.iter().map(|h| HostIndex::build(h, &cfg)).collect();
                let a = found(&hosts, None, &mut plain, now_ms);
                let b = found(&hosts, Some(&indexes), &mut indexed, now_ms);
                assert_eq!(a, b, "trial {trial}, step {step}");
                // What an index knows to be quiet is quiet whatever is raised.
                let all = &EverythingHeld;
                let a_held = found_holding(&hosts, None, &mut plain_held, now_ms, all);
                let b_held = found_holding(&hosts, Some(&indexes), &mut indexed_held, now_ms, all);
                assert_eq!(
                    a_held, b_held,
                    "trial {trial}, step {step}, everything raised"
                );
                quiet_hosts += indexes.iter().filter(|i| i.quiet != 0).count();
                let read_only: Vec<HostSnapshot> = hosts
                    .iter()
                    .map(|h| {
                        let mut h = h.clone();
                        h.readings.retain(|r| {
                            let mut bare = r.clone();
                            bare.labels.clear();
                            assert_eq!(is_read(r, &cfg), is_read(&bare, &cfg), "{r:?}");
                            // Asked of the names alone, before the state
                            // is known: never no when some state says yes.
                            let other = bare.clone().in_state(rng.pick(&STATES));
                            assert_eq!(may_be_read(r, &cfg), may_be_read(&other, &cfg));
                            assert!(!is_read(r, &cfg) || may_be_read(r, &cfg), "{r:?}");
                            unread += usize::from(!may_be_read(r, &cfg));
                            is_read(r, &cfg)
                        });
                        h
                    })
                    .collect();
                left_out += hosts.iter().map(|h| h.readings.len()).sum::<usize>()
                    - read_only.iter().map(|h| h.readings.len()).sum::<usize>();
                let c = found(&read_only, None, &mut filtered, now_ms);
                assert_eq!(
                    a, c,
                    "trial {trial}, step {step}: leaving out what no cause reads"
                );
                found_something += usize::from(!a.is_empty());
                for h in &mut hosts {
                    for r in &mut h.readings {
                        if rng.below(3) == 0 {
                            r.value = r.value.map(|v| v + 1.0);
                        }
                    }
                }
            }
        }
        // The pictures were not all quiet: the comparison is of findings.
        assert!(found_something > 1_000, "{found_something}");
        // And readings were left out: the filtered pictures were smaller.
        assert!(left_out > 10_000, "{left_out}");
        // And hosts were known quiet: the indexes let causes skip them.
        assert!(quiet_hosts > 1_000, "{quiet_hosts}");
        // And some names were not read in any state.
        assert!(unread > 1_000, "{unread}");
    }

    #[test]
    fn each_cause_is_given_its_own_readings_in_their_order() {
        let cfg = SignalsConfig::default();
        let host = HostSnapshot::new("web-01", Liveness::Online).with_readings([
            SeriesSnapshot::ok("host", "cpu", q::CPU_USAGE_RATIO, 0.2, 0),
            SeriesSnapshot::ok("ipmi", "bmc", q::INLET_TEMPERATURE_CELSIUS, 22.0, 0),
            SeriesSnapshot::ok("ipmi", "bmc", q::TEMPERATURE_CELSIUS, 61.0, 0).named("CPU1 Temp"),
            SeriesSnapshot::ok("ipmi", "bmc", q::TEMPERATURE_CELSIUS, 23.0, 0).named("Inlet Temp"),
            SeriesSnapshot::ok("modbus", "ups-a", q::UPS_ON_BATTERY, 0.0, 0),
            SeriesSnapshot::ok("ipmi", "psu1", q::PSU_OK, 1.0, 0),
            SeriesSnapshot::ok("host", "eth0", q::VOLTAGE_VOLTS, 12.0, 0),
            SeriesSnapshot::ok("ipmi", "bmc", q::VOLTAGE_VOLTS, 1.0, 0)
                .in_state(ReadingState::Critical),
            SeriesSnapshot::ok("host", "/", q::FILESYSTEM_USAGE_RATIO, 0.5, 0),
        ]);
        let index = HostIndex::build(&host, &cfg);
        let names = |reader| -> Vec<&str> {
            Readings::of(&host, Some(&index), reader)
                .map(|r| r.q.as_str())
                .collect()
        };
        assert_eq!(
            names(Reader::HostResources),
            [q::CPU_USAGE_RATIO, q::FILESYSTEM_USAGE_RATIO]
        );
        // A critical hardware sensor of any quantity, and the PSU flag.
        assert_eq!(names(Reader::HostHardware), [q::PSU_OK, q::VOLTAGE_VOLTS]);
        assert_eq!(names(Reader::Power), [q::UPS_ON_BATTERY]);
        // Inlets only: a CPU's temperature is not the room's.
        assert_eq!(
            names(Reader::Cooling),
            [q::INLET_TEMPERATURE_CELSIUS, q::TEMPERATURE_CELSIUS]
        );
        assert!(names(Reader::Network).is_empty());
        // Without an index every reading is visited.
        assert_eq!(Readings::of(&host, None, Reader::Network).count(), 9);
    }
}
