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
            self.finish::<InOrder, _>(c, plane, residual, |_, v| *v);
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
                self.finish::<InOrder, _>(c, plane, residual, |k, _| source[k]);
            }
            return;
        }
        for (c, plane) in y.chunks_exact_mut(oh * ow).enumerate() {
            for (r, line) in plane.chunks_exact_mut(ow).enumerate() {
                let source = &wide[c * channel_stride + r * line_stride..][..line.len()];
                let residual = residual.map(|res| &res[(c * oh + r) * ow..][..ow]);
                // Each value from `wide` and the residual alone: a block may overlap the last.
                self.finish::<Overlapping, _>(c, line, residual, |k, _| source[k]);
            }
        }
    }

    /// `line[k] = relu?(conv(k) + shift[c] + residual[k])` on one line of channel `c`, where
    /// `conv(k, &line[k])` gives the convolution's value, walked as `P` walks a line. Lines are
    /// short (28 values and less in the encoder), so the branches stay outside the loop.
    #[inline(always)]
    fn finish<P: Pass, T: Slot>(
        &self,
        c: usize,
        line: &mut [T],
        residual: Option<&[f32]>,
        conv: impl Fn(usize, &T) -> f32,
    ) {
        let add = self.shift.map_or(0.0, |s| s[c]);
        // Cut to the line's length, so the compiler sees every index in bounds and vectorises.
        match (residual.map(|r| &r[..line.len()]), self.relu) {
            (Some(res), true) => P::run(line, |k, v| (conv(k, v) + add + res[k]).max(0.0)),
            (Some(res), false) => P::run(line, |k, v| conv(k, v) + add + res[k]),
            (None, true) => P::run(line, |k, v| (conv(k, v) + add).max(0.0)),
            (None, false) => P::run(line, |k, v| conv(k, v) + add),
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

/// How [`Epilogue::finish`] walks a line: `line[k] = value(k, &line[k])` for every `k`.
trait Pass {
    fn run<T: Slot>(line: &mut [T], value: impl Fn(usize, &T) -> f32);
}

/// One value after another, each read before it is written: in place is safe.
struct InOrder;

impl Pass for InOrder {
    #[inline(always)]
    fn run<T: Slot>(line: &mut [T], value: impl Fn(usize, &T) -> f32) {
        for (k, slot) in line.iter_mut().enumerate() {
            let v = value(k, slot);
            slot.put(v);
        }
    }
}

/// Blocks of 4, the last overlapping the one before, for a `value` that does not read the slot
/// (some are written twice). The encoder's strided lines are 14 and 7 values; [`InOrder`] left
/// their last 2 and 3 to a scalar tail per line, about a tenth of the epilogue.
struct Overlapping;

impl Pass for Overlapping {
    #[inline(always)]
    fn run<T: Slot>(line: &mut [T], value: impl Fn(usize, &T) -> f32) {
        let Some(last) = line.len().checked_sub(4) else { return InOrder::run(line, value) };
        let mut start = 0;
        loop {
            let from = start.min(last);
            let block: [f32; 4] = std::array::from_fn(|k| value(from + k, &line[from + k]));
            for (slot, v) in line[from..][..4].iter_mut().zip(block) {
                slot.put(v);
            }
            if from == last {
                return;
            }
            start += 4;
        }
    }
}
