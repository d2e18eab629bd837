//! The gradients of a convolution on the phase planes of its forward pass.
//!
//! The output gradient is laid on the grid with zeros in the discarded columns, so those columns
//! add nothing: the weight gradient is one GEMM per kernel row against the same planes as the
//! forward, and the input gradient one GEMM whose rows `(c, i, j)` each add onto plane
//! `(i mod s, c, j)`'s gradient as one contiguous run at row `i/s`, where col2im added a short
//! run per output row; the planes' gradients then add back onto the image. That input gradient
//! serves strided convolutions; at stride 1 it is a convolution of its own (`conv::adjoint`).

use super::super::gemm::{gemm_into, Matrix};
use super::super::shape::ConvShape;
use super::{fill_planes, Grid};

/// One task's buffers for the backward pass, reused across its images.
pub(in super::super) struct Scratch {
    planes: Vec<f32>,
    /// The output gradient on the GEMM's columns; the discarded and extra columns stay zero.
    wide: Vec<f32>,
    columns: Vec<f32>,
    /// The gradient of the planes.
    plane_grads: Vec<f32>,
}

impl Scratch {
    /// Buffers for `shape` on `grid`; those of the input gradient only when `want_dx` (the
    /// columns alone are several times the image, and the stride-1 layers never use them).
    pub(in super::super) fn new(shape: &ConvShape, grid: &Grid, want_dx: bool) -> Self {
        let dx_len = |len: usize| if want_dx { len } else { 0 };
        Self {
            planes: vec![0f32; grid.planes_len(shape)],
            wide: vec![0f32; shape.channels_out * grid.columns()],
            columns: vec![0f32; dx_len(shape.patch_len() * grid.columns())],
            plane_grads: vec![0f32; dx_len(grid.copies(shape))],
        }
    }
}

/// Image `index`'s share of the gradients: adds its weight gradient into `weight_grad` (laid out
/// as [`super::kernel_taps`]) and its input gradient into `dx` (`C × h × w`, zeroed by the
/// caller, which writes it in chunks it has just zeroed), each when given.
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
    let (o, wq, [oh, ow]) = (shape.channels_out, grid.planes[1], grid.out);
    for (wide, plane) in scratch.wide.chunks_exact_mut(grid.columns()).zip(dy.chunks_exact(oh * ow)) {
        for (wide, line) in wide.chunks_exact_mut(wq).zip(plane.chunks_exact(ow)) {
            wide[..ow].copy_from_slice(line);
        }
    }
    let grad = Matrix::row_major(&scratch.wide, o, grid.columns());
    if let Some(weight_grad) = weight_grad {
        fill_planes(image, shape, grid, &mut scratch.planes);
        let taps = shape.channels_in * shape.kernel[1];
        // Each kernel row's gradient is summed as `C·kw × O`, not `O × C·kw`: the gemm crate
        // copies its left operand into panels unless it runs along the output's rows, and this
        // way that operand is the `O`-row output gradient, not three times as many plane rows
        // (the copying was a tenth of a 28 px training step).
        for (i, taps) in weight_grad.chunks_exact_mut(o * taps).enumerate() {
            gemm_into(taps, grid.kernel_row(shape, &scratch.planes, i), grad.transposed(), true);
        }
    }
    if let Some(dx) = dx {
        // A narrow grid's convolution has stride 1 and padding inside the kernel, so its input
        // gradient is always taken as a convolution (`adjoint`), never added back from here.
        assert!(!grid.narrow, "no run-by-run input gradient on a narrow grid");
        let patch = shape.patch_len();
        gemm_into(&mut scratch.columns, Matrix::row_major(weight, o, patch).transposed(), grad, false);
        add_runs(&scratch.columns, shape, grid, &mut scratch.plane_grads);
        add_planes(&scratch.plane_grads, shape, grid, dx);
    }
}

/// The planes' gradient: row `(c, i, j)` of `columns` added as one run onto plane
/// `(i mod s, c, j)` from row `i/s` on.
fn add_runs(columns: &[f32], shape: &ConvShape, grid: &Grid, plane_grads: &mut [f32]) {
    let ([kh, kw], c_in, plane) = (shape.kernel, shape.channels_in, grid.plane());
    plane_grads.fill(0.0);
    for (row, run) in columns.chunks_exact(grid.columns()).enumerate() {
        // The GEMM's extra columns hold zeros (the output gradient's are zero): left out.
        let run = &run[..grid.grid_columns()];
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let start = (((i % grid.stride) * c_in + c) * kw + j) * plane + (i / grid.stride) * grid.planes[1];
        let dst = &mut plane_grads[start..][..run.len()];
        dst.iter_mut().zip(run).for_each(|(d, r)| *d += r);
    }
}

/// `dx` from the planes' gradient: each plane value added onto the input pixel it copied.
fn add_planes(plane_grads: &[f32], shape: &ConvShape, grid: &Grid, dx: &mut [f32]) {
    let ([h, w], [ph, pw], s, wq) = (shape.input, shape.padding, grid.stride, grid.planes[1]);
    for (index, plane) in plane_grads.chunks_exact(grid.plane()).enumerate() {
        let (alpha, c, j) = grid.phase_channel_tap(shape, index);
        let std::ops::Range { start: first, end } = grid.inside(shape, j);
        if first == end {
            continue;
        }
        for (y, line) in plane.chunks_exact(wq).enumerate() {
            let Some(row) = (s * y + alpha).checked_sub(ph).filter(|&row| row < h) else { continue };
            let target = &mut dx[(c * h + row) * w + s * first + j - pw..][..s * (end - first - 1) + 1];
            target.iter_mut().step_by(s).zip(&line[first..end]).for_each(|(d, v)| *d += v);
        }
    }
}
