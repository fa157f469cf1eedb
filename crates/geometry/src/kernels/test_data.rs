//! Deterministic test rows for the unit tests of this crate.

use ndarray::Array2;

/// `rows x cols` values in [-1, 1) from a hash of (row, column, seed) (SplitMix64): fixed
/// across runs and machines, with no structure a test could lean on.
pub(crate) fn pseudo_random(rows: usize, cols: usize, seed: u64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |(i, j)| {
        let mut z = (i as u64)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((j as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
            .wrapping_add(seed.wrapping_mul(0x1656_67B1_9E37_79F9));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let unit = ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64;
        2.0 * unit - 1.0
    })
}
