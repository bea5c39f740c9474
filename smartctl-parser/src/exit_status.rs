//! smartctl's exit status, a bit mask (smartctl(8), "RETURN VALUES").
//!
//! smartctl prints the status into its own JSON (`smartctl.exit_status`), so the
//! decoding works on saved output too, not only on a live process.

use std::fmt;

/// One of the eight bits of smartctl's exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ExitBit {
    /// Bit 0: the command line did not parse.
    CommandLineDidNotParse = 0,
    /// Bit 1: the device open failed, the device did not identify itself, or the
    /// device is in a low-power mode and `--nocheck` told smartctl to skip it.
    DeviceOpenFailed = 1,
    /// Bit 2: some SMART or other command to the disk failed, or a SMART data
    /// structure had a checksum error.
    SmartCommandFailed = 2,
    /// Bit 3: the SMART status check returned "DISK FAILING".
    DiskFailing = 3,
    /// Bit 4: prefail attributes at or below their threshold were found.
    PrefailBelowThreshold = 4,
    /// Bit 5: SMART status is OK, but some (usage or prefail) attributes have been
    /// at or below their threshold at some time in the past.
    BelowThresholdInPast = 5,
    /// Bit 6: the device error log contains records of errors.
    ErrorLogHasErrors = 6,
    /// Bit 7: the device self-test log contains records of errors.
    SelfTestLogHasErrors = 7,
}

impl ExitBit {
    /// All bits, lowest first.
    pub const ALL: [ExitBit; 8] = [
        ExitBit::CommandLineDidNotParse,
        ExitBit::DeviceOpenFailed,
        ExitBit::SmartCommandFailed,
        ExitBit::DiskFailing,
        ExitBit::PrefailBelowThreshold,
        ExitBit::BelowThresholdInPast,
        ExitBit::ErrorLogHasErrors,
        ExitBit::SelfTestLogHasErrors,
    ];

    /// The bit's position, 0..=7.
    pub fn position(self) -> u8 {
        self as u8
    }

    /// A stable `snake_case` name, usable as a metric label.
    pub fn name(self) -> &'static str {
        match self {
            ExitBit::CommandLineDidNotParse => "command_line_did_not_parse",
            ExitBit::DeviceOpenFailed => "device_open_failed",
            ExitBit::SmartCommandFailed => "smart_command_failed",
            ExitBit::DiskFailing => "disk_failing",
            ExitBit::PrefailBelowThreshold => "prefail_below_threshold",
            ExitBit::BelowThresholdInPast => "below_threshold_in_past",
            ExitBit::ErrorLogHasErrors => "error_log_has_errors",
            ExitBit::SelfTestLogHasErrors => "self_test_log_has_errors",
        }
    }
}

impl fmt::Display for ExitBit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// smartctl's exit status with one named accessor per bit.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ExitStatus(u8);

impl ExitStatus {
    /// Wraps a raw exit status.
    pub const fn from_bits(bits: u8) -> Self {
        ExitStatus(bits)
    }

    /// The raw exit status.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether `bit` is set.
    pub const fn contains(self, bit: ExitBit) -> bool {
        self.0 & (1 << bit as u8) != 0
    }

    /// No bit set: smartctl ran and found nothing to report.
    pub const fn is_clean(self) -> bool {
        self.0 == 0
    }

    /// The bits that are set, lowest first.
    pub fn iter(self) -> impl Iterator<Item = ExitBit> {
        ExitBit::ALL.into_iter().filter(move |b| self.contains(*b))
    }

    /// Bit 0.
    pub const fn command_line_did_not_parse(self) -> bool {
        self.contains(ExitBit::CommandLineDidNotParse)
    }
    /// Bit 1 (also set when `--nocheck` skipped a device in low-power mode).
    pub const fn device_open_failed(self) -> bool {
        self.contains(ExitBit::DeviceOpenFailed)
    }
    /// Bit 2.
    pub const fn smart_command_failed(self) -> bool {
        self.contains(ExitBit::SmartCommandFailed)
    }
    /// Bit 3.
    pub const fn disk_failing(self) -> bool {
        self.contains(ExitBit::DiskFailing)
    }
    /// Bit 4.
    pub const fn prefail_below_threshold(self) -> bool {
        self.contains(ExitBit::PrefailBelowThreshold)
    }
    /// Bit 5.
    pub const fn below_threshold_in_past(self) -> bool {
        self.contains(ExitBit::BelowThresholdInPast)
    }
    /// Bit 6.
    pub const fn error_log_has_errors(self) -> bool {
        self.contains(ExitBit::ErrorLogHasErrors)
    }
    /// Bit 7.
    pub const fn self_test_log_has_errors(self) -> bool {
        self.contains(ExitBit::SelfTestLogHasErrors)
    }
}

impl fmt::Debug for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ExitStatus({}: ", self.0)?;
        f.debug_list().entries(self.iter()).finish()?;
        f.write_str(")")
    }
}

impl fmt::Display for ExitStatus {
    /// `0`, or the value followed by the set bits: `216 (disk_failing, ...)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        if !self.is_clean() {
            let names: Vec<&str> = self.iter().map(ExitBit::name).collect();
            write!(f, " ({})", names.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_has_no_bits() {
        let s = ExitStatus::from_bits(0);
        assert!(s.is_clean());
        assert_eq!(s.iter().count(), 0);
        assert_eq!(s.to_string(), "0");
    }

    #[test]
    fn each_bit_maps_to_its_accessor() {
        let accessors: [fn(ExitStatus) -> bool; 8] = [
            ExitStatus::command_line_did_not_parse,
            ExitStatus::device_open_failed,
            ExitStatus::smart_command_failed,
            ExitStatus::disk_failing,
            ExitStatus::prefail_below_threshold,
            ExitStatus::below_threshold_in_past,
            ExitStatus::error_log_has_errors,
            ExitStatus::self_test_log_has_errors,
        ];
        for i in 0..accessors.len() {
            let s = ExitStatus::from_bits(1 << i);
            for (j, other) in accessors.iter().enumerate() {
                assert_eq!(other(s), i == j, "bit {i}, accessor {j}");
            }
            assert_eq!(s.iter().collect::<Vec<_>>(), vec![ExitBit::ALL[i]]);
            assert_eq!(ExitBit::ALL[i].position() as usize, i);
        }
    }

    #[test]
    fn failing_usb_disk_status_216_decodes_to_four_bits() {
        // 216 = 128 + 64 + 16 + 8, from a dying Hitachi behind a JMicron bridge.
        let s = ExitStatus::from_bits(216);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![
                ExitBit::DiskFailing,
                ExitBit::PrefailBelowThreshold,
                ExitBit::ErrorLogHasErrors,
                ExitBit::SelfTestLogHasErrors,
            ]
        );
        assert_eq!(
            s.to_string(),
            "216 (disk_failing, prefail_below_threshold, error_log_has_errors, self_test_log_has_errors)"
        );
    }

    #[test]
    fn open_failure_is_bit_1() {
        let s = ExitStatus::from_bits(2);
        assert!(s.device_open_failed());
        assert!(!s.disk_failing());
    }
}
