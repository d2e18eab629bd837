//! The gradients of a shifted convolution, on the same padded grid as its forward pass.
//!
//! The output gradient is laid on the grid with zeros in the discarded columns, so those columns
//! add nothing: the weight gradient is one GEMM per kernel row against the shifted copies, and
//! the input gradient one GEMM whose rows `(c, i, j)` each add back onto the padded image as one
//! contiguous run at offset `i·wp + j`, where col2im added a short run per output row.

use super::super::gemm::{gemm_into, Matrix};
use super::super::host::ConvShape;
use super::{shift_copies, Grid};

/// One task's buffers for the backward pass, reused across its images.
pub(in super::super) struct Scratch {
    shifted: Vec<f32>,
    /// The output gradient on the grid; the discarded columns stay zero from here on.
    wide: Vec<f32>,
    columns: Vec<f32>,
    /// The padded input gradient, with room for the last plane's runs to spill past its end
    /// (they carry only the discarded columns' zeros).
    padded: Vec<f32>,
}

impl Scratch {
    pub(in super::super) fn new(shape: &ConvShape, grid: &Grid) -> Self {
        let patch = shape.channels_in * shape.kernel[0] * shape.kernel[1];
        Self {
            shifted: vec![0f32; shape.channels_in * shape.kernel[1] * grid.plane()],
            wide: vec![0f32; shape.channels_out * grid.columns()],
            columns: vec![0f32; patch * grid.columns()],
            padded: vec![0f32; shape.channels_in * grid.plane() + shape.kernel[1]],
        }
    }
}

/// Image `index`'s share of the gradients: adds its weight gradient into `weight_grad` (laid out
/// as [`super::kernel_rows`]) and overwrites `dx` (`C × h × w`), each when given.
#[allow(clippy::too_many_arguments)]
pub(in super::super) fn backward_image(
    image: &[f32],
    weight: &[f32],
    dy: &[f32],
    shape: &ConvShape,
    grid: &Grid,
    scratch: &mut Scratch,
    weight_grad: Option<&mut [f32]>,
    dx: Option<&mut [f32]>,
) {
    let (o, [kh, kw], wp) = (shape.channels_out, shape.kernel, grid.padded[1]);
    let [oh, ow] = grid.out;
    for (wide, plane) in scratch.wide.chunks_exact_mut(grid.columns()).zip(dy.chunks_exact(oh * ow)) {
        for (wide, line) in wide.chunks_exact_mut(wp).zip(plane.chunks_exact(ow)) {
            wide[..ow].copy_from_slice(line);
        }
    }
    let grad = Matrix::row_major(&scratch.wide, o, grid.columns());
    let taps = shape.channels_in * kw;
    if let Some(weight_grad) = weight_grad {
        shift_copies(image, shape, grid, &mut scratch.shifted);
        for (i, rows) in weight_grad.chunks_exact_mut(o * taps).enumerate() {
            let shifted = Matrix {
                data: &scratch.shifted[i * wp..],
                rows: taps,
                cols: grid.columns(),
                row_stride: grid.plane(),
                col_stride: 1,
            };
            gemm_into(rows, grad, shifted.transposed(), true);
        }
    }
    if let Some(dx) = dx {
        let patch = shape.channels_in * kh * kw;
        gemm_into(&mut scratch.columns, Matrix::row_major(weight, o, patch).transposed(), grad, false);
        scratch.padded.fill(0.0);
        for (row, run) in scratch.columns.chunks_exact(grid.columns()).enumerate() {
            let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
            let dst = &mut scratch.padded[c * grid.plane() + i * wp + j..][..run.len()];
            dst.iter_mut().zip(run).for_each(|(d, r)| *d += r);
        }
        let ([h, w], [ph, pw]) = (shape.input, shape.padding);
        for (plane, padded) in dx.chunks_exact_mut(h * w).zip(scratch.padded.chunks(grid.plane())) {
            for (line, padded) in plane.chunks_exact_mut(w).zip(padded[ph * wp..].chunks(wp)) {
                line.copy_from_slice(&padded[pw..pw + w]);
            }
        }
    }
}
