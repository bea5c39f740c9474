//! The IPMI commands the source sends, as pure request builders and response
//! parsers (no I/O): every parser takes the response data after the completion
//! code and rejects a short answer as [`Malformed`] instead of indexing past it.
//!
//! These are our own types rather than ipmi-rs `IpmiCommand`s: ipmi-rs matches
//! a response's netfn through its `NetFn` enum, which turns the DCMI group
//! extension's request/response netfns (0x2C/0x2D) into two different
//! `Reserved` values and rejects every DCMI answer; and Get Sensor Thresholds,
//! Chassis Status and DCMI Get Power Reading are missing from it. One
//! `exchange` over ipmi-rs's connection ([`super::transport`]) carries them all.

use std::fmt;

pub const NETFN_CHASSIS: u8 = 0x00;
pub const NETFN_SENSOR: u8 = 0x04;
pub const NETFN_APP: u8 = 0x06;
pub const NETFN_STORAGE: u8 = 0x0a;
pub const NETFN_GROUP_EXT: u8 = 0x2c;

/// Completion code 0xC5: the reservation was cancelled (the repository changed,
/// or another client reserved it) or is invalid.
pub const CC_RESERVATION_CANCELLED: u8 = 0xc5;
/// 0xCB: the requested record or sensor is not present.
pub const CC_NOT_PRESENT: u8 = 0xcb;
/// 0xCA: cannot return the number of requested bytes.
pub const CC_CANNOT_RETURN_BYTES: u8 = 0xca;

/// The DCMI group extension identification byte.
const DCMI_GROUP: u8 = 0xdc;

/// A request: netfn, command and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub netfn: u8,
    pub cmd: u8,
    pub data: Vec<u8>,
}

/// A non-zero completion code: the device answered "no" (kept apart from a
/// transport failure, as tokio-modbus keeps exceptions apart from errors).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cc(pub u8);

impl fmt::Display for Cc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.0 {
            0xc0 => "node busy",
            0xc1 => "invalid command",
            0xc3 => "timeout",
            0xc5 => "reservation cancelled",
            0xc7 => "request data length invalid",
            0xc9 => "parameter out of range",
            0xca => "cannot return number of requested bytes",
            0xcb => "not present",
            0xcc => "invalid data field",
            0xcd => "illegal for this sensor or record",
            0xce => "response unavailable",
            0xd3 => "destination unavailable",
            0xd4 => "insufficient privilege",
            0xd5 => "not supported in present state",
            0xd6 => "sub-function disabled",
            _ => "error",
        };
        write!(f, "completion code {:#04x} ({what})", self.0)
    }
}

/// A response too short, or with a value the spec does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{command}: {detail}")]
pub struct Malformed {
    pub command: &'static str,
    pub detail: String,
}

/// One command: how to ask, and how to read the answer.
pub trait Command {
    type Output;
    /// For errors and logs.
    const NAME: &'static str;
    fn request(&self) -> Request;
    fn parse(data: &[u8]) -> Result<Self::Output, Malformed>;
}

fn need<const N: usize>(command: &'static str, data: &[u8]) -> Result<[u8; N], Malformed> {
    data.get(..N)
        .and_then(|d| <[u8; N]>::try_from(d).ok())
        .ok_or_else(|| Malformed {
            command,
            detail: format!("{} bytes, expected at least {N}", data.len()),
        })
}

fn u16le(b: [u8; 2]) -> u16 {
    u16::from_le_bytes(b)
}

fn u32le(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

/// Get SDR Repository Info (storage 0x20).
#[derive(Debug, Clone, Copy)]
pub struct GetSdrRepositoryInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SdrRepositoryInfo {
    pub records: u16,
    /// The "most recent addition" and "most recent erase" timestamps: when
    /// either changes, the cached SDRs are stale.
    pub addition_ts: u32,
    pub erase_ts: u32,
}

impl Command for GetSdrRepositoryInfo {
    type Output = SdrRepositoryInfo;
    const NAME: &'static str = "Get SDR Repository Info";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_STORAGE,
            cmd: 0x20,
            data: vec![],
        }
    }
    fn parse(data: &[u8]) -> Result<Self::Output, Malformed> {
        let d: [u8; 13] = need(Self::NAME, data)?;
        Ok(SdrRepositoryInfo {
            records: u16le([d[1], d[2]]),
            addition_ts: u32le(&d[5..9]),
            erase_ts: u32le(&d[9..13]),
        })
    }
}

/// Reserve SDR Repository (storage 0x22) -> reservation id.
#[derive(Debug, Clone, Copy)]
pub struct ReserveSdrRepository;

impl Command for ReserveSdrRepository {
    type Output = u16;
    const NAME: &'static str = "Reserve SDR Repository";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_STORAGE,
            cmd: 0x22,
            data: vec![],
        }
    }
    fn parse(data: &[u8]) -> Result<u16, Malformed> {
        need::<2>(Self::NAME, data).map(u16le)
    }
}

/// Get SDR (storage 0x23): `bytes` of record `record_id` from `offset`.
#[derive(Debug, Clone, Copy)]
pub struct GetSdr {
    pub reservation: u16,
    pub record_id: u16,
    pub offset: u8,
    pub bytes: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdrChunk {
    pub next_record_id: u16,
    pub data: Vec<u8>,
}

impl Command for GetSdr {
    type Output = SdrChunk;
    const NAME: &'static str = "Get SDR";
    fn request(&self) -> Request {
        let [r0, r1] = self.reservation.to_le_bytes();
        let [i0, i1] = self.record_id.to_le_bytes();
        Request {
            netfn: NETFN_STORAGE,
            cmd: 0x23,
            data: vec![r0, r1, i0, i1, self.offset, self.bytes],
        }
    }
    fn parse(data: &[u8]) -> Result<SdrChunk, Malformed> {
        let d: [u8; 2] = need(Self::NAME, data)?;
        Ok(SdrChunk {
            next_record_id: u16le(d),
            data: data[2..].to_vec(),
        })
    }
}

/// Get Sensor Reading (sensor/event 0x2D).
#[derive(Debug, Clone, Copy)]
pub struct GetSensorReading {
    pub sensor: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawReading {
    pub raw: u8,
    /// Bit 6 of byte 2 clear: the BMC is not scanning this sensor.
    pub scanning_disabled: bool,
    /// Bit 5 of byte 2: "reading/state unavailable".
    pub unavailable: bool,
    /// Threshold sensors: bits 0-5 = at or past LNC, LC, LNR, UNC, UC, UNR.
    /// Discrete sensors: the state bits 0-14. Absent when the BMC sends
    /// only two bytes (the spec makes byte 3 optional).
    pub states: Option<u16>,
}

impl Command for GetSensorReading {
    type Output = RawReading;
    const NAME: &'static str = "Get Sensor Reading";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_SENSOR,
            cmd: 0x2d,
            data: vec![self.sensor],
        }
    }
    fn parse(data: &[u8]) -> Result<RawReading, Malformed> {
        let [raw, flags] = need::<2>(Self::NAME, data)?;
        let states = match data.get(2..) {
            Some([lo, hi, ..]) => Some(u16::from(*lo) | (u16::from(*hi & 0x7f) << 8)),
            Some([lo]) => Some(u16::from(*lo)),
            _ => None,
        };
        Ok(RawReading {
            raw,
            scanning_disabled: flags & 0x40 == 0,
            unavailable: flags & 0x20 != 0,
            states,
        })
    }
}

/// Get Sensor Thresholds (sensor/event 0x27).
#[derive(Debug, Clone, Copy)]
pub struct GetSensorThresholds {
    pub sensor: u8,
}

/// Raw threshold bytes, `None` where the BMC says the threshold is not readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct RawThresholds {
    pub lnc: Option<u8>,
    pub lc: Option<u8>,
    pub lnr: Option<u8>,
    pub unc: Option<u8>,
    pub uc: Option<u8>,
    pub unr: Option<u8>,
}

impl Command for GetSensorThresholds {
    type Output = RawThresholds;
    const NAME: &'static str = "Get Sensor Thresholds";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_SENSOR,
            cmd: 0x27,
            data: vec![self.sensor],
        }
    }
    fn parse(data: &[u8]) -> Result<RawThresholds, Malformed> {
        let d: [u8; 7] = need(Self::NAME, data)?;
        let readable = d[0];
        let at = |bit: u8| (readable & (1 << bit) != 0).then_some(d[1 + usize::from(bit)]);
        Ok(RawThresholds {
            lnc: at(0),
            lc: at(1),
            lnr: at(2),
            unc: at(3),
            uc: at(4),
            unr: at(5),
        })
    }
}

/// Get SEL Info (storage 0x40).
#[derive(Debug, Clone, Copy)]
pub struct GetSelInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelInfo {
    pub entries: u16,
    pub free_bytes: u16,
    pub addition_ts: u32,
    pub erase_ts: u32,
    /// Operation support bit 7: events were dropped because the SEL is full.
    pub overflow: bool,
}

impl Command for GetSelInfo {
    type Output = SelInfo;
    const NAME: &'static str = "Get SEL Info";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_STORAGE,
            cmd: 0x40,
            data: vec![],
        }
    }
    fn parse(data: &[u8]) -> Result<SelInfo, Malformed> {
        let d: [u8; 14] = need(Self::NAME, data)?;
        Ok(SelInfo {
            entries: u16le([d[1], d[2]]),
            free_bytes: u16le([d[3], d[4]]),
            addition_ts: u32le(&d[5..9]),
            erase_ts: u32le(&d[9..13]),
            overflow: d[13] & 0x80 != 0,
        })
    }
}

/// Get SEL Entry (storage 0x43), the whole 16-byte record (no reservation
/// needed for whole-record reads).
#[derive(Debug, Clone, Copy)]
pub struct GetSelEntry {
    pub record_id: u16,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SelEntry {
    pub next_record_id: u16,
    pub record: [u8; 16],
}

impl Command for GetSelEntry {
    type Output = SelEntry;
    const NAME: &'static str = "Get SEL Entry";
    fn request(&self) -> Request {
        let [i0, i1] = self.record_id.to_le_bytes();
        Request {
            netfn: NETFN_STORAGE,
            cmd: 0x43,
            data: vec![0, 0, i0, i1, 0, 0xff],
        }
    }
    fn parse(data: &[u8]) -> Result<SelEntry, Malformed> {
        let d: [u8; 18] = need(Self::NAME, data)?;
        let mut record = [0u8; 16];
        record.copy_from_slice(&d[2..18]);
        Ok(SelEntry {
            next_record_id: u16le([d[0], d[1]]),
            record,
        })
    }
}

/// Get Chassis Status (chassis 0x01).
#[derive(Debug, Clone, Copy)]
pub struct GetChassisStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChassisStatus {
    pub power_on: bool,
    pub power_overload: bool,
    pub power_fault: bool,
    pub power_control_fault: bool,
    pub intrusion: bool,
    pub drive_fault: bool,
    pub cooling_fault: bool,
}

impl Command for GetChassisStatus {
    type Output = ChassisStatus;
    const NAME: &'static str = "Get Chassis Status";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_CHASSIS,
            cmd: 0x01,
            data: vec![],
        }
    }
    fn parse(data: &[u8]) -> Result<ChassisStatus, Malformed> {
        let [power, _last_event, misc] = need::<3>(Self::NAME, data)?;
        Ok(ChassisStatus {
            power_on: power & 0x01 != 0,
            power_overload: power & 0x02 != 0,
            power_fault: power & 0x08 != 0,
            power_control_fault: power & 0x10 != 0,
            intrusion: misc & 0x01 != 0,
            drive_fault: misc & 0x04 != 0,
            cooling_fault: misc & 0x08 != 0,
        })
    }
}

/// DCMI Get Power Reading (group extension 0x02, system power statistics).
#[derive(Debug, Clone, Copy)]
pub struct DcmiGetPowerReading;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerReading {
    pub current_watts: u16,
    /// Byte 18 bit 6: "power measurement active"; when clear the numbers are stale.
    pub active: bool,
}

impl Command for DcmiGetPowerReading {
    type Output = PowerReading;
    const NAME: &'static str = "DCMI Get Power Reading";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_GROUP_EXT,
            cmd: 0x02,
            data: vec![DCMI_GROUP, 0x01, 0x00, 0x00],
        }
    }
    fn parse(data: &[u8]) -> Result<PowerReading, Malformed> {
        let d: [u8; 18] = need(Self::NAME, data)?;
        if d[0] != DCMI_GROUP {
            return Err(Malformed {
                command: Self::NAME,
                detail: format!("group id {:#04x}, expected 0xdc", d[0]),
            });
        }
        Ok(PowerReading {
            current_watts: u16le([d[1], d[2]]),
            active: d[17] & 0x40 != 0,
        })
    }
}

/// Get Session Info (app 0x3D) for the session it is sent in -> its handle.
#[derive(Debug, Clone, Copy)]
pub struct GetOwnSessionHandle;

impl Command for GetOwnSessionHandle {
    type Output = u8;
    const NAME: &'static str = "Get Session Info";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_APP,
            cmd: 0x3d,
            data: vec![0x00],
        }
    }
    fn parse(data: &[u8]) -> Result<u8, Malformed> {
        need::<1>(Self::NAME, data).map(|[h]| h)
    }
}

/// Close Session (app 0x3C) by handle: ipmi-rs keeps the session id to
/// itself, and a BMC has few session slots to leak.
#[derive(Debug, Clone, Copy)]
pub struct CloseSessionByHandle(pub u8);

impl Command for CloseSessionByHandle {
    type Output = ();
    const NAME: &'static str = "Close Session";
    fn request(&self) -> Request {
        Request {
            netfn: NETFN_APP,
            cmd: 0x3c,
            data: vec![0, 0, 0, 0, self.0],
        }
    }
    fn parse(_: &[u8]) -> Result<(), Malformed> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_and_sel_info_parse_the_simulators_answers() {
        // Captured from ipmi_sim (`ipmitool raw 0x0a 0x20` / `0x0a 0x40`).
        let sdr = [
            0x51, 0x06, 0x00, 0xfe, 0xff, 0x97, 0x35, 0x07, 0x6b, 0x00, 0x00, 0x00, 0x00, 0x02,
        ];
        let info = GetSdrRepositoryInfo::parse(&sdr).unwrap();
        assert_eq!(info.records, 6);
        assert_eq!(info.addition_ts, 0x6b07_3597);
        assert_eq!(info.erase_ts, 0);
        let sel = [
            0x51, 0x04, 0x00, 0x40, 0x3e, 0x24, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x0a,
        ];
        let info = GetSelInfo::parse(&sel).unwrap();
        assert_eq!((info.entries, info.free_bytes), (4, 0x3e40));
        assert!(!info.overflow);
        let mut full = sel;
        full[13] |= 0x80;
        assert!(GetSelInfo::parse(&full).unwrap().overflow);
    }

    #[test]
    fn short_answers_are_malformed_never_a_panic() {
        for len in 0..20 {
            let data = vec![0x5a; len];
            let _ = GetSdrRepositoryInfo::parse(&data);
            let _ = ReserveSdrRepository::parse(&data);
            let _ = GetSdr::parse(&data);
            let _ = GetSensorReading::parse(&data);
            let _ = GetSensorThresholds::parse(&data);
            let _ = GetSelInfo::parse(&data);
            let _ = GetSelEntry::parse(&data);
            let _ = GetChassisStatus::parse(&data);
            let _ = DcmiGetPowerReading::parse(&data);
            let _ = GetOwnSessionHandle::parse(&data);
        }
        let e = GetSensorReading::parse(&[0x10]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Get Sensor Reading: 1 bytes, expected at least 2"
        );
        assert!(DcmiGetPowerReading::parse(&[0u8; 18]).is_err()); // wrong group id
    }

    #[test]
    fn sensor_reading_flags_and_optional_state_bytes() {
        let r = GetSensorReading::parse(&[0x95, 0xc0, 0x18]).unwrap();
        assert_eq!(r.raw, 0x95);
        assert!(!r.scanning_disabled && !r.unavailable);
        assert_eq!(r.states, Some(0x18));
        let r = GetSensorReading::parse(&[0x00, 0x20]).unwrap();
        assert!(r.scanning_disabled && r.unavailable);
        assert_eq!(r.states, None);
        // Discrete: byte 4 carries states 8-14; its bit 7 is reserved.
        let r = GetSensorReading::parse(&[0x00, 0xc0, 0x02, 0xff]).unwrap();
        assert_eq!(r.states, Some(0x7f02));
    }

    #[test]
    fn thresholds_honour_the_readable_mask() {
        let t = GetSensorThresholds::parse(&[0x38, 1, 2, 3, 0x70, 0x90, 0xa0]).unwrap();
        assert_eq!(t.lnc, None);
        assert_eq!((t.unc, t.uc, t.unr), (Some(0x70), Some(0x90), Some(0xa0)));
    }

    #[test]
    fn requests_are_laid_out_little_endian() {
        let r = GetSdr {
            reservation: 0x1234,
            record_id: 0xabcd,
            offset: 5,
            bytes: 16,
        }
        .request();
        assert_eq!((r.netfn, r.cmd), (0x0a, 0x23));
        assert_eq!(r.data, vec![0x34, 0x12, 0xcd, 0xab, 5, 16]);
        assert_eq!(
            DcmiGetPowerReading.request().data,
            vec![0xdc, 0x01, 0x00, 0x00]
        );
        let c = GetChassisStatus::parse(&[0x09, 0x00, 0x0c]).unwrap();
        assert!(c.power_on && c.power_fault && c.drive_fault && c.cooling_fault);
        assert!(!c.intrusion && !c.power_overload);
    }
}
