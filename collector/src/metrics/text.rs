//! A hand-written writer of the text expositions for the readings' families:
//! a million series a scrape go through here.
//!
//! prometheus-client's encoders hand every label key, value and separator
//! through a chain of `fmt::Write` wrappers and look at each byte of a label
//! value one call at a time; at a million series that was most of a scrape
//! (`perf`: its label value writer alone 20 %). This writer appends to one
//! `String` and checks each value for the three escaped bytes in one pass. It
//! writes what prometheus-client writes, byte for byte (the tests compare the
//! two on the same families), so that a family here and the collector's own
//! metrics, still encoded through the registry, make one consistent exposition.
//!
//! One deliberate difference: a non-finite value is `+Inf`, `-Inf` or `NaN` in
//! both formats, as both specifications say (prometheus-client 0.26 writes
//! `inf` in OpenMetrics). Readings decoded from JSON are finite, so this is
//! for completeness, not for the fleet.

use prometheus_client::metrics::MetricType;

use super::Format;

/// Appends families to an exposition in one format.
pub(super) struct Text<'a> {
    out: &'a mut String,
    format: Format,
    /// Where what was written goes between two holds of the state's lock,
    /// once there is at least [`FLUSH_AT`] of it: the scrape's response,
    /// chunk by chunk. `false` from it: nobody wants the rest.
    sink: Option<&'a mut dyn FnMut(&mut String) -> bool>,
}

/// How much a streamed exposition gathers before it is handed on.
pub(crate) const FLUSH_AT: usize = 1 << 20;

/// The name a family's samples carry: `base[_unit][_total]`.
pub(super) struct SampleName(String);

impl<'a> Text<'a> {
    /// Writes into `out`, all of it (the tests' writer).
    #[cfg(test)]
    pub(super) fn new(out: &'a mut String, format: Format) -> Self {
        Text {
            out,
            format,
            sink: None,
        }
    }

    /// Writes into `out`, handing it to `sink` at [`Text::between_holds`]
    /// whenever it holds [`FLUSH_AT`] or more (`sink` takes what it wants
    /// and leaves `out` empty).
    pub(super) fn streaming(
        out: &'a mut String,
        format: Format,
        sink: &'a mut dyn FnMut(&mut String) -> bool,
    ) -> Self {
        Text {
            out,
            format,
            sink: Some(sink),
        }
    }

    /// Called with the state's lock released: hands what was written on if
    /// there is enough of it, so that a slow client makes the scrape wait,
    /// never ingest. `false`: the receiver is gone, stop writing.
    pub(super) fn between_holds(&mut self) -> bool {
        match &mut self.sink {
            Some(sink) if self.out.len() >= FLUSH_AT => sink(self.out),
            _ => true,
        }
    }

    /// Writes a family's HELP and TYPE lines (and UNIT in OpenMetrics), and
    /// gives the name of its samples. `base` is the name without the unit and
    /// without `_total`, as prometheus-client's `encode_descriptor` takes it.
    pub(super) fn descriptor(
        &mut self,
        base: &str,
        help: &str,
        unit: Option<&str>,
        metric_type: MetricType,
    ) -> SampleName {
        let counter = metric_type == MetricType::Counter;
        let mut family = String::with_capacity(base.len() + 16);
        family.push_str(base);
        if let Some(u) = unit {
            family.push('_');
            family.push_str(u);
        }
        let mut sample = family.clone();
        if counter {
            sample.push_str("_total");
        }
        // Prometheus text names the family by its samples' name (a counter's
        // with `_total`) and has no UNIT line; OpenMetrics names it without
        // the suffix and gives the unit its own line.
        let (described, type_name) = match self.format {
            Format::Prometheus => (&sample, if counter { "counter" } else { "gauge" }),
            Format::OpenMetrics => (&family, metric_type.as_str()),
        };
        self.out.push_str("# HELP ");
        self.out.push_str(described);
        self.out.push(' ');
        match self.format {
            Format::Prometheus => push_escaped(self.out, help, false),
            Format::OpenMetrics => self.out.push_str(help),
        }
        self.out.push_str("\n# TYPE ");
        self.out.push_str(described);
        self.out.push(' ');
        self.out.push_str(type_name);
        self.out.push('\n');
        if let (Format::OpenMetrics, Some(u)) = (self.format, unit) {
            self.out.push_str("# UNIT ");
            self.out.push_str(&family);
            self.out.push(' ');
            self.out.push_str(u);
            self.out.push('\n');
        }
        SampleName(sample)
    }

    /// Starts a sample of the family named `name`: add its labels, then its value.
    #[inline]
    pub(super) fn sample<'s>(&'s mut self, name: &SampleName) -> Sample<'s> {
        self.out.push_str(&name.0);
        Sample {
            out: self.out,
            labelled: false,
        }
    }

    /// Starts a sample with the start of its line written before (see
    /// [`Prefix`]): the name and the first labels, copied in one go.
    #[inline]
    pub(super) fn sample_after<'s>(&'s mut self, prefix: &Prefix) -> Sample<'s> {
        self.out.push_str(&prefix.text);
        Sample {
            out: self.out,
            labelled: prefix.labelled,
        }
    }
}

/// The start of a sample line (its name and first labels) kept for the
/// samples that follow with the same: in a family sorted by host, a host's
/// series share their site and host labels, and mostly their source and
/// device, so those are escaped and written once a run instead of once a
/// series.
pub(super) struct Prefix {
    text: String,
    labelled: bool,
}

impl Prefix {
    /// The start of the lines of `name` with `labels`.
    pub(super) fn new(name: &SampleName, labels: &[(&str, &str)]) -> Self {
        let mut text = String::with_capacity(name.0.len() + 64);
        text.push_str(&name.0);
        let sample = Sample {
            out: &mut text,
            labelled: false,
        };
        let labelled = labels
            .iter()
            .fold(sample, |s, (k, v)| s.label(k, v))
            .labelled;
        Prefix { text, labelled }
    }
}

/// One sample line being written.
pub(super) struct Sample<'a> {
    out: &'a mut String,
    labelled: bool,
}

impl<'a> Sample<'a> {
    /// Adds a label (the key is written as it is: label names are checked
    /// where they come in).
    #[inline]
    pub(super) fn label(mut self, key: &str, value: &str) -> Self {
        self.out.push(if self.labelled { ',' } else { '{' });
        self.labelled = true;
        self.out.push_str(key);
        self.out.push_str("=\"");
        push_escaped(self.out, value, true);
        self.out.push('"');
        self
    }

    /// Ends the line with a float value.
    #[inline]
    pub(super) fn value(self, v: f64) {
        let out = self.close();
        if v.is_finite() {
            out.push_str(dtoa::Buffer::new().format_finite(v));
        } else {
            out.push_str(non_finite(v));
        }
        out.push('\n');
    }

    /// Ends the line with an integer value.
    #[inline]
    pub(super) fn int(self, v: i64) {
        let out = self.close();
        out.push_str(itoa::Buffer::new().format(v));
        out.push('\n');
    }

    fn close(self) -> &'a mut String {
        if self.labelled {
            self.out.push('}');
        }
        self.out.push(' ');
        self.out
    }
}

/// Appends `s`, escaping what the formats escape: backslash and newline, and
/// in a label value the double quote. Most values have none of them and go
/// in with one copy.
#[inline]
fn push_escaped(out: &mut String, s: &str, quote: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    if !s.bytes().any(special) {
        out.push_str(s);
        return;
    }
    push_escaped_slow(out, s, quote);
}

#[cold]
fn push_escaped_slow(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// The spelling of a non-finite value in both formats.
#[cold]
fn non_finite(v: f64) -> &'static str {
    if v.is_nan() {
        "NaN"
    } else if v.is_sign_positive() {
        "+Inf"
    } else {
        "-Inf"
    }
}

#[cfg(test)]
mod tests {
    use std::fmt;

    use prometheus_client::collector::Collector;
    use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
    use prometheus_client::registry::{Registry, Unit};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// A family as both writers are given it.
    #[derive(Debug, Clone)]
    struct Fam {
        base: String,
        help: String,
        unit: Option<String>,
        metric_type: MetricType,
        samples: Vec<(Vec<(String, String)>, Value)>,
    }

    #[derive(Debug, Clone, Copy)]
    enum Value {
        Float(f64),
        Int(i64),
    }

    /// The oracle: the same families through prometheus-client's encoders.
    #[derive(Debug)]
    struct Reference(Vec<Fam>);

    impl Collector for Reference {
        fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
            for f in &self.0 {
                let unit = f.unit.clone().map(Unit::Other);
                let mut m =
                    encoder.encode_descriptor(&f.base, &f.help, unit.as_ref(), f.metric_type)?;
                for (labels, v) in &f.samples {
                    let labels: Vec<(&str, &str)> = labels
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let mut s = m.encode_family(&labels)?;
                    match (f.metric_type, v) {
                        (MetricType::Counter, Value::Float(x)) => {
                            s.encode_counter::<NoLabelSet, _, u64>(x, None)?
                        }
                        (MetricType::Counter, Value::Int(x)) => {
                            s.encode_counter::<NoLabelSet, _, u64>(&x.unsigned_abs(), None)?
                        }
                        (_, Value::Float(x)) => s.encode_gauge(x)?,
                        (_, Value::Int(x)) => s.encode_gauge(x)?,
                    }
                }
            }
            Ok(())
        }
    }

    fn by_reference(fams: &[Fam], format: Format) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(Reference(fams.to_vec())));
        let mut out = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &registry).unwrap()
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode_registry(&mut out, &registry).unwrap()
            }
        }
        out
    }

    /// Each sample's first labels (a varying number of them, none included)
    /// through a [`Prefix`] when `prefixed`.
    fn by_hand(fams: &[Fam], format: Format, prefixed: bool) -> String {
        let mut out = String::new();
        let mut text = Text::new(&mut out, format);
        for f in fams {
            let name = text.descriptor(&f.base, &f.help, f.unit.as_deref(), f.metric_type);
            for (i, (labels, v)) in f.samples.iter().enumerate() {
                let first = if prefixed { i % (labels.len() + 1) } else { 0 };
                let (before, after) = labels.split_at(first);
                let mut s = if prefixed {
                    let before: Vec<(&str, &str)> = before
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    text.sample_after(&Prefix::new(&name, &before))
                } else {
                    text.sample(&name)
                };
                for (k, val) in after {
                    s = s.label(k, val);
                }
                match v {
                    Value::Float(x) => s.value(*x),
                    Value::Int(x) if f.metric_type == MetricType::Counter => {
                        s.int(i64::try_from(x.unsigned_abs()).unwrap())
                    }
                    Value::Int(x) => s.int(*x),
                }
            }
        }
        out
    }

    fn any_text(rng: &mut StdRng, max: usize) -> String {
        const POOL: &[char] = &[
            'a', 'z', 'Q', '0', '9', '_', '-', '.', ' ', '/', '\\', '"', '\n', '{', '}', '=', ',',
            '#', 'é', '中', '🙂', '\t',
        ];
        let n = rng.random_range(0..=max);
        (0..n)
            .map(|_| POOL[rng.random_range(0..POOL.len())])
            .collect()
    }

    fn any_finite(rng: &mut StdRng) -> f64 {
        match rng.random_range(0..8) {
            0 => f64::from(rng.random_range(-1000i32..1000)),
            1 => rng.random::<f64>(),
            2 => -rng.random::<f64>() * 1e6,
            3 => f64::from_bits(
                rng.random::<u64>() & !(0x7ff << 52) | (rng.random_range(1u64..0x7fe) << 52),
            ),
            4 => -0.0,
            5 => f64::MIN_POSITIVE / 4.0,
            6 => 1e21 * rng.random::<f64>(),
            _ => (rng.random::<f64>() * 1e4).round() / 100.0,
        }
    }

    fn any_family(rng: &mut StdRng, i: usize) -> Fam {
        let metric_type = if rng.random_bool(0.5) {
            MetricType::Counter
        } else {
            MetricType::Gauge
        };
        let unit = rng
            .random_bool(0.5)
            .then(|| ["celsius", "ratio", "bytes", "seconds"][rng.random_range(0..4)].to_owned());
        let samples = (0..rng.random_range(0..6))
            .map(|_| {
                let labels = (0..rng.random_range(0..5))
                    .map(|k| (format!("l{k}"), any_text(rng, 12)))
                    .collect();
                let v = if rng.random_bool(0.8) {
                    Value::Float(any_finite(rng))
                } else {
                    Value::Int(rng.random_range(-1_000_000..1_000_000))
                };
                (labels, v)
            })
            .collect();
        Fam {
            base: format!("sitewatch_f{i}"),
            help: any_text(rng, 40),
            unit,
            metric_type,
            samples,
        }
    }

    /// What the hand-written writer writes is what prometheus-client writes,
    /// in both formats, over random families: units or none, counters and
    /// gauges, label values and HELP texts with every byte the formats escape,
    /// and finite values of every kind (integral, tiny, huge, negative zero);
    /// with each line written label by label and with its first labels kept
    /// in a [`Prefix`].
    #[test]
    fn writes_what_prometheus_client_writes_in_both_formats() {
        let mut rng = StdRng::seed_from_u64(18);
        for round in 0..400 {
            let fams: Vec<Fam> = (0..rng.random_range(1..4))
                .map(|i| any_family(&mut rng, i))
                .collect();
            for format in [Format::Prometheus, Format::OpenMetrics] {
                let reference = by_reference(&fams, format);
                for prefixed in [false, true] {
                    assert_eq!(
                        by_hand(&fams, format, prefixed),
                        reference,
                        "round {round}, {format:?}, prefixed {prefixed}: {fams:#?}"
                    );
                }
            }
        }
    }

    /// Infinities and NaN are spelled as the specifications say, in both
    /// formats (the one place this writer departs from prometheus-client,
    /// which writes `inf` in OpenMetrics).
    #[test]
    fn non_finite_values_are_spelled_as_the_formats_say() {
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let mut out = String::new();
            let mut text = Text::new(&mut out, format);
            let name = text.descriptor("sitewatch_x", "X.", None, MetricType::Gauge);
            for v in [f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
                text.sample(&name).label("k", "v").value(v);
            }
            let samples: Vec<&str> = out.lines().skip(2).collect();
            assert_eq!(
                samples,
                [
                    r#"sitewatch_x{k="v"} +Inf"#,
                    r#"sitewatch_x{k="v"} -Inf"#,
                    r#"sitewatch_x{k="v"} NaN"#
                ],
                "{format:?}"
            );
        }
    }
}
