//! What the load clients measure, in a form that adds up across clients and
//! processes: counts of each outcome and a latency histogram.

use std::collections::BTreeMap;

use layer_cake::Message;
use serde::{Deserialize, Serialize};

/// Sub-buckets per power of two: percentiles are within about 6 %.
const SUB: u32 = 16;

/// A latency histogram in microseconds, log-linear (16 buckets per power of
/// two), stored sparsely so that it travels cheaply as a process's return
/// value.
///
/// ```
/// use layer_cake_demos::load::Histogram;
///
/// let mut h = Histogram::default();
/// for us in 1..=1000 {
///     h.record(us);
/// }
/// let p50 = h.percentile(0.5);
/// assert!((470..=530).contains(&p50), "{p50}");
/// assert!(h.percentile(0.99) >= 930);
/// assert_eq!(h.count(), 1000);
/// let text = serde_json::to_string(&h).unwrap();
/// assert_eq!(serde_json::from_str::<Histogram>(&text).unwrap(), h);
/// ```
///
/// It travels as one line of text, `bucket:count` pairs, so that a printed
/// report stays readable.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// (bucket, count), buckets ascending.
    buckets: BTreeMap<u32, u64>,
}

impl Serialize for Histogram {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text: Vec<String> = self
            .buckets
            .iter()
            .map(|(b, n)| format!("{b}:{n}"))
            .collect();
        s.serialize_str(&text.join(" "))
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let mut buckets = BTreeMap::new();
        for pair in text.split_whitespace() {
            let parsed = pair
                .split_once(':')
                .and_then(|(b, n)| Some((b.parse().ok()?, n.parse().ok()?)));
            let (b, n) = parsed
                .ok_or_else(|| serde::de::Error::custom(format!("{pair:?} is not bucket:count")))?;
            buckets.insert(b, n);
        }
        Ok(Histogram { buckets })
    }
}

impl Histogram {
    fn bucket(us: u64) -> u32 {
        let us = us.max(1);
        let e = 63 - us.leading_zeros(); // floor(log2)
        if e < 4 {
            us as u32
        } else {
            (e - 3) * SUB + ((us >> (e - 4)) as u32 - SUB)
        }
    }

    /// The smallest value in `bucket`.
    fn low(bucket: u32) -> u64 {
        if bucket < SUB {
            return u64::from(bucket);
        }
        let e = bucket / SUB + 3;
        let m = u64::from(bucket % SUB + SUB);
        m << (e - 4)
    }

    /// Records one latency.
    pub fn record(&mut self, us: u64) {
        *self.buckets.entry(Self::bucket(us)).or_default() += 1;
    }

    /// Adds another histogram's counts to this one.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, n) in &other.buckets {
            *self.buckets.entry(*b).or_default() += n;
        }
    }

    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.values().sum()
    }

    /// The latency below which a fraction `p` of the recorded ones fall
    /// (the middle of its bucket), in microseconds; 0 when empty.
    pub fn percentile(&self, p: f64) -> u64 {
        let total = self.count();
        if total == 0 {
            return 0;
        }
        let rank = ((total as f64 * p).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (b, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                let (lo, hi) = (Self::low(*b), Self::low(b + 1));
                return (lo + hi) / 2;
            }
        }
        0
    }
}

/// What a load run counted: every request ends in exactly one of these.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Message)]
pub struct Tally {
    /// Answered with a table of the asked size; their latencies.
    pub latency_us: Histogram,
    /// Answered `Busy` (the server shed load on purpose).
    pub busy: u64,
    /// Answered `Overloaded` (the server's queue was full).
    pub overloaded: u64,
    /// Anything else: a wrong table, another fault, no answer in time.
    pub other: u64,
}

impl Tally {
    /// Adds another tally's counts to this one.
    pub fn merge(&mut self, other: &Tally) {
        self.latency_us.merge(&other.latency_us);
        self.busy += other.busy;
        self.overloaded += other.overloaded;
        self.other += other.other;
    }

    /// Requests answered with their table.
    pub fn answered(&self) -> u64 {
        self.latency_us.count()
    }

    /// Every request counted.
    pub fn requests(&self) -> u64 {
        self.answered() + self.busy + self.overloaded + self.other
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// The median.
    pub p50: f64,
    /// The 99th percentile.
    pub p99: f64,
}

/// A load run's result, as the load clients print it (JSON) and return it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Message)]
pub struct Report {
    /// Processes that ran clients.
    pub processes: u32,
    /// Clients in all.
    pub clients: u32,
    /// Requests made.
    pub requests: u64,
    /// Requests answered with their table.
    pub answered: u64,
    /// How long the run took.
    pub seconds: f64,
    /// Requests (of any outcome) per second.
    pub requests_per_second: f64,
    /// Latency of the answered requests.
    pub latency_ms: Latency,
    /// The other outcomes: `busy`, `overloaded`, `other`.
    pub errors: BTreeMap<String, u64>,
    /// The raw counts, for adding reports up.
    pub tally: Tally,
}

impl Report {
    /// The report of `tally`, counted over `seconds` by `clients` clients in
    /// `processes` processes.
    pub fn new(processes: u32, clients: u32, seconds: f64, tally: Tally) -> Report {
        let requests = tally.requests();
        let ms = |us: u64| (us as f64 / 10.0).round() / 100.0;
        Report {
            processes,
            clients,
            requests,
            answered: tally.answered(),
            seconds: (seconds * 1000.0).round() / 1000.0,
            requests_per_second: (requests as f64 / seconds.max(1e-9) * 10.0).round() / 10.0,
            latency_ms: Latency {
                p50: ms(tally.latency_us.percentile(0.50)),
                p99: ms(tally.latency_us.percentile(0.99)),
            },
            errors: BTreeMap::from([
                ("busy".to_string(), tally.busy),
                ("overloaded".to_string(), tally.overloaded),
                ("other".to_string(), tally.other),
            ]),
            tally,
        }
    }
}
