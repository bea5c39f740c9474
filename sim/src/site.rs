//! A simulated machine room: a UPS, a generator, a CRAC and two temperature and
//! humidity probes, each on its own port from a base port on, so that
//! `scripts/run.sh --with-site` can start an agent against something
//! real-shaped.

use std::net::SocketAddr;

/// The devices of the simulated site: (name, shipped profile, port offset).
pub const SITE: &[(&str, &str, u16)] = &[
    ("ups-a", "apc-smart-ups", 0),
    ("genset", "dse-gencomm", 1),
    ("crac-1", "vertiv-liebert-icom", 2),
    ("probe-cold-aisle", "generic-xy-md02", 3),
    ("probe-hot-aisle", "generic-xy-md02", 4),
];

/// One device of the site as an agent reaches it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    pub name: String,
    pub profile: String,
    pub unit: u8,
    pub address: SocketAddr,
}

/// The agent's `[[sources.modbus.devices]]` tables for the served devices, to
/// append after a `[sources.modbus]` table of the caller's choosing.
pub fn agent_devices_toml(devices: &[Served]) -> String {
    devices
        .iter()
        .map(|d| {
            format!(
                "[[sources.modbus.devices]]\nname = \"{}\"\naddress = \"tcp://{}\"\nunit = {}\nprofile = \"{}\"\n",
                d.name, d.address, d.unit, d.profile
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_tables_name_each_device_its_address_unit_and_profile() {
        let served = [
            Served {
                name: "ups-a".into(),
                profile: "apc-smart-ups".into(),
                unit: 1,
                address: "127.0.0.1:15020".parse().unwrap(),
            },
            Served {
                name: "genset".into(),
                profile: "dse-gencomm".into(),
                unit: 10,
                address: "127.0.0.1:15021".parse().unwrap(),
            },
        ];
        assert_eq!(
            agent_devices_toml(&served),
            "[[sources.modbus.devices]]\nname = \"ups-a\"\naddress = \"tcp://127.0.0.1:15020\"\nunit = 1\nprofile = \"apc-smart-ups\"\n\n\
             [[sources.modbus.devices]]\nname = \"genset\"\naddress = \"tcp://127.0.0.1:15021\"\nunit = 10\nprofile = \"dse-gencomm\"\n"
        );
    }
}
