//! The device profile loaders: a Modbus register map and an SNMP MIB profile
//! from TOML with all their checks, then what a loaded profile is used for
//! (the read plan, the simulator's default image, the OIDs to poll).

/// One input, as the fuzzer gives it.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(profile) = sitewatch_modbus_profile::Profile::from_toml(text, "fuzz.toml") {
        let plan = sitewatch_modbus_profile::Plan::new(&profile);
        let _ = sitewatch_modbus_profile::wire::plan_reads(&plan);
        let _ = profile.missing_quantities();
        if let Ok(image) = profile.default_image() {
            let _ = profile.decode(&image);
        }
    }
    if let Ok(profile) = sitewatch_snmp_profile::Profile::from_toml(text, "fuzz.toml") {
        let _ = profile.scalar_oids();
        let _ = profile.walks();
        let _ = profile.quantities();
        let _ = profile.decode(&sitewatch_snmp_profile::Walked::default(), "snmp", "dev");
    }
}
