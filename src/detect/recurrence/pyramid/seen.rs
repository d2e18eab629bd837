//! What verification reads back of a core's window in one image, shared by verification and by
//! the merge of cores into patches.

/// One core's window in one image, read back from its pixels.
pub(crate) struct Seen {
    pub core: usize,
    pub image: usize,
    pub factor: usize,
    pub x: usize,
    pub y: usize,
    pub window: Vec<f32>,
    /// The mean colour of each block of the ring around the window;
    /// `None` for a block that leaves the image.
    pub context: Vec<Option<[f32; 3]>>,
    /// RMS distance to itself shifted by `SHIFT` level pixels, the nearest of eight directions.
    pub self_distance: f32,
}

/// The mean window of `set`.
pub(crate) fn mean_of(set: &[&Seen]) -> Vec<f32> {
    let mut m = vec![0.0f32; set.first().map_or(0, |s| s.window.len())];
    for s in set {
        m.iter_mut().zip(&s.window).for_each(|(a, b)| *a += b);
    }
    m.iter_mut().for_each(|v| *v /= set.len().max(1) as f32);
    m
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in super::super) fn seen(core: usize, image: usize, x: usize, context: Vec<Option<[f32; 3]>>) -> Seen {
        Seen { core, image, factor: 2, x, y: 10, window: vec![0.5; 192], context, self_distance: 1.0 }
    }
}
