//! A stride-1 convolution as one GEMM per kernel row over width-shifted copies of the image.
//!
//! im2col writes every input value `kh·kw` times, a zero-fill and a short copy per output row,
//! and was about a third of an inference forward at 28 px (docs/warm-start.md). Here the output
//! is computed on the padded grid instead, `oh` rows of `wp` columns of which the last `kw − 1`
//! of each row are discarded: then kernel row `i`'s columns are rows `(c, j)` of one buffer,
//! each the padded image shifted by `j`, read from offset `i·wp` at one fixed stride, and the
//! buffer holds each input value only `kw` times, written by whole-row copies.

mod backward;

pub(super) use backward::{backward_image, Scratch as BackwardScratch};

use super::epilogue::Epilogue;
use super::gemm::{gemm_into, Matrix};
use super::host::ConvShape;

/// The padded grid a stride-1 convolution runs on, for shapes where shifting pays.
#[derive(Clone, Copy, Debug)]
pub(super) struct Grid {
    padded: [usize; 2],
    out: [usize; 2],
}

impl Grid {
    /// `None` unless the stride is 1, the kernel wider than a point (a pointwise kernel needs no
    /// columns at all) and the image not empty.
    pub(super) fn of(shape: &ConvShape) -> Option<Self> {
        let out = shape.output()?;
        let padded = [shape.input[0] + 2 * shape.padding[0], shape.input[1] + 2 * shape.padding[1]];
        let spatial = shape.stride == [1, 1] && shape.kernel != [1, 1] && shape.input[0] * shape.input[1] > 0;
        spatial.then_some(Self { padded, out })
    }

    fn plane(&self) -> usize {
        self.padded[0] * self.padded[1]
    }

    /// GEMM columns: every padded column of each output row.
    fn columns(&self) -> usize {
        self.out[0] * self.padded[1]
    }
}

/// One image's buffers, reused across the images a task runs.
pub(super) struct Scratch {
    shifted: Vec<f32>,
    wide: Vec<f32>,
}

impl Scratch {
    pub(super) fn new(shape: &ConvShape, grid: &Grid) -> Self {
        Self {
            shifted: vec![0f32; shape.channels_in * shape.kernel[1] * grid.plane()],
            wide: vec![0f32; shape.channels_out * grid.columns()],
        }
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

/// The inverse of [`kernel_rows`]: burn's `[o][c][i][j]` from `[i][o][c][j]`.
pub(super) fn kernel_from_rows(rows: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (oc, [kh, kw]) = (shape.channels_out * shape.channels_in, shape.kernel);
    let mut weight = vec![0f32; rows.len()];
    for (i, row) in rows.chunks_exact(oc * kw).enumerate() {
        for (k, taps) in row.chunks_exact(kw).enumerate() {
            weight[(k * kh + i) * kw..][..kw].copy_from_slice(taps);
        }
    }
    weight
}

/// Row `(c, j)` of `shifted`, at `r·wp + col`, holds the padded image at `(r, col + j)`: row
/// `(c, 0)` is channel `c` padded, line by line, and rows `(c, j)` are that row from `j` on, one
/// copy each, zero-filled at the end. Past a line's right edge they read the next line's start,
/// which only the discarded columns see.
fn shift_copies(image: &[f32], shape: &ConvShape, grid: &Grid, shifted: &mut [f32]) {
    let ([h, w], [ph, pw], wp) = (shape.input, shape.padding, grid.padded[1]);
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

/// Image `index`'s convolution then `epilogue`, into `y` (`O × oh × ow`); `rows` from [`kernel_rows`].
pub(super) fn forward_image(
    image: &[f32],
    rows: &[f32],
    shape: &ConvShape,
    grid: &Grid,
    scratch: &mut Scratch,
    (y, index): (&mut [f32], usize),
    epilogue: &Epilogue,
) {
    let (o, [kh, kw], wp) = (shape.channels_out, shape.kernel, grid.padded[1]);
    let taps = shape.channels_in * kw;
    shift_copies(image, shape, grid, &mut scratch.shifted);
    for i in 0..kh {
        let lhs = Matrix::row_major(&rows[i * o * taps..][..o * taps], o, taps);
        let rhs = Matrix {
            data: &scratch.shifted[i * wp..],
            rows: taps,
            cols: grid.columns(),
            row_stride: grid.plane(),
            col_stride: 1,
        };
        gemm_into(&mut scratch.wide, lhs, rhs, i > 0);
    }
    epilogue.apply_wide(&scratch.wide, wp, y, index, grid.out);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain definition, one output value at a time.
    fn direct(x: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
        let [oh, ow] = shape.output().unwrap();
        let ([h, w], [kh, kw], [ph, pw]) = (shape.input, shape.kernel, shape.padding);
        let (c_in, c_out) = (shape.channels_in, shape.channels_out);
        let mut y = vec![0f32; c_out * oh * ow];
        for o in 0..c_out {
            for (r, col) in (0..oh).flat_map(|r| (0..ow).map(move |col| (r, col))) {
                let mut sum = 0f64;
                for (c, i, j) in (0..c_in).flat_map(|c| (0..kh).flat_map(move |i| (0..kw).map(move |j| (c, i, j)))) {
                    let (yy, xx) = ((r + i) as isize - ph as isize, (col + j) as isize - pw as isize);
                    if (0..h as isize).contains(&yy) && (0..w as isize).contains(&xx) {
                        let v = x[(c * h + yy as usize) * w + xx as usize] as f64;
                        sum += v * weight[((o * c_in + c) * kh + i) * kw + j] as f64;
                    }
                }
                y[(o * oh + r) * ow + col] = sum as f32;
            }
        }
        y
    }

    #[test]
    fn shifted_rows_give_the_convolution() {
        // Padding narrower, equal to and wider than the kernel's reach, and a kernel wider than the image.
        for (input, kernel, padding) in
            [([5, 6], [3, 3], [1, 1]), ([7, 4], [3, 2], [0, 1]), ([4, 4], [4, 4], [2, 2]), ([3, 2], [2, 5], [1, 2])]
        {
            let shape = ConvShape { batch: 1, channels_in: 3, channels_out: 2, input, kernel, stride: [1, 1], padding };
            let grid = Grid::of(&shape).unwrap();
            let values = |len: usize, step: usize| -> Vec<f32> {
                (0..len).map(|i| ((i * step % 23) as f32 - 11.0) / 4.0).collect()
            };
            let x = values(3 * input[0] * input[1], 7);
            let weight = values(2 * 3 * kernel[0] * kernel[1], 5);
            let [oh, ow] = grid.out;
            // Garbage in the output and scratch must not survive.
            let mut y = vec![f32::NAN; 2 * oh * ow];
            let mut scratch = Scratch::new(&shape, &grid);
            scratch.shifted.fill(f32::NAN);
            forward_image(
                &x,
                &kernel_rows(&weight, &shape),
                &shape,
                &grid,
                &mut scratch,
                (&mut y, 0),
                &Epilogue::default(),
            );
            let expected = direct(&x, &weight, &shape);
            for (a, b) in y.iter().zip(&expected) {
                assert!((a - b).abs() < 1e-4, "{input:?} k{kernel:?} p{padding:?}: {a} against {b}");
            }
        }
    }

    #[test]
    fn kernel_rows_regroup_and_restore_every_weight() {
        let shape = ConvShape {
            batch: 1,
            channels_in: 3,
            channels_out: 2,
            input: [6, 6],
            kernel: [2, 3],
            stride: [1, 1],
            padding: [1, 1],
        };
        let weight: Vec<f32> = (0..2 * 3 * 2 * 3).map(|v| v as f32).collect();
        let rows = kernel_rows(&weight, &shape);
        // Kernel row 1 of output 1, input 2: burn's [1][2][1][..].
        assert_eq!(&rows[(2 * 3 + 3 + 2) * 3..][..3], &weight[((3 + 2) * 2 + 1) * 3..][..3]);
        assert_eq!(kernel_from_rows(&rows, &shape), weight);
    }

    #[test]
    fn only_stride_one_spatial_kernels_are_shifted() {
        let shape = |kernel, stride| ConvShape {
            batch: 1,
            channels_in: 1,
            channels_out: 1,
            input: [8, 8],
            kernel,
            stride,
            padding: [1, 1],
        };
        assert!(Grid::of(&shape([3, 3], [1, 1])).is_some());
        assert!(Grid::of(&shape([3, 3], [2, 2])).is_none());
        assert!(Grid::of(&shape([1, 1], [1, 1])).is_none());
    }
}
