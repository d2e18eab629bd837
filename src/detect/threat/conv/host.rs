//! The convolution's gradients on the host, as GEMMs per image (the forward pass is
//! [`super::forward`], re-exported here).
//!
//! burn's generic weight gradient is itself a convolution whose kernel is the whole output map
//! (28×28 in the warm start), which Flex runs at a few GFLOP/s; written as im2col and
//! `dW += dY·colsᵀ`, `dcols = Wᵀ·dY` and col2im, the same work is plain SGEMM. Each image's
//! columns are built and consumed while they are in cache, and images run in parallel. The
//! columns come from [`super::planes`] (copies of the image that the GEMM reads in place); im2col
//! remains for unequal strides along the two axes.

use rayon::prelude::*;

use super::adjoint::{self, IMAGES_PER_SHARE};
use super::forward::im2col;
pub use super::forward::{conv2d_forward, conv2d_forward_with};
use super::gemm::{gemm_into, Matrix};
use super::planes;
pub use super::shape::ConvShape;
use crate::detect::threat::shares::Shares;
use crate::detect::threat::zeroed::written_in_chunks;

pub use super::epilogue::Epilogue;

/// The adjoint of [`im2col`]: adds each column entry back onto the input pixel it came from
/// (onto `dx` as it is: the backward pass hands it over zeroed).
fn col2im(cols: &[f32], shape: &ConvShape, out: [usize; 2], dx: &mut [f32]) {
    let sw = shape.stride[1];
    for (row, col) in cols.chunks_exact(out[0] * out[1]).enumerate() {
        let tap = shape.tap(out, row);
        let plane = &mut dx[tap.plane.clone()];
        for oh in tap.rows.clone() {
            let (line, first) = shape.source(&tap, oh);
            let line = &mut plane[line..][..shape.input[1]];
            let src = &col[oh * out[1]..][tap.cols.clone()];
            if sw == 1 {
                let dst = &mut line[first..][..src.len()];
                dst.iter_mut().zip(src).for_each(|(d, s)| *d += s);
            } else {
                src.iter().enumerate().for_each(|(k, s)| line[first + k * sw] += s);
            }
        }
    }
}

/// How an image's columns are built: im2col, or the phase planes.
enum Columns {
    Im2col(Vec<f32>),
    Planes(planes::Grid, planes::BackwardScratch),
}

/// The gradients of `y = conv(x, weight)` given `dy`: `(dx, dweight)`, each only when asked for.
///
/// `x` is `N×C×H×W`, `weight` `O×C×kh×kw` and `dy` `N×O×oh×ow`, all contiguous row-major.
pub fn conv2d_backward(
    x: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    want_dx: bool,
    want_dweight: bool,
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let out = shape.output().expect("the forward pass produced this output");
    let positions = out[0] * out[1];
    let patch = shape.patch_len();
    let (o, n, image_len) = (shape.channels_out, shape.batch, shape.image_len());
    assert!(x.len() == n * image_len && weight.len() == o * patch && dy.len() == n * o * positions);
    let w = Matrix::row_major(weight, o, patch);
    let grid = planes::Grid::of(shape);

    // At stride 1 on a narrow grid both gradients come from the output gradient's planes.
    if want_dx && want_dweight {
        if let Some((dx, dweight)) = adjoint::gradients(x, dy, weight, shape) {
            return (Some(dx), Some(dweight));
        }
    }
    // Otherwise at stride 1 the input gradient is a convolution of its own; the loop below then
    // sums the weight gradient alone.
    let adjoint = want_dx.then(|| adjoint::input_gradient(dy, weight, shape)).flatten();
    let want_dx = want_dx && adjoint.is_none();
    // Scratch buffers are made once per task and reused across its chunks of images; each chunk
    // sums its own share of the weight gradient.
    let new_columns = || match grid {
        Some(grid) => Columns::Planes(grid, planes::BackwardScratch::new(shape, &grid, want_dx)),
        None => Columns::Im2col(vec![0f32; patch * positions]),
    };
    let per_image = |columns: &mut Columns, weight_grad: &mut [f32], index: usize, dx_image: Option<&mut [f32]>| {
        let (image, dy) = (&x[index * image_len..][..image_len], &dy[index * o * positions..][..o * positions]);
        let weight_grad = want_dweight.then_some(weight_grad);
        let cols = match columns {
            Columns::Planes(grid, columns) => {
                return planes::backward_image(image, weight, dy, shape, grid, columns, weight_grad, dx_image);
            }
            Columns::Im2col(cols) => cols,
        };
        let grad = Matrix::row_major(dy, o, positions);
        if let Some(weight_grad) = weight_grad {
            im2col(image, shape, out, cols);
            gemm_into(weight_grad, grad, Matrix::row_major(cols, patch, positions).transposed(), true);
        }
        if let Some(dx_image) = dx_image {
            gemm_into(cols, w.transposed(), grad, false);
            col2im(cols, shape, out, dx_image);
        }
    };
    // Fixed chunks of images, each summing its own share of the weight gradient, and the shares
    // added in chunk order: the sum's order, and so its bits, do not depend on how rayon
    // schedules the chunks or on the number of threads (runs are deterministic under a seed).
    let chunk_share = |columns: &mut Columns, chunk: usize, mut dx_chunk: Option<&mut [f32]>| {
        let mut share = vec![0f32; if want_dweight { o * patch } else { 0 }];
        let first = chunk * IMAGES_PER_SHARE;
        for index in first..(first + IMAGES_PER_SHARE).min(n) {
            let dx_image = dx_chunk.as_deref_mut().map(|dx| &mut dx[(index - first) * image_len..][..image_len]);
            per_image(columns, &mut share, index, dx_image);
        }
        share
    };
    let chunks = n.div_ceil(IMAGES_PER_SHARE);
    let shares = Shares::new(chunks);
    let dx = if want_dx {
        // The input gradient is written chunk by chunk by the task that sums the chunk's share.
        Some(written_in_chunks(n * image_len, IMAGES_PER_SHARE * image_len, new_columns, |columns, chunk, part| {
            shares.put(chunk, chunk_share(columns, chunk, Some(part)));
        }))
    } else {
        (0..chunks)
            .into_par_iter()
            .for_each_init(new_columns, |columns, chunk| shares.put(chunk, chunk_share(columns, chunk, None)));
        None
    };
    let weight_grad = want_dweight.then(|| {
        let sum = shares.sum(o * patch);
        // The planes sum the kernel by rows of taps; burn's layout is restored once, here.
        if grid.is_some() {
            planes::kernel_from_taps(&sum, shape)
        } else {
            sum
        }
    });
    (adjoint.or(dx), weight_grad)
}

#[cfg(test)]
mod tests {
    use super::super::forward::valid_outputs;
    use super::*;

    fn shape(
        batch: usize,
        [channels_in, channels_out]: [usize; 2],
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> ConvShape {
        ConvShape { batch, channels_in, channels_out, input, kernel, stride, padding }
    }

    #[test]
    fn valid_outputs_match_a_bounds_test() {
        for (stride, padding, input, kernel) in [(1, 1, 5, 3), (2, 1, 6, 3), (3, 2, 7, 5), (2, 0, 4, 1), (1, 0, 3, 3)] {
            let output = (input + 2 * padding - kernel) / stride + 1;
            for offset in 0..kernel {
                let (low, high) = valid_outputs(offset, stride, padding, input, output);
                for out in 0..output {
                    let at = (out * stride + offset) as isize - padding as isize;
                    let inside = (0..input as isize).contains(&at);
                    assert_eq!(
                        inside,
                        (low..high).contains(&out),
                        "s{stride} p{padding} in{input} k{kernel} off{offset} out{out}"
                    );
                }
            }
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), c> = <x, col2im(c)> for any x and c.
        let shape = shape(1, [2, 1], [5, 6], [3, 2], [2, 1], [1, 1]);
        let out = shape.output().unwrap();
        let x: Vec<f32> = (0..2 * 5 * 6).map(|i| ((i * 7 % 11) as f32) - 5.0).collect();
        let c: Vec<f32> = (0..shape.patch_len() * out[0] * out[1]).map(|i| ((i * 5 % 13) as f32) - 6.0).collect();
        let mut cols = vec![0f32; c.len()];
        im2col(&x, &shape, out, &mut cols);
        let mut back = vec![0f32; x.len()];
        col2im(&c, &shape, out, &mut back);
        let lhs: f32 = cols.iter().zip(&c).map(|(a, b)| a * b).sum();
        let rhs: f32 = x.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert_eq!(lhs, rhs);
    }

    #[test]
    fn gradients_are_bit_identical_whatever_the_thread_count() {
        let shape = shape(37, [3, 5], [9, 8], [3, 3], [1, 1], [1, 1]);
        let [oh, ow] = shape.output().unwrap();
        let values = |len: usize, step: usize| -> Vec<f32> {
            (0..len).map(|i| ((i * step % 1009) as f32 / 1009.0 - 0.5) * 3.7).collect()
        };
        let x = values(37 * 3 * 9 * 8, 31);
        let w = values(5 * 3 * 9, 17);
        let dy = values(37 * 5 * oh * ow, 13);
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| conv2d_backward(&x, &w, &dy, &shape, true, true))
        };
        let one = run(1);
        for threads in [2, 3, 5] {
            assert!(run(threads) == one, "{threads} threads gave different bits");
        }
    }

    #[test]
    fn a_kernel_larger_than_the_padded_input_has_no_output() {
        let shape = shape(1, [1, 1], [2, 2], [5, 5], [1, 1], [1, 1]);
        assert_eq!(shape.output(), None);
    }
}
