//! What a host convolution applies to each image's output before it leaves the cache.

/// What a forward pass applies to each image's output while it is still in cache, in this
/// order: a per-output-channel `shift`, a `residual` of the output's shape, then a ReLU. An
/// inference-mode ResNet's folded batch norm, skip connection and activation cost no extra pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Epilogue<'a> {
    /// Added to every value of output channel `o`, `O` values.
    pub shift: Option<&'a [f32]>,
    /// Added value by value, `N×O×oh×ow`.
    pub residual: Option<&'a [f32]>,
    /// Clamps at zero last.
    pub relu: bool,
}

impl Epilogue<'_> {
    /// Applies the epilogue to image `index`'s output `y` (`O` planes of `positions` values),
    /// channel by channel while the image is in cache.
    pub(super) fn apply(&self, y: &mut [f32], index: usize, positions: usize) {
        let (shift, relu) = (self.shift, self.relu);
        let residual = self.residual.map(|r| &r[index * y.len()..][..y.len()]);
        for (c, plane) in y.chunks_mut(positions).enumerate() {
            let add = shift.map_or(0.0, |s| s[c]);
            match residual {
                Some(r) => {
                    let r = &r[c * positions..][..positions];
                    plane.iter_mut().zip(r).for_each(|(v, r)| *v = *v + add + r);
                }
                None if add != 0.0 => plane.iter_mut().for_each(|v| *v += add),
                None => {}
            }
            if relu {
                plane.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
    }
}
