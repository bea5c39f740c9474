//! What a poll costs on the wire: frame sizes of the read requests and their
//! answers, and the time they hold a serial bus. Pure arithmetic over a list
//! of reads (a [`Plan`]'s blocks, or one read per point as a per-metric
//! poller does), for sizing poll intervals and timeouts on RS-485 lines.
//!
//! Frame sizes are those of the Modbus Application Protocol 1.1b3 (6.1-6.4)
//! and the serial line guide 1.02 (2.5.1) for function codes 1-4 only:
//!
//! | framing | request | normal answer |
//! |---|---|---|
//! | RTU | unit 1 + FC 1 + address 2 + count 2 + CRC 2 = 8 | unit 1 + FC 1 + byte count 1 + data + CRC 2 = 5 + data |
//! | TCP | MBAP 7 + PDU 5 = 12 | MBAP 7 + FC 1 + byte count 1 + data = 9 + data |
//!
//! where data is 2 bytes per register, or one byte per 8 bits (rounded up).
//! TCP figures leave out the TCP/IP headers under the MBAP.

use std::time::Duration;

use crate::plan::Plan;
use crate::profile::Profile;
use crate::types::Table;

/// How requests are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Modbus RTU: unit id, PDU, CRC-16 (serial lines, RTU over TCP).
    Rtu,
    /// Modbus TCP: MBAP header (7 bytes, the unit id included) and PDU.
    Tcp,
}

impl Framing {
    /// Bytes of one read request (FC 1-4 all carry an address and a count).
    pub fn request_bytes(self) -> u32 {
        match self {
            Framing::Rtu => 1 + 5 + 2,
            Framing::Tcp => 7 + 5,
        }
    }

    /// Bytes of the normal answer to reading `count` registers or bits of `table`.
    pub fn response_bytes(self, table: Table, count: u16) -> u32 {
        let data = if table.is_bits() {
            u32::from(count).div_ceil(8)
        } else {
            2 * u32::from(count)
        };
        match self {
            Framing::Rtu => 1 + 2 + data + 2,
            Framing::Tcp => 7 + 2 + data,
        }
    }
}

/// A serial line's timing, and how long a device takes to start answering.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SerialTiming {
    pub baud: u32,
    /// Bits per character on the wire. Modbus RTU characters are 11 bits:
    /// start, 8 data, parity (or a second stop bit when there is no parity),
    /// stop. A line really set to 8N1 sends 10.
    pub bits_per_char: u32,
    /// From the end of a request (after its 3.5-character silence) to the
    /// first byte of the answer: the device's own processing time, which no
    /// standard bounds.
    pub turnaround: Duration,
}

impl SerialTiming {
    /// 9600 baud, 11-bit characters, `turnaround` per request.
    pub fn baud_9600(turnaround: Duration) -> SerialTiming {
        SerialTiming {
            baud: 9600,
            bits_per_char: 11,
            turnaround,
        }
    }

    /// Time one character takes on the wire.
    pub fn char_time(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.bits_per_char) / f64::from(self.baud.max(1)))
    }

    /// The silence that ends a frame: 3.5 characters, or a fixed 1.75 ms above
    /// 19200 baud (serial line guide 2.5.1.1).
    pub fn frame_gap(&self) -> Duration {
        if self.baud > 19_200 {
            Duration::from_micros(1_750)
        } else {
            self.char_time().mul_f64(3.5)
        }
    }

    /// Bus time of one transaction: request, the gap that ends it, the
    /// device's turnaround, the answer, and the gap before the next request.
    pub fn transaction_time(&self, request_bytes: u32, response_bytes: u32) -> Duration {
        self.char_time() * (request_bytes + response_bytes) + self.frame_gap() * 2 + self.turnaround
    }

    /// The widest register gap worth reading over on this line: filling it
    /// costs less bus time than the request it saves (a request frame, an
    /// empty answer's frame, two gaps and a turnaround, against 2 bytes per
    /// register). Bits cost an eighth of a byte each, so this bound is the
    /// one that matters for `gap_fill`.
    pub fn break_even_gap_registers(&self) -> u16 {
        let char_time = self.char_time().as_secs_f64();
        let request = char_time
            * f64::from(
                Framing::Rtu.request_bytes() + Framing::Rtu.response_bytes(Table::Holding, 0),
            )
            + self.frame_gap().as_secs_f64() * 2.0
            + self.turnaround.as_secs_f64();
        (request / (2.0 * char_time))
            .floor()
            .min(f64::from(u16::MAX)) as u16
    }
}

/// One read: a table and how many registers (or bits) from one address.
pub type Read = (Table, u16);

/// The reads of a plan, one per block.
pub fn plan_reads(plan: &Plan) -> Vec<Read> {
    plan.blocks().iter().map(|b| (b.table, b.count)).collect()
}

/// One read per point, as a poller with one request per metric makes
/// (prometheus modbus_exporter, most SCADA tag lists).
pub fn per_point_reads(profile: &Profile) -> Vec<Read> {
    profile
        .points()
        .iter()
        .map(|p| (p.table, p.width()))
        .collect()
}

/// What a list of reads costs per poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cost {
    pub transactions: usize,
    /// Registers plus bits asked for (gap fill included).
    pub units_read: u32,
    pub request_bytes: u32,
    pub response_bytes: u32,
}

impl Cost {
    /// Adds up `reads` in `framing`.
    pub fn of(reads: &[Read], framing: Framing) -> Cost {
        reads
            .iter()
            .fold(Cost::default(), |c, &(table, count)| Cost {
                transactions: c.transactions + 1,
                units_read: c.units_read + u32::from(count),
                request_bytes: c.request_bytes + framing.request_bytes(),
                response_bytes: c.response_bytes + framing.response_bytes(table, count),
            })
    }

    /// Request and answer bytes together.
    pub fn bytes(&self) -> u32 {
        self.request_bytes + self.response_bytes
    }

    /// Bus time on a serial line (meaningful for [`Framing::Rtu`] costs).
    pub fn bus_time(&self, timing: &SerialTiming) -> Duration {
        timing.char_time() * self.bytes()
            + (timing.frame_gap() * 2 + timing.turnaround) * self.transactions as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_sizes_match_the_specification_examples() {
        // MODBUS over serial line 1.02, and the application protocol's 6.3
        // example: read 3 holding registers -> 6 data bytes.
        assert_eq!(Framing::Rtu.request_bytes(), 8);
        assert_eq!(Framing::Rtu.response_bytes(Table::Holding, 3), 11);
        assert_eq!(Framing::Tcp.request_bytes(), 12);
        assert_eq!(Framing::Tcp.response_bytes(Table::Input, 3), 15);
        // 6.1's example: 19 coils come in 3 bytes.
        assert_eq!(Framing::Rtu.response_bytes(Table::Coil, 19), 8);
        assert_eq!(Framing::Tcp.response_bytes(Table::Discrete, 8), 10);
    }

    #[test]
    fn bus_time_at_9600_counts_characters_gaps_and_turnaround() {
        let t = SerialTiming::baud_9600(Duration::from_millis(10));
        // 11 bits at 9600 baud.
        assert_eq!(t.char_time().as_nanos(), 1_145_833);
        assert_eq!(t.frame_gap().as_micros(), 4_010);
        // Read 2 registers: 8 + 9 bytes, two gaps, one turnaround.
        let cost = Cost::of(&[(Table::Holding, 2)], Framing::Rtu);
        assert_eq!(cost.bytes(), 17);
        let expected = t.char_time() * 17 + t.frame_gap() * 2 + Duration::from_millis(10);
        assert_eq!(cost.bus_time(&t), expected);
        assert_eq!(
            t.transaction_time(8, 9),
            expected,
            "one transaction, two ways"
        );
        assert!((cost.bus_time(&t).as_secs_f64() - 0.037_50).abs() < 1e-4);
    }

    #[test]
    fn a_gap_is_worth_filling_up_to_the_cost_of_a_request() {
        // 13 frame bytes + 7 characters of gaps + 10 ms = 32.9 ms = 14.4 registers.
        let t = SerialTiming::baud_9600(Duration::from_millis(10));
        assert_eq!(t.break_even_gap_registers(), 14);
        let slow_device = SerialTiming::baud_9600(Duration::from_millis(50));
        assert_eq!(slow_device.break_even_gap_registers(), 31);
    }

    #[test]
    fn fast_lines_use_the_fixed_gap() {
        let t = SerialTiming {
            baud: 38_400,
            bits_per_char: 11,
            turnaround: Duration::ZERO,
        };
        assert_eq!(t.frame_gap(), Duration::from_micros(1_750));
    }

    #[test]
    fn a_plan_never_takes_more_requests_than_one_read_per_point() {
        for s in crate::shipped::SHIPPED {
            let profile = Profile::from_toml(s.text, s.path).unwrap();
            let plan = Cost::of(&plan_reads(&Plan::new(&profile)), Framing::Rtu);
            let naive = Cost::of(&per_point_reads(&profile), Framing::Rtu);
            assert!(plan.transactions <= naive.transactions, "{}", s.name);
            assert_eq!(naive.transactions, profile.points().len());
        }
    }
}
