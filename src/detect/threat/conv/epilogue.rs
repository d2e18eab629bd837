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

    /// [`Self::apply`] reading the convolution from `wide` instead, whose lines of `out[1]`
    /// values start `stride` apart (the grid of a convolution on phase planes): the discarded
    /// columns are dropped in the same pass.
    pub(super) fn apply_wide(&self, wide: &[f32], stride: usize, y: &mut [f32], index: usize, out: [usize; 2]) {
        let [oh, ow] = out;
        let residual = self.residual.map(|r| &r[index * y.len()..][..y.len()]);
        for (c, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
            let add = self.shift.map_or(0.0, |s| s[c]);
            for (r, line) in plane.chunks_exact_mut(ow).enumerate() {
                let source = &wide[(c * oh + r) * stride..][..ow];
                // One pass per line; lines are short (28 values and less in the encoder), so the
                // branches stay outside the loop.
                match (residual.map(|res| &res[(c * oh + r) * ow..][..ow]), self.relu) {
                    (Some(res), true) => finish(line, source, |k, s| (s + add + res[k]).max(0.0)),
                    (Some(res), false) => finish(line, source, |k, s| s + add + res[k]),
                    (None, true) => finish(line, source, |_, s| (s + add).max(0.0)),
                    (None, false) => finish(line, source, |_, s| s + add),
                }
            }
        }
    }
}

/// `line[k] = value(k, source[k])`; `source` is as long as `line`.
#[inline(always)]
fn finish(line: &mut [f32], source: &[f32], value: impl Fn(usize, f32) -> f32) {
    let source = &source[..line.len()];
    for (k, (v, s)) in line.iter_mut().zip(source).enumerate() {
        *v = value(k, *s);
    }
}
