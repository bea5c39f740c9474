//! Typed disk health from `smartctl --json` output (smartmontools 6.7 and 7.x).
//!
//! The crate is pure: it takes the text smartctl printed and returns data; running
//! smartctl (under a timeout) is the agent's job. It reads ATA, NVMe and SCSI
//! output, including disks behind USB bridges and RAID controllers
//! (`sat+megaraid,1`), and `--scan`/`--scan-open` output.
//!
//! ```
//! use smartctl_parser::{Verdict, parse_report};
//!
//! /// The reading `state` of the wire protocol for one smartctl run.
//! fn state_of(smartctl_stdout: &str) -> &'static str {
//!     match parse_report(smartctl_stdout).map(|r| r.verdict()) {
//!         Ok(Verdict::Passed) => "ok",
//!         Ok(Verdict::Warning(_)) => "warning",
//!         Ok(Verdict::Failing(_)) => "critical",
//!         Ok(Verdict::Unknown(_)) | Err(_) => "unknown",
//!     }
//! }
//! assert_eq!(state_of("smartctl killed by timeout, no output"), "unknown");
//! ```
//!
//! # Layout
//!
//! - [`report`]: [`parse_report`] and [`Report`], the top level: identity, SMART
//!   status, temperature, power-on hours, and the per-protocol sections.
//! - [`smartctl`]: the envelope every output shares: format version, messages,
//!   exit status, low-power skip detection.
//! - [`exit_status`]: [`ExitStatus`], the exit bit mask with one accessor per bit.
//! - [`device`]: [`DeviceInfo`] (path, `-d` type, protocol), [`Identity`], WWN.
//! - [`ata`]: attribute table with counter accessors, self-test log, error log.
//! - [`nvme`]: SMART / Health log, [`CriticalWarning`] bits, self-test log.
//! - [`scsi`]: grown defects, error counter pages, start-stop counter.
//! - [`verdict`]: [`evaluate`] → [`Verdict`] with [`Reason`]s; the policy below.
//! - [`scan`]: [`parse_scan`] → [`ScannedDevice`]s.
//! - [`error`]: [`ParseError`], for output that is not smartctl JSON at all.
//!
//! # Leniency
//!
//! smartctl prints JSON even when it fails (open failed, disk asleep), so those
//! parse into a [`Report`] that says so; only text that is not smartctl JSON is an
//! error. Unknown fields are ignored; fields of the wrong type or out of range
//! become `None`; malformed table rows are skipped; numbers given as strings or
//! mirrored as exact `KEY_s` strings are read. Nothing panics.
//!
//! # Verdict policy
//!
//! | Finding | Verdict |
//! |---|---|
//! | `smart_status.passed == false` (or exit bit 3 without a status) | Failing |
//! | ATA prefailure attribute at or below threshold now (`when_failed: now`) | Failing |
//! | NVMe critical warning, any bit (as smartctl: any bit fails the health check) | Failing |
//! | NVMe available spare below its threshold | Failing |
//! | A self-test failure not cleared by a later passing *extended* test | Failing |
//! | ATA 5 reallocated, 197 pending, 198 offline uncorrectable, 187 reported uncorrectable > 0 | Warning |
//! | ATA usage attribute at threshold now; any attribute at threshold in the past | Warning |
//! | ATA error log has entries | Warning |
//! | NVMe media errors > 0; NVMe/SCSI percentage used ≥ 100 | Warning |
//! | SCSI grown defects > 0; uncorrected read/write/verify errors > 0 | Warning |
//! | Nothing to judge: asleep, open failed, no health data | Unknown |
//!
//! The counters follow what Backblaze's drive statistics found predictive (5, 187,
//! 188, 197, 198), except 188, which Seagate packs with several counters (see
//! [`ata::AtaSmart::command_timeouts`]). Not judged at all: exit bit 2, interface
//! CRC errors (199), NVMe error-log entry count and unsafe shutdowns; see
//! [`evaluate`] for why. Every verdict carries all its reasons, most severe first.

pub mod ata;
mod de;
pub mod device;
pub mod error;
pub mod exit_status;
pub mod nvme;
pub mod report;
pub mod scan;
pub mod scsi;
pub mod smartctl;
pub mod verdict;

pub use ata::{
    AtaAttribute, AtaSelfTestEntry, AtaSelfTestLog, AtaSmart, SelfTestOutcome, WhenFailed,
};
pub use device::{DeviceInfo, Identity, Protocol, RaidPassthrough};
pub use error::ParseError;
pub use exit_status::{ExitBit, ExitStatus};
pub use nvme::{CriticalWarning, NvmeHealth, NvmeSelfTestLog};
pub use report::{PowerOnTime, Report, Temperature, parse_report};
pub use scan::{ScannedDevice, parse_scan};
pub use scsi::{ScsiErrorCounter, ScsiHealth, ScsiOperation};
pub use smartctl::{Message, MessageSeverity, Smartctl};
pub use verdict::{Reason, Severity, Verdict, evaluate};
