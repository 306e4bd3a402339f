//! Latency percentiles in constant memory, mergeable across connections.
//!
//! A sender may run for days: keeping every latency would grow without
//! bound. Each connection of a sender or of the benchmark's load generator
//! records into its own histogram (no lock on the hot path); the run
//! merges them at the end. Buckets are
//! log-linear over nanoseconds: 64 per power of two, so a percentile is
//! reported within 1.6 % (rounded up to its bucket's upper bound), from
//! one nanosecond to about 18 minutes, in 18 KiB.

use std::time::Duration;

/// Sub-buckets per power of two: 2^6.
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Largest power of two of nanoseconds kept apart: 2^40 ns, about 18 min.
const MAX_EXP: u32 = 40;
const BUCKETS: usize = (MAX_EXP - SUB_BITS + 2) as usize * SUB;

#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[index(nanos)] += 1;
        self.total += 1;
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    pub fn count(&self) -> u64 {
        self.total
    }

    /// The latency below which `q` (0.0..=1.0) of the recorded ones fall,
    /// rounded up to its bucket's upper bound; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        self.counts.iter().enumerate().find_map(|(i, count)| {
            seen += count;
            (seen >= rank).then(|| Duration::from_nanos(upper_bound(i)))
        })
    }
}

fn index(nanos: u64) -> usize {
    if nanos < SUB as u64 {
        return nanos as usize;
    }
    let exp = (63 - nanos.leading_zeros()).min(MAX_EXP);
    let sub = (nanos >> (exp - SUB_BITS)) as usize & (SUB - 1);
    ((exp - SUB_BITS + 1) as usize * SUB + sub).min(BUCKETS - 1)
}

/// The largest value that falls in bucket `i`.
fn upper_bound(i: usize) -> u64 {
    if i < SUB {
        return i as u64;
    }
    let exp = (i / SUB) as u32 + SUB_BITS - 1;
    let sub = (i % SUB) as u64;
    ((SUB as u64 + sub + 1) << (exp - SUB_BITS)) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_a_uniform_spread_are_within_the_bucket_error() {
        let mut h = Histogram::default();
        for micros in 1..=1000u64 {
            h.record(Duration::from_micros(micros));
        }
        let p50 = h.quantile(0.5).unwrap().as_nanos() as f64;
        let p99 = h.quantile(0.99).unwrap().as_nanos() as f64;
        let p999 = h.quantile(0.999).unwrap().as_nanos() as f64;
        assert!((500_000.0..=500_000.0 * 1.016).contains(&p50), "{p50}");
        assert!((990_000.0..=990_000.0 * 1.016).contains(&p99), "{p99}");
        assert!((999_000.0..=999_000.0 * 1.016).contains(&p999), "{p999}");
    }

    #[test]
    fn merging_adds_counts_and_one_outlier_shows_only_at_the_tail() {
        let mut a = Histogram::default();
        let mut b = Histogram::default();
        for _ in 0..999 {
            a.record(Duration::from_micros(100));
        }
        b.record(Duration::from_millis(50));
        a.merge(&b);
        assert_eq!(a.count(), 1000);
        assert!(a.quantile(0.99).unwrap() < Duration::from_micros(102));
        assert!(a.quantile(1.0).unwrap() >= Duration::from_millis(50));
        assert_eq!(Histogram::default().quantile(0.5), None);
    }

    #[test]
    fn every_bucket_holds_its_own_upper_bound() {
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper_bound(i)), i, "bucket {i}");
            assert_eq!(index(upper_bound(i) + 1), i + 1, "bucket {i}");
        }
    }
}
