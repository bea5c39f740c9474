//! `sitewatch-snmp-profile`: SNMP device profiles (one TOML file per MIB or
//! device family, in `firmware-config/snmp/`): their schema, their validation
//! (errors name the file and the point) and the decoding of walked values into
//! readings. No I/O: the agent's `snmp` source does the requests.
//!
//! # Layout
//!
//! - [`spec`]: the TOML schema as written.
//! - [`profile`]: the checked [`Profile`]: scalars, tables (index labels,
//!   label columns, skipped rows), traps; the OIDs a poll reads.
//! - [`decode`]: [`Walked`] values -> readings, tolerant of missing and
//!   mistyped values.
//! - [`shipped`]: the profiles of `firmware-config/snmp/`, compiled in.

pub mod decode;
pub mod profile;
pub mod shipped;
pub mod spec;

pub use decode::{Decoded, Value, Walked};
pub use profile::{Oid, Profile, ProfileError, Table, Trap, oid_string, parse_oid};
pub use spec::Class;
