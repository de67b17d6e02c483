//! A count-min sketch of how often keys missed: the cost-aware policy's
//! admission gate (TinyLFU, Einziger et al.; the layout of Caffeine's
//! `FrequencySketch` without its cache-line packing).
//!
//! Four rows of 4-bit counters (one byte each here: shards are small and
//! the table is only touched on misses and evictions), conservative
//! update, and every counter halved after `10 × width` additions so that
//! old popularity fades. One sketch per shard, under the shard's lock: a
//! key always maps to the same shard, so the sketches partition the keys.

/// The largest count a counter holds.
const MAX_COUNT: u8 = 15;

const ROWS: usize = 4;

/// Per-row seeds (odd constants from splitmix64 and xxh3).
const SEEDS: [u64; ROWS] = [
    0x9E37_79B9_7F4A_7C15,
    0xBF58_476D_1CE4_E5B9,
    0x94D0_49BB_1331_11EB,
    0xC2B2_AE3D_27D4_EB4F,
];

/// The most counters per row a shard's sketch grows to.
const MAX_WIDTH: usize = 1 << 20;

#[derive(Debug)]
pub(crate) struct Sketch {
    table: Vec<u8>,
    width: usize,
    additions: u32,
}

fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xFF51_AFD7_ED55_8CCD);
    x ^= x >> 33;
    x
}

impl Sketch {
    pub(crate) fn new(width: usize) -> Self {
        let width = width.clamp(16, MAX_WIDTH).next_power_of_two();
        Sketch {
            table: vec![0; width * ROWS],
            width,
            additions: 0,
        }
    }

    fn slot(&self, hash: u64, row: usize) -> usize {
        row * self.width + (mix(hash ^ SEEDS[row]) as usize & (self.width - 1))
    }

    /// How often `hash` was counted (an overestimate, never an underestimate,
    /// until counters are halved).
    pub(crate) fn estimate(&self, hash: u64) -> u32 {
        (0..ROWS)
            .map(|r| self.table[self.slot(hash, r)])
            .min()
            .map_or(0, u32::from)
    }

    /// Counts one more occurrence (conservative update: only the counters
    /// at the minimum grow).
    pub(crate) fn increment(&mut self, hash: u64) {
        let min = self.estimate(hash) as u8;
        if min < MAX_COUNT {
            for r in 0..ROWS {
                let i = self.slot(hash, r);
                if self.table[i] == min {
                    self.table[i] += 1;
                }
            }
        }
        self.additions += 1;
        if self.additions as usize >= 10 * self.width {
            self.halve();
        }
    }

    /// Raises the count of `hash` to at least `count`: an evicted entry
    /// leaves its frequency behind, so that it is readmitted if it returns.
    pub(crate) fn raise(&mut self, hash: u64, count: u32) {
        let c = count.min(u32::from(MAX_COUNT)) as u8;
        for r in 0..ROWS {
            let i = self.slot(hash, r);
            self.table[i] = self.table[i].max(c);
        }
    }

    fn halve(&mut self) {
        for c in &mut self.table {
            *c >>= 1;
        }
        self.additions = 0;
    }

    /// Grows the table (forgetting its counts) when it has fewer than four
    /// counters per row for each of `entries` cached entries.
    pub(crate) fn fit(&mut self, entries: usize) {
        if entries.saturating_mul(4) > self.width && self.width < MAX_WIDTH {
            *self = Sketch::new(entries.saturating_mul(8));
        }
    }

    pub(crate) fn clear(&mut self) {
        self.table.fill(0);
        self.additions = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_halve_and_are_raised() {
        let mut s = Sketch::new(64);
        for _ in 0..20 {
            s.increment(7);
        }
        assert_eq!(s.estimate(7), 15);
        assert_eq!(s.estimate(8), 0, "an unseen key in a nearly empty sketch");
        s.raise(9, 4);
        assert_eq!(s.estimate(9), 4);
        s.halve();
        assert_eq!((s.estimate(7), s.estimate(9)), (7, 2));
        s.fit(100);
        assert!(s.width >= 400);
        assert_eq!(s.estimate(7), 0, "a grown sketch starts over");
    }

    #[test]
    fn few_false_positives_at_a_quarter_load() {
        let mut s = Sketch::new(4096);
        for k in 0..1024u64 {
            s.increment(mix(k));
        }
        let seen_twice = (10_000..20_000u64)
            .filter(|k| s.estimate(mix(*k)) >= 1)
            .count();
        assert!(
            seen_twice < 200,
            "{seen_twice} of 10000 unseen keys look seen"
        );
    }
}
