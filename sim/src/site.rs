//! A simulated machine room: a UPS, a generator, a CRAC and two temperature and
//! humidity probes, each on its own port from a base port on, so that
//! `scripts/run.sh` can start an agent against something real-shaped.

/// The devices of the simulated site: (name, shipped profile, port offset).
pub const SITE: &[(&str, &str, u16)] = &[
    ("ups-a", "apc-smart-ups", 0),
    ("genset", "dse-gencomm", 1),
    ("crac-1", "vertiv-liebert-icom", 2),
    ("probe-cold-aisle", "generic-xy-md02", 3),
    ("probe-hot-aisle", "generic-xy-md02", 4),
];
