//! What a host convolution applies to each image's output before it leaves the cache.

use std::mem::MaybeUninit;

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
        let residual = self.residual.map(|r| &r[index * y.len()..][..y.len()]);
        for (c, plane) in y.chunks_mut(positions).enumerate() {
            let residual = residual.map(|r| &r[c * positions..][..positions]);
            self.finish(c, plane, residual, |_, v| *v);
        }
    }

    /// [`Self::apply`] reading the convolution from `wide` instead, whose channels start
    /// `channel_stride` apart and their lines of `out[1]` values `line_stride` apart (the grid of
    /// a convolution on phase planes): the discarded columns are dropped in the same pass. Every
    /// value of `y` is written and none is read, so `y` need not be initialised (or zeroed).
    pub(super) fn apply_wide(
        &self,
        wide: &[f32],
        [channel_stride, line_stride]: [usize; 2],
        y: &mut [MaybeUninit<f32>],
        index: usize,
        out: [usize; 2],
    ) {
        let [oh, ow] = out;
        let residual = self.residual.map(|r| &r[index * y.len()..][..y.len()]);
        if line_stride == ow {
            // Nothing to drop (a narrow grid): each channel is one run, not `oh` short lines.
            for (c, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
                let source = &wide[c * channel_stride..][..plane.len()];
                let residual = residual.map(|res| &res[c * oh * ow..][..oh * ow]);
                self.finish(c, plane, residual, |k, _| source[k]);
            }
            return;
        }
        for (c, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
            for (r, line) in plane.chunks_exact_mut(ow).enumerate() {
                let source = &wide[c * channel_stride + r * line_stride..][..line.len()];
                let residual = residual.map(|res| &res[(c * oh + r) * ow..][..ow]);
                self.finish_short(c, line, source, residual);
            }
        }
    }

    /// [`Self::finish`] on a short line read from `source`, in blocks of 4 values, the last
    /// overlapping the one before: the encoder's strided lines are 14 and 7 values, and their
    /// tails a value at a time were about a tenth of the epilogue. Each value is computed from
    /// `source` and `residual` alone, so writing one twice writes the same value.
    fn finish_short(&self, c: usize, line: &mut [MaybeUninit<f32>], source: &[f32], residual: Option<&[f32]>) {
        let n = line.len();
        if n < 4 {
            return self.finish(c, line, residual, |k, _| source[k]);
        }
        let add = self.shift.map_or(0.0, |s| s[c]);
        let source = &source[..n];
        match (residual.map(|r| &r[..n]), self.relu) {
            (Some(res), true) => in_blocks(line, |k| (source[k] + add + res[k]).max(0.0)),
            (Some(res), false) => in_blocks(line, |k| source[k] + add + res[k]),
            (None, true) => in_blocks(line, |k| (source[k] + add).max(0.0)),
            (None, false) => in_blocks(line, |k| source[k] + add),
        }
    }

    /// `line[k] = relu?(conv(k) + shift[c] + residual[k])` on one line of channel `c`, where
    /// `conv(k, &line[k])` gives the convolution's value. Lines are short (28 values and less in
    /// the encoder), so the branches stay outside the loop.
    #[inline(always)]
    fn finish<T: Slot>(&self, c: usize, line: &mut [T], residual: Option<&[f32]>, conv: impl Fn(usize, &T) -> f32) {
        let add = self.shift.map_or(0.0, |s| s[c]);
        // Cut to the line's length, so the compiler sees every index in bounds and vectorises.
        match (residual.map(|r| &r[..line.len()]), self.relu) {
            (Some(res), true) => each(line, |k, v| (conv(k, v) + add + res[k]).max(0.0)),
            (Some(res), false) => each(line, |k, v| conv(k, v) + add + res[k]),
            (None, true) => each(line, |k, v| (conv(k, v) + add).max(0.0)),
            (None, false) => each(line, |k, v| conv(k, v) + add),
        }
    }
}

/// Where an epilogue writes a value: an output computed in place, or one not yet written.
trait Slot {
    fn put(&mut self, value: f32);
}

impl Slot for f32 {
    #[inline(always)]
    fn put(&mut self, value: f32) {
        *self = value;
    }
}

impl Slot for MaybeUninit<f32> {
    #[inline(always)]
    fn put(&mut self, value: f32) {
        self.write(value);
    }
}

/// `line[k] = value(k)` for a line of at least 4 values, 4 at a time, the last 4 overlapping.
#[inline(always)]
fn in_blocks(line: &mut [MaybeUninit<f32>], value: impl Fn(usize) -> f32) {
    let last = line.len() - 4;
    let mut start = 0;
    loop {
        let from = start.min(last);
        let block: [f32; 4] = std::array::from_fn(|k| value(from + k));
        for (slot, v) in line[from..][..4].iter_mut().zip(block) {
            slot.write(v);
        }
        if from == last {
            return;
        }
        start += 4;
    }
}

/// `line[k] = value(k, &line[k])`.
#[inline(always)]
fn each<T: Slot>(line: &mut [T], value: impl Fn(usize, &T) -> f32) {
    for (k, slot) in line.iter_mut().enumerate() {
        let v = value(k, slot);
        slot.put(v);
    }
}
