//! A small, seedable, splittable generator for drawing pairs of rows.

use crate::kernels::classes::Classes;

/// SplitMix64 (Steele, Lea & Flood 2014): a 64-bit generator whose streams are made
/// independent by seeding each from `(seed, stream)`.
pub(crate) struct PairSampler {
    state: u64,
    rows: u64,
}

impl PairSampler {
    /// Generator for stream `stream` of `seed`, drawing pairs of distinct rows of `rows`.
    pub fn new(seed: u64, stream: u64, rows: usize) -> Self {
        let mut mixer = PairSampler {
            state: seed ^ stream.wrapping_mul(0xD1B5_4A32_D192_ED03),
            rows: rows as u64,
        };
        let state = mixer.next_u64();
        PairSampler {
            state,
            rows: rows as u64,
        }
    }

    fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform integer in `[0, bound)` by Lemire's multiply-and-reject method (unbiased).
    pub fn below(&mut self, bound: u64) -> u64 {
        let threshold = bound.wrapping_neg() % bound;
        loop {
            let product = u128::from(self.next_u64()) * u128::from(bound);
            if (product as u64) >= threshold {
                return (product >> 64) as u64;
            }
        }
    }

    /// A uniformly drawn ordered pair `(i, j)` with `i != j`.
    pub fn next_pair(&mut self) -> (usize, usize) {
        let i = self.below(self.rows);
        let mut j = self.below(self.rows - 1);
        if j >= i {
            j += 1;
        }
        (i as usize, j as usize)
    }
}

/// All rows when `n <= max`, else about `max` rows: each class keeps its share (at least one
/// row), drawn without replacement by a seeded generator; increasing order.
pub fn stratified_rows(n: usize, classes: Option<&Classes>, max: usize, seed: u64) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut chosen = Vec::with_capacity(max + classes.map_or(1, Classes::num_classes));
    match classes {
        Some(c) => {
            for k in 0..c.num_classes() {
                let members = c.members(k);
                let take = ((members.len() * max) / n).max(1).min(members.len());
                let positions = partial_shuffle(members.len(), take, seed, k as u64 + 1);
                chosen.extend(positions.into_iter().map(|p| members[p]));
            }
        }
        None => chosen = partial_shuffle(n, max.max(1).min(n), seed, 1),
    }
    chosen.sort_unstable();
    chosen
}

/// The first `take` entries of a seeded Fisher-Yates shuffle of `0..len` (stream `stream`),
/// in O(take) memory: only the swapped positions are stored.
fn partial_shuffle(len: usize, take: usize, seed: u64, stream: u64) -> Vec<usize> {
    let mut sampler = PairSampler::new(seed, stream, len.max(2));
    let mut swapped = std::collections::HashMap::<usize, usize>::with_capacity(2 * take);
    let mut out = Vec::with_capacity(take);
    for i in 0..take {
        let j = i + sampler.below((len - i) as u64) as usize;
        let at_i = *swapped.get(&i).unwrap_or(&i);
        let at_j = *swapped.get(&j).unwrap_or(&j);
        swapped.insert(j, at_i);
        swapped.insert(i, at_j);
        out.push(at_j);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_distinct_and_cover_all_rows_evenly() {
        let mut sampler = PairSampler::new(7, 3, 5);
        let mut counts = [0u32; 5];
        for _ in 0..50_000 {
            let (i, j) = sampler.next_pair();
            assert_ne!(i, j);
            counts[i] += 1;
            counts[j] += 1;
        }
        for c in counts {
            assert!((c as f64 - 20_000.0).abs() < 600.0, "{counts:?}");
        }
    }
}
