//! The images of `resnet_twins.py` and `resnet_parity.py`: pixels from an integer hash, so that
//! PyTorch and the crate see the same values exactly without a file between them. Included by
//! `tests/resnet_import.rs` and `examples/resnet_parity.rs`.

/// `n` RGB images of `size`×`size`, `N×3×H×W` row-major, in `[0, 1]`.
pub fn hash_pixels(n: usize, size: usize) -> Vec<f32> {
    let mut values = Vec::with_capacity(n * 3 * size * size);
    for i in 0..n as u64 {
        for c in 0..3u64 {
            for y in 0..size as u64 {
                for x in 0..size as u64 {
                    let h = (i * 7919 + c * 104729 + y * 31 + x * 17).wrapping_mul(2654435761) % (1 << 32);
                    values.push((h >> 24) as f32 / 255.0);
                }
            }
        }
    }
    values
}
