//! Raw sensor bytes -> numbers: the conversion of a full sensor record
//! (IPMI 2.0 section 36.3): `y = L[(M * x + B * 10^Bexp) * 10^Rexp]`.
//!
//! ipmi-rs keeps the converted number inside its own `Value` type; the
//! agent needs the number itself, and the same formula for thresholds and for
//! the trigger readings of SEL entries, so it is applied here from the SDR bytes.

/// How the raw reading byte is to be read (SDR "analog data format").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum AnalogFormat {
    Unsigned,
    OnesComplement,
    TwosComplement,
    /// "Does not return analog (numeric) reading".
    None,
}

impl AnalogFormat {
    /// From bits 7:6 of the SDR's "sensor units 1" byte.
    pub fn from_units1(units1: u8) -> Self {
        match units1 >> 6 {
            0 => AnalogFormat::Unsigned,
            1 => AnalogFormat::OnesComplement,
            2 => AnalogFormat::TwosComplement,
            _ => AnalogFormat::None,
        }
    }
}

/// The conversion factors of one full sensor record.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Factors {
    pub m: i16,
    pub b: i16,
    /// The B exponent (K1).
    pub b_exp: i8,
    /// The result exponent (K2).
    pub r_exp: i8,
    pub format: AnalogFormat,
    /// The linearization code (byte 24, bits 6:0): 0 linear, 1-11 a known
    /// function of the linear value, 0x70-0x7F non-linear.
    pub linearization: u8,
}

/// Why a sensor's number cannot be computed from its SDR alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unconvertible {
    #[error("the sensor returns no analog reading")]
    NoAnalogReading,
    #[error("non-linear sensor (linearization {0:#04x}) needs Get Sensor Reading Factors")]
    NonLinear(u8),
    #[error("reserved linearization {0:#04x}")]
    Reserved(u8),
}

/// Sign-extends the low `bits` bits of `v`.
fn sign_extend(v: u16, bits: u32) -> i16 {
    let shift = 16 - bits;
    ((v << shift) as i16) >> shift
}

impl Factors {
    /// From the SDR bytes holding units 1 (record byte 21), linearization (24),
    /// M (25, 26), B (27, 28) and the exponents (30), given as the six bytes
    /// `[m_ls, m_ms_tol, b_ls, b_ms_acc, acc_dir, rexp_bexp]` plus the two others.
    pub fn from_sdr(units1: u8, linearization: u8, mb: [u8; 6]) -> Factors {
        let [m_ls, m_ms, b_ls, b_ms, _accuracy, exps] = mb;
        // M and B are 10-bit two's complement: 8 low bits, then the top 2 bits
        // of the next byte.
        let m = sign_extend(u16::from(m_ls) | (u16::from(m_ms >> 6) << 8), 10);
        let b = sign_extend(u16::from(b_ls) | (u16::from(b_ms >> 6) << 8), 10);
        let r_exp = sign_extend(u16::from(exps >> 4), 4) as i8;
        let b_exp = sign_extend(u16::from(exps & 0x0f), 4) as i8;
        Factors {
            m,
            b,
            b_exp,
            r_exp,
            format: AnalogFormat::from_units1(units1),
            linearization: linearization & 0x7f,
        }
    }

    /// Whether [`Factors::convert`] can work for this sensor at all.
    pub fn check(&self) -> Result<(), Unconvertible> {
        if self.format == AnalogFormat::None {
            return Err(Unconvertible::NoAnalogReading);
        }
        match self.linearization {
            0..=0x0b => Ok(()),
            l @ 0x70..=0x7f => Err(Unconvertible::NonLinear(l)),
            l => Err(Unconvertible::Reserved(l)),
        }
    }

    /// The raw byte as the signed or unsigned number the formula takes.
    fn x(&self, raw: u8) -> Option<f64> {
        match self.format {
            AnalogFormat::Unsigned => Some(f64::from(raw)),
            // One's complement: a set sign bit means -(bitwise not); 0xFF is -0.
            AnalogFormat::OnesComplement if raw & 0x80 != 0 => Some(-f64::from(!raw)),
            AnalogFormat::OnesComplement => Some(f64::from(raw)),
            AnalogFormat::TwosComplement => Some(f64::from(raw as i8)),
            AnalogFormat::None => None,
        }
    }

    /// The reading in the sensor's units, or `None` when it has no number
    /// (no analog reading, non-linear, or outside the function's domain).
    pub fn convert(&self, raw: u8) -> Option<f64> {
        self.check().ok()?;
        let x = self.x(raw)?;
        let linear = (f64::from(self.m) * x
            + f64::from(self.b) * 10f64.powi(i32::from(self.b_exp)))
            * 10f64.powi(i32::from(self.r_exp));
        let y = match self.linearization {
            0 => linear,
            1 => linear.ln(),
            2 => linear.log10(),
            3 => linear.log2(),
            4 => linear.exp(),
            5 => 10f64.powf(linear),
            6 => linear.exp2(),
            7 => linear.recip(),
            8 => linear * linear,
            9 => linear * linear * linear,
            10 => linear.sqrt(),
            11 => linear.cbrt(),
            _ => return None,
        };
        y.is_finite().then_some(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn m_and_b_are_ten_bit_twos_complement_and_exponents_four_bit() {
        // M = 0x3FF (-1), B = 0x200 (-512), Rexp = 0xF (-1), Bexp = 0x7 (7).
        let f = Factors::from_sdr(0x00, 0x00, [0xff, 0xc0, 0x00, 0x80, 0x00, 0xf7]);
        assert_eq!((f.m, f.b, f.r_exp, f.b_exp), (-1, -512, -1, 7));
        // M = 392 = 0x188: low byte 0x88, top bits 01 in bits 7:6 of the next byte.
        let f = Factors::from_sdr(0x00, 0x00, [0x88, 0x40, 0x00, 0x00, 0x00, 0xf0]);
        assert_eq!((f.m, f.b, f.r_exp, f.b_exp), (392, 0, -1, 0));
    }

    #[test]
    fn marvell_fan_and_voltage_records_convert_like_ipmitool() {
        // fan.sdrs: M 392, Rexp -1: raw 1 -> 39.2 rpm, raw 26 -> 1019.2 (its lc threshold).
        let fan = Factors::from_sdr(0x00, 0x00, [0x88, 0x40, 0x00, 0x00, 0x00, 0xf0]);
        assert!(close(fan.convert(1), 39.2));
        assert!(close(fan.convert(26), 1019.2));
        // "3.3V Switch": M 313, Rexp -5, Bexp 4 (B 0 here).
        let v33 = Factors::from_sdr(0x00, 0x00, [0x39, 0x40, 0x00, 0x00, 0x00, 0xb4]);
        assert_eq!((v33.m, v33.r_exp, v33.b_exp), (313, -5, 4));
        assert!(close(v33.convert(100), 0.313));
    }

    #[test]
    fn signed_formats_read_the_sign_bit() {
        let ones = Factors::from_sdr(0x40, 0x00, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert!(close(ones.convert(0xfe), -1.0));
        assert!(close(ones.convert(0xff), 0.0)); // -0
        assert!(close(ones.convert(0x05), 5.0));
        let twos = Factors::from_sdr(0x80, 0x00, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert!(close(twos.convert(0xfe), -2.0));
        assert!(close(twos.convert(0x80), -128.0));
        let unsigned = Factors::from_sdr(0x00, 0x00, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert!(close(unsigned.convert(0xfe), 254.0));
    }

    #[test]
    fn b_offsets_with_its_exponent_and_linearization_functions_apply() {
        // M 2, B 5, Bexp 1, Rexp -1: (2x + 50) / 10.
        let f = Factors::from_sdr(0x00, 0x00, [0x02, 0x00, 0x05, 0x00, 0x00, 0xf1]);
        assert!(close(f.convert(10), 7.0));
        let sqr = Factors::from_sdr(0x00, 0x08, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert!(close(sqr.convert(3), 9.0));
        let inv = Factors::from_sdr(0x00, 0x07, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert!(close(inv.convert(4), 0.25));
        assert_eq!(inv.convert(0), None); // 1/0 is no reading, not infinity
    }

    #[test]
    fn non_linear_and_no_analog_sensors_are_refused_with_a_reason() {
        let nl = Factors::from_sdr(0x00, 0x70, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(nl.check(), Err(Unconvertible::NonLinear(0x70)));
        assert_eq!(nl.convert(1), None);
        let none = Factors::from_sdr(0xc0, 0x00, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(none.check(), Err(Unconvertible::NoAnalogReading));
        let reserved = Factors::from_sdr(0x00, 0x0c, [0x01, 0x00, 0x00, 0x00, 0x00, 0x00]);
        assert_eq!(reserved.check(), Err(Unconvertible::Reserved(0x0c)));
    }
}
