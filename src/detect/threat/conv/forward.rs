//! The convolution on the host: the phase planes where [`super::planes`] covers the shape, else
//! im2col and one GEMM per image, images in parallel.

use super::epilogue::Epilogue;
use super::gemm::{gemm_into, Matrix};
use super::planes;
use super::shape::ConvShape;
use crate::detect::threat::zeroed::{set_in_chunks, written_in_chunks};

/// im2col's view of a shape: where each row of the columns reads.
impl ConvShape {
    /// Where row `row` of the columns reads, for an output of `out`.
    pub(super) fn tap(&self, out: [usize; 2], row: usize) -> Tap {
        let [h, w] = self.input;
        let [kh, kw] = self.kernel;
        let (c, i, j) = (row / (kh * kw), row / kw % kh, row % kw);
        let (oh_lo, oh_hi) = valid_outputs(i, self.stride[0], self.padding[0], h, out[0]);
        let (ow_lo, ow_hi) = valid_outputs(j, self.stride[1], self.padding[1], w, out[1]);
        Tap { plane: c * h * w..(c + 1) * h * w, offset: [i, j], rows: oh_lo..oh_hi, cols: ow_lo..ow_hi }
    }

    /// The input row and first column that output row `oh`, column `ow_lo` of `tap` reads.
    pub(super) fn source(&self, tap: &Tap, oh: usize) -> (usize, usize) {
        let row = oh * self.stride[0] + tap.offset[0] - self.padding[0];
        (row * self.input[1], tap.cols.start * self.stride[1] + tap.offset[1] - self.padding[1])
    }
}

/// The half-open range of output positions along one axis whose input tap `offset` (kernel
/// index) falls inside the image, so the inner loops need no bounds tests.
pub(super) fn valid_outputs(
    offset: usize,
    stride: usize,
    padding: usize,
    input: usize,
    output: usize,
) -> (usize, usize) {
    // in = out·stride + offset − padding must satisfy 0 ≤ in < input.
    let low = padding.saturating_sub(offset).div_ceil(stride);
    let high = if input + padding > offset { (input + padding - offset).div_ceil(stride) } else { 0 };
    (low.min(output), high.min(output).max(low.min(output)))
}

/// Where one row of the columns reads: the channel plane, the kernel offset, and the output rows
/// and columns whose tap lands inside the image.
pub(super) struct Tap {
    pub(super) plane: std::ops::Range<usize>,
    pub(super) offset: [usize; 2],
    pub(super) rows: std::ops::Range<usize>,
    pub(super) cols: std::ops::Range<usize>,
}

/// `cols[(c,i,j), (oh,ow)] = x[c, oh·s+i−p, ow·s+j−p]`, zero outside the image.
pub(super) fn im2col(x: &[f32], shape: &ConvShape, out: [usize; 2], cols: &mut [f32]) {
    let sw = shape.stride[1];
    for (row, col) in cols.chunks_exact_mut(out[0] * out[1]).enumerate() {
        let tap = shape.tap(out, row);
        let plane = &x[tap.plane.clone()];
        // Each value is written once: the zeros only where the tap falls outside the image.
        zero(&mut col[..tap.rows.start * out[1]]);
        zero(&mut col[tap.rows.end * out[1]..]);
        for oh in tap.rows.clone() {
            let (line, first) = shape.source(&tap, oh);
            let line = &plane[line..][..shape.input[1]];
            let dst = &mut col[oh * out[1]..][..out[1]];
            zero(&mut dst[..tap.cols.start]);
            zero(&mut dst[tap.cols.end..]);
            let dst = &mut dst[tap.cols.clone()];
            if sw == 1 {
                // Unit stride, the common case, is a plain copy.
                dst.copy_from_slice(&line[first..][..dst.len()]);
            } else {
                dst.iter_mut().zip(line[first..].iter().step_by(sw)).for_each(|(d, s)| *d = *s);
            }
        }
    }
}

/// Zeroes `values`, skipping the call when there are none (most margins are empty).
fn zero(values: &mut [f32]) {
    if !values.is_empty() {
        values.fill(0.0);
    }
}

/// `y = conv(x, weight)`: `x` is `N×C×H×W` and `weight` `O×C×kh×kw`, contiguous row-major;
/// `y` is `N×O×oh×ow`.
pub fn conv2d_forward(x: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    conv2d_forward_with(x, weight, shape, Epilogue::default())
}

/// [`conv2d_forward`] followed by `epilogue`.
pub fn conv2d_forward_with(x: &[f32], weight: &[f32], shape: &ConvShape, epilogue: Epilogue) -> Vec<f32> {
    let out = shape.output().expect("checked by the caller");
    let positions = out[0] * out[1];
    let patch = shape.patch_len();
    let (o, image_len) = (shape.channels_out, shape.image_len());
    assert!(x.len() == shape.batch * image_len && weight.len() == o * patch);
    assert!(epilogue.shift.is_none_or(|s| s.len() == o));
    assert!(epilogue.residual.is_none_or(|r| r.len() == shape.batch * o * positions));
    let len = shape.batch * o * positions;
    if let Some(grid) = planes::Grid::of(shape) {
        let rows = planes::kernel_rows(weight, shape);
        // SAFETY: `forward_image` ends in `Epilogue::apply_wide`, which writes every value of
        // the image's output.
        return unsafe {
            set_in_chunks(
                len,
                o * positions,
                || planes::Scratch::new(shape, &grid),
                |scratch, index, y_image| {
                    let image = &x[index * image_len..][..image_len];
                    planes::forward_image(image, &rows, shape, &grid, scratch, (y_image, index), &epilogue);
                },
            )
        };
    }
    // A 1×1 kernel at stride 1 without padding reads the image as its own columns.
    let pointwise = shape.kernel == [1, 1] && shape.stride == [1, 1] && shape.padding == [0, 0];
    let w = Matrix::row_major(weight, o, patch);
    written_in_chunks(
        len,
        o * positions,
        || vec![0f32; if pointwise { 0 } else { patch * positions }],
        |cols, index, y_image| {
            let image = &x[index * image_len..][..image_len];
            let cols = if pointwise {
                image
            } else {
                im2col(image, shape, out, cols);
                &cols[..]
            };
            gemm_into(y_image, w, Matrix::row_major(cols, patch, positions), false);
            epilogue.apply(y_image, index, positions);
        },
    )
}
