//! A convolution as one GEMM per kernel row over shifted, phase-split copies of the image.
//!
//! im2col writes every input value `kh·kw` times, a zero-fill and a short copy per output row,
//! and was about a third of an inference forward at 28 px (docs/warm-start.md). Here the image is
//! copied into planes `(α, c, j)`, plane `(α, c, j)` holding the padded image's rows `s·y + α`
//! and columns `s·x + j` (stride `s`): then output `(r, x)` reads tap `(i, j)` of channel `c` at
//! row `r + i/s`, column `x` of plane `(i mod s, c, j)`, so kernel row `i`'s columns are the rows
//! `(c, j)` of those planes, read at one fixed stride from offset `(i/s)·wq`. The GEMM computes
//! `oh` rows of `wq` columns, and the epilogue drops the last `wq − ow` of each. The planes hold
//! each input value `kw·min(s, kh)/s²` times; at stride 1 they are whole-plane copies.
//!
//! A stride-1 convolution whose output is as wide as its input (`2·pw + 1 = kw`, the encoder's
//! 3×3 kernels at padding 1) keeps the image's own width instead: plane `(c, j)` is the image
//! shifted by `j − pw` along its rows, padded above and below only, with the values that
//! wrapped round from the next or previous row zeroed. Then each channel is one copy and a few
//! zeros per row, not a copy per line, and the grid is the output itself, with no discarded
//! columns (`wq − ow` of `wq` of every product, 7% at 28 px).

mod backward;

pub(super) use backward::{backward_image, Scratch as BackwardScratch};

use super::epilogue::Epilogue;
use super::gemm::{gemm_into, Matrix};
use super::shape::ConvShape;

/// f32 values in one of the gemm crate's vectors on the widest instruction set it is built for.
const GEMM_LANES: usize = 16;

/// The grid a convolution runs on: the phase planes' size and the output's.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    stride: usize,
    /// Row phases `α` that some kernel row reads: `min(s, kh)`.
    phases: usize,
    /// Rows and columns of one plane: the padded image's, divided by the stride, rounded up; or
    /// the image's own width when [`Grid::narrow`].
    planes: [usize; 2],
    /// Planes as wide as the image, padded above and below only (stride 1, output as wide as
    /// the input).
    narrow: bool,
    out: [usize; 2],
}

impl Grid {
    /// `None` for a pointwise kernel at stride 1 without padding (the image is its own columns),
    /// for unequal strides along the two axes, and for an empty image.
    pub(super) fn of(shape: &ConvShape) -> Option<Self> {
        let out = shape.output()?;
        let s = shape.stride[0];
        let pointwise = shape.kernel == [1, 1] && s == 1 && shape.padding == [0, 0];
        let usable = s == shape.stride[1] && !pointwise && shape.input[0] * shape.input[1] > 0;
        let padded = [shape.input[0] + 2 * shape.padding[0], shape.input[1] + 2 * shape.padding[1]];
        let ([kh, kw], [ph, pw]) = (shape.kernel, shape.padding);
        // Padding above and below past the kernel's reach would put whole zero rows between
        // outputs' reads; that (rare) case keeps the padded planes.
        let narrow = s == 1 && 2 * pw + 1 == kw && ph < kh;
        let planes = if narrow { [padded[0], shape.input[1]] } else { [padded[0].div_ceil(s), padded[1].div_ceil(s)] };
        usable.then_some(Self { stride: s, phases: s.min(kh), planes, narrow, out })
    }

    /// Whether the planes are as wide as the image (see the module's note).
    pub(super) fn is_narrow(&self) -> bool {
        self.narrow
    }

    fn plane(&self) -> usize {
        self.planes[0] * self.planes[1]
    }

    /// Grid columns: every plane column of each output row.
    fn grid_columns(&self) -> usize {
        self.out[0] * self.planes[1]
    }

    /// GEMM columns: the grid's, rounded up to a multiple of [`GEMM_LANES`]. The gemm crate
    /// repacks the columns of every product unless their count is a multiple of its vector width,
    /// and that packing was a tenth of a training step at 28 px; the extra columns read past the
    /// grid (into the next plane or the tail of [`Grid::planes_len`]) and are dropped with the discarded ones.
    fn columns(&self) -> usize {
        self.grid_columns().next_multiple_of(GEMM_LANES)
    }

    /// Values in all the planes of one image.
    fn copies(&self, shape: &ConvShape) -> usize {
        self.phases * shape.channels_in * shape.kernel[1] * self.plane()
    }

    /// The planes' buffer: [`Grid::copies`] and a tail for the last GEMM's extra columns to read.
    fn planes_len(&self, shape: &ConvShape) -> usize {
        self.copies(shape) + self.columns() - self.grid_columns()
    }

    /// Where kernel row `i`'s first column starts in the planes.
    fn kernel_row_start(&self, shape: &ConvShape, i: usize) -> usize {
        let taps = shape.channels_in * shape.kernel[1];
        (i % self.stride) * taps * self.plane() + (i / self.stride) * self.planes[1]
    }

    /// Plane `index`'s `(α, c, j)`.
    fn phase_channel_tap(&self, shape: &ConvShape, index: usize) -> (usize, usize, usize) {
        let (c_in, kw) = (shape.channels_in, shape.kernel[1]);
        (index / (c_in * kw), index / kw % c_in, index % kw)
    }

    /// The plane columns `x` of tap column `j` whose input column `s·x + j − pw` is inside the image.
    fn inside(&self, shape: &ConvShape, j: usize) -> std::ops::Range<usize> {
        let ([_, w], [_, pw], s, wq) = (shape.input, shape.padding, self.stride, self.planes[1]);
        let first = pw.saturating_sub(j).div_ceil(s).min(wq);
        first..(pw + w).saturating_sub(j).div_ceil(s).clamp(first, wq)
    }

    /// Kernel row `i`'s columns in `planes`: rows `(c, j)`, [`Grid::columns`] each.
    fn kernel_row<'a>(&self, shape: &ConvShape, planes: &'a [f32], i: usize) -> Matrix<'a> {
        Matrix {
            data: &planes[self.kernel_row_start(shape, i)..],
            rows: shape.channels_in * shape.kernel[1],
            cols: self.columns(),
            row_stride: self.plane(),
            col_stride: 1,
        }
    }
}

/// One image's buffers, reused across the images a task runs.
pub(super) struct Scratch {
    planes: Vec<f32>,
    wide: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(shape: &ConvShape, grid: &Grid) -> Self {
        Self { planes: vec![0f32; grid.planes_len(shape)], wide: vec![0f32; shape.channels_out * grid.columns()] }
    }
}

/// The kernel regrouped by kernel row: `[i][o][c][j]` from burn's `[o][c][i][j]`, so that row
/// `i`'s `O × C·kw` matrix is contiguous.
pub(super) fn kernel_rows(weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (o, c, [kh, kw]) = (shape.channels_out, shape.channels_in, shape.kernel);
    let mut rows = Vec::with_capacity(weight.len());
    for i in 0..kh {
        for oc in 0..o * c {
            rows.extend_from_slice(&weight[(oc * kh + i) * kw..][..kw]);
        }
    }
    rows
}

/// The layout the backward pass sums the weight gradient in, burn's `[o][c][i][j]` regrouped
/// as `[i][c][j][o]`: kernel row `i`'s `C·kw × O` matrix contiguous.
#[cfg(test)]
fn kernel_taps(weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (o, c, [kh, kw]) = (shape.channels_out, shape.channels_in, shape.kernel);
    let mut taps = Vec::with_capacity(weight.len());
    for i in 0..kh {
        for (c, j) in (0..c).flat_map(|c| (0..kw).map(move |j| (c, j))) {
            taps.extend((0..o).map(|o| weight[((o * shape.channels_in + c) * kh + i) * kw + j]));
        }
    }
    taps
}

/// The inverse of [`kernel_taps`]: burn's `[o][c][i][j]` from `[i][c][j][o]`.
pub(super) fn kernel_from_taps(taps: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (o, c, [kh, kw]) = (shape.channels_out, shape.channels_in, shape.kernel);
    let mut weight = vec![0f32; taps.len()];
    for (tap, outputs) in taps.chunks_exact(o).enumerate() {
        let (i, c, j) = (tap / (c * kw), tap / kw % c, tap % kw);
        for (oc, &value) in outputs.iter().enumerate() {
            weight[((oc * shape.channels_in + c) * kh + i) * kw + j] = value;
        }
    }
    weight
}

/// Fills the planes `(α, c, j)` (see the module's note), zero outside the image. Where a
/// plane column runs past the padded image's right edge, stride 1, and at larger strides the
/// taps `j ≥ s`, leave the next line's start there instead (one copy per plane); only the
/// discarded columns read those values.
fn fill_planes(image: &[f32], shape: &ConvShape, grid: &Grid, planes: &mut [f32]) {
    if grid.narrow {
        return row_shifts(image, shape, grid, planes);
    }
    if grid.stride == 1 {
        return shift_copies(image, shape, grid, planes);
    }
    let ([h, w], [ph, pw], s, wq) = (shape.input, shape.padding, grid.stride, grid.planes[1]);
    let plane_len = grid.plane();
    for index in 0..grid.copies(shape) / plane_len {
        let (alpha, c, j) = grid.phase_channel_tap(shape, index);
        if j >= s {
            // Tap `j` reads the column after tap `j − s`'s: that plane shifted by one value.
            let (before, rest) = planes.split_at_mut(index * plane_len);
            let earlier = &before[(index - s) * plane_len..][..plane_len];
            shift_by_one(earlier, &mut rest[..plane_len]);
            continue;
        }
        let plane = &mut planes[index * plane_len..][..plane_len];
        let channel = &image[c * h * w..][..h * w];
        let std::ops::Range { start: first, end } = grid.inside(shape, j);
        for (y, line) in plane.chunks_exact_mut(wq).enumerate() {
            match (s * y + alpha).checked_sub(ph).filter(|&row| row < h) {
                Some(row) if first < end => {
                    line[..first].fill(0.0);
                    // On past the line's end where the channel goes on, for `every_nth`'s last block.
                    let source = &channel[row * w + s * first + j - pw..];
                    every_nth(&mut line[first..end], source, s);
                    line[end..].fill(0.0);
                }
                _ => line.fill(0.0),
            }
        }
    }
}

/// `dst[k] = source[s·k]`. At the encoder's stride, 2, in blocks of 4 values taken from 8 by
/// one vector shuffle, the last block overlapping the one before instead of a tail a value at a
/// time; that needs `source` to run on to `2·dst.len()` values. A value at a time, the strided
/// planes were a sixteenth of an inference forward (the encoder's lines are 14 and 7 values).
fn every_nth(dst: &mut [f32], source: &[f32], s: usize) {
    let n = dst.len();
    if s == 2 && n >= 4 && source.len() >= 2 * n {
        let last = n - 4;
        let mut start = 0;
        loop {
            let from = start.min(last);
            let pair: &[f32; 8] = source[2 * from..][..8].try_into().expect("eight values");
            dst[from..][..4].copy_from_slice(&evens(pair));
            if from == last {
                return;
            }
            start += 4;
        }
    }
    // Indexed, not `step_by`: its length is a division, per line.
    for (k, d) in dst.iter_mut().enumerate() {
        *d = source[s * k];
    }
}

/// Values 0, 2, 4 and 6 of `pair`. The compiler leaves `[p[0], p[2], …]` as four scalar loads
/// and stores (SSE2, the baseline it builds for, has the one-instruction shuffle).
#[cfg(target_arch = "x86_64")]
fn evens(pair: &[f32; 8]) -> [f32; 4] {
    use std::arch::x86_64::{_mm_loadu_ps, _mm_shuffle_ps, _mm_storeu_ps};
    let mut out = [0f32; 4];
    // SAFETY: SSE is part of every x86_64 target; the loads read values 0–3 and 4–7 of `pair`
    // and the store writes the four values of `out`, all unaligned-safe.
    unsafe {
        let (low, high) = (_mm_loadu_ps(pair.as_ptr()), _mm_loadu_ps(pair.as_ptr().add(4)));
        _mm_storeu_ps(out.as_mut_ptr(), _mm_shuffle_ps::<0b10_00_10_00>(low, high));
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn evens(pair: &[f32; 8]) -> [f32; 4] {
    std::array::from_fn(|k| pair[2 * k])
}

/// `shifted[x] = plane[x + 1]`, the last value zero. As a plane of tap `j + s`, each line's last
/// column then holds the next line's first value, a column no output keeps: with a kernel wider
/// than its stride, the output is narrower than the plane.
fn shift_by_one(plane: &[f32], shifted: &mut [f32]) {
    let len = plane.len();
    shifted[..len - 1].copy_from_slice(&plane[1..]);
    shifted[len - 1] = 0.0;
}

/// [`fill_planes`] at stride 1: plane `(c, 0)` is channel `c` padded, line by line, and planes
/// `(c, j)` are that plane from `j` on, one copy each, zero-filled at the end.
fn shift_copies(image: &[f32], shape: &ConvShape, grid: &Grid, shifted: &mut [f32]) {
    let ([h, w], [ph, pw], wp) = (shape.input, shape.padding, grid.planes[1]);
    let (kw, plane) = (shape.kernel[1], grid.plane());
    for (c, rows) in shifted.chunks_exact_mut(kw * plane).enumerate() {
        let (padded, shifts) = rows.split_at_mut(plane);
        let channel = &image[c * h * w..][..h * w];
        padded[..ph * wp].fill(0.0);
        for (line, source) in padded[ph * wp..].chunks_exact_mut(wp).zip(channel.chunks_exact(w)) {
            line[..pw].fill(0.0);
            line[pw..pw + w].copy_from_slice(source);
            line[pw + w..].fill(0.0);
        }
        padded[(ph + h) * wp..].fill(0.0);
        for (j, shifted) in (1..kw).zip(shifts.chunks_exact_mut(plane)) {
            shifted[..plane - j].copy_from_slice(&padded[j..]);
            shifted[plane - j..].fill(0.0);
        }
    }
}

/// [`fill_planes`] on a [`Grid::narrow`] grid: plane `(c, j)` row `y` is image row `y − ph`
/// shifted by `d = j − pw`, its `|d|` values that came from the neighbouring row zeroed.
fn row_shifts(image: &[f32], shape: &ConvShape, grid: &Grid, planes: &mut [f32]) {
    let ([h, w], [ph, pw], kw) = (shape.input, shape.padding, shape.kernel[1]);
    for (index, plane) in planes[..grid.copies(shape)].chunks_exact_mut(grid.plane()).enumerate() {
        let (c, j) = (index / kw, index % kw);
        let channel = &image[c * h * w..][..h * w];
        let (above, rest) = plane.split_at_mut(ph * w);
        let (body, below) = rest.split_at_mut(h * w);
        above.fill(0.0);
        below.fill(0.0);
        if j >= pw {
            let d = (j - pw).min(w);
            body[..h * w - d].copy_from_slice(&channel[d..]);
            // The last `d` columns of each row read the next row's first values: zero.
            (w - d..w).for_each(|x| body[x..].iter_mut().step_by(w).for_each(|v| *v = 0.0));
        } else {
            let d = (pw - j).min(w);
            body[d..].copy_from_slice(&channel[..h * w - d]);
            (0..d).for_each(|x| body[x..].iter_mut().step_by(w).for_each(|v| *v = 0.0));
        }
    }
}

/// Image `index`'s convolution then `epilogue`, into `y` (`O × oh × ow`); `rows` from [`kernel_rows`].
pub(super) fn forward_image(
    image: &[f32],
    rows: &[f32],
    shape: &ConvShape,
    grid: &Grid,
    scratch: &mut Scratch,
    (y, index): (&mut [std::mem::MaybeUninit<f32>], usize),
    epilogue: &Epilogue,
) {
    let (o, kh, taps) = (shape.channels_out, shape.kernel[0], shape.channels_in * shape.kernel[1]);
    fill_planes(image, shape, grid, &mut scratch.planes);
    for i in 0..kh {
        let lhs = Matrix::row_major(&rows[i * o * taps..][..o * taps], o, taps);
        gemm_into(&mut scratch.wide, lhs, grid.kernel_row(shape, &scratch.planes, i), i > 0);
    }
    epilogue.apply_wide(&scratch.wide, [grid.columns(), grid.planes[1]], y, index, grid.out);
}

/// Adds the weight gradient of the convolution whose input gradient `adjoint` computes, for
/// one image `x`, into `share` (`[i′][o][j′][c]`): `scratch` holds the planes of that image's
/// output gradient from [`forward_image`] on `adjoint`'s narrow grid, whose kernel row `i′`
/// rows `(o, j′)` are the output gradient shifted by tap `(i′, j′)`, each against `x` as it is.
pub(super) fn add_weight_grad_of_adjoint(
    x: &[f32],
    adjoint: &ConvShape,
    grid: &Grid,
    scratch: &Scratch,
    share: &mut [f32],
) {
    assert!(grid.narrow, "the planes' columns are the image's positions only on a narrow grid");
    let (c, positions) = (adjoint.channels_out, grid.grid_columns());
    let x = Matrix::row_major(x, c, positions).transposed();
    let taps = adjoint.channels_in * adjoint.kernel[1];
    for (i, sums) in share.chunks_exact_mut(taps * c).enumerate() {
        // Only the grid's own columns: `x` has no values past them.
        let shifted = Matrix { cols: positions, ..grid.kernel_row(adjoint, &scratch.planes, i) };
        gemm_into(sums, shifted, x, true);
    }
}

#[cfg(test)]
mod tests;
