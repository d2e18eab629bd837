//! The input gradient of a stride-1 convolution as a convolution of the output gradient.
//!
//! The backward pass's own route to `dx` is one GEMM per image with only `O` terms per sum
//! (`Wᵀ·dY`), whose `C·kh·kw` rows are then added back onto the image run by run: at 28 px that
//! GEMM and those additions were a fifth of a training step. At stride 1 the same gradient is a
//! plain convolution of `dy` with the kernel flipped and its channels swapped, padded by
//! `k − 1 − p`: the forward pass's phase planes then run it, `O·kw` terms per sum and kernel row,
//! writing each input value once.

use super::epilogue::Epilogue;
use super::forward::conv2d_forward;
use super::planes;
use super::shape::ConvShape;
use crate::detect::threat::shares::Shares;
use crate::detect::threat::zeroed::set_in_chunks;

/// Images whose weight-gradient terms one task sums before the tasks' sums are added in order.
pub(super) const IMAGES_PER_SHARE: usize = 8;

/// `dx` for the output gradient `dy` of a convolution of `shape` with `weight` (`O×C×kh×kw`), as
/// a convolution; `None` when the stride is not 1 or the padding reaches past the kernel (then
/// the flipped kernel's padding would be negative).
pub(super) fn input_gradient(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Option<Vec<f32>> {
    let adjoint = adjoint_shape(shape)?;
    Some(conv2d_forward(dy, &flipped(weight, shape), &adjoint))
}

/// `(dx, dweight)` from one set of planes per image: `dy`'s, built for the convolution that
/// gives `dx`, also give the weight gradient, since `Σ_p x[c, p + d]·dy[o, p]` is
/// `Σ_q x[c, q]·dy[o, q − d]` and `dy` shifted by `−d` is a row of those planes. The backward
/// pass otherwise builds the planes of `x` again for the weight gradient alone. `None` unless
/// [`input_gradient`] applies and its planes are as wide as the image ([`planes::Grid`]'s
/// narrow case), so that their columns line up with `x`'s positions.
pub(super) fn gradients(x: &[f32], dy: &[f32], weight: &[f32], shape: &ConvShape) -> Option<(Vec<f32>, Vec<f32>)> {
    let adjoint = adjoint_shape(shape)?;
    let grid = planes::Grid::of(&adjoint).filter(|grid| grid.is_narrow())?;
    let rows = planes::kernel_rows(&flipped(weight, shape), &adjoint);
    let (n, dy_len, x_len) = (shape.batch, adjoint.image_len(), shape.image_len());
    // Each chunk of images sums its own share, and the shares are added in chunk order: the
    // bits do not depend on the pool's scheduling.
    let shares = Shares::new(n.div_ceil(IMAGES_PER_SHARE));
    // SAFETY: `forward_image` writes every value of each image's `dx` (its epilogue does), and
    // the chunk is whole images.
    let dx = unsafe {
        set_in_chunks(
            n * x_len,
            IMAGES_PER_SHARE * x_len,
            || planes::Scratch::new(&adjoint, &grid),
            |scratch, chunk, part| {
                let mut share = vec![0f32; weight.len()];
                for (k, dx) in part.chunks_exact_mut(x_len).enumerate() {
                    let index = chunk * IMAGES_PER_SHARE + k;
                    let dy = &dy[index * dy_len..][..dy_len];
                    planes::forward_image(dy, &rows, &adjoint, &grid, scratch, (dx, index), &Epilogue::default());
                    planes::add_weight_grad_of_adjoint(
                        &x[index * x_len..][..x_len],
                        &adjoint,
                        &grid,
                        scratch,
                        &mut share,
                    );
                }
                shares.put(chunk, share);
            },
        )
    };
    Some((dx, kernel_from_adjoint_rows(&shares.sum(weight.len()), shape)))
}

/// burn's `[o][c][i][j]` from the sums of [`gradients`], laid out `[i′][o][j′][c]` by the
/// flipped kernel's rows and columns (`i′ = kh−1−i`, `j′ = kw−1−j`).
fn kernel_from_adjoint_rows(sums: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (o, c, [kh, kw]) = (shape.channels_out, shape.channels_in, shape.kernel);
    let mut weight = vec![0f32; sums.len()];
    for (row, channels) in sums.chunks_exact(c).enumerate() {
        let (i, oc, j) = (kh - 1 - row / (o * kw), row / kw % o, kw - 1 - row % kw);
        for (cc, &value) in channels.iter().enumerate() {
            weight[((oc * c + cc) * kh + i) * kw + j] = value;
        }
    }
    weight
}

/// The shape of the convolution that maps `dy` to `dx`.
fn adjoint_shape(shape: &ConvShape) -> Option<ConvShape> {
    let out = shape.output()?;
    let ([kh, kw], [ph, pw]) = (shape.kernel, shape.padding);
    let fits = shape.stride == [1, 1] && ph < kh && pw < kw;
    fits.then(|| ConvShape {
        batch: shape.batch,
        channels_in: shape.channels_out,
        channels_out: shape.channels_in,
        input: out,
        kernel: shape.kernel,
        stride: [1, 1],
        padding: [kh - 1 - ph, kw - 1 - pw],
    })
}

/// `W′[c][o][i][j] = W[o][c][kh−1−i][kw−1−j]`.
fn flipped(weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let (o, c, [kh, kw]) = (shape.channels_out, shape.channels_in, shape.kernel);
    let mut flipped = Vec::with_capacity(weight.len());
    for (c, o) in (0..c).flat_map(|c| (0..o).map(move |o| (c, o))) {
        let kernel = &weight[(o * shape.channels_in + c) * kh * kw..][..kh * kw];
        flipped.extend(kernel.iter().rev());
    }
    flipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(input: [usize; 2], kernel: [usize; 2], stride: usize, padding: [usize; 2]) -> ConvShape {
        ConvShape { batch: 2, channels_in: 3, channels_out: 4, input, kernel, stride: [stride, stride], padding }
    }

    /// `<conv(x), dy> = <x, dx>` for every `x` and `dy` is what makes `dx` the input gradient.
    #[test]
    fn the_gradient_is_the_adjoint_of_the_convolution() {
        for (input, kernel, padding) in
            [([7, 6], [3, 3], [1, 1]), ([5, 8], [5, 3], [2, 0]), ([4, 4], [2, 2], [1, 1]), ([6, 5], [1, 1], [0, 0])]
        {
            let shape = shape(input, kernel, 1, padding);
            let values = |len: usize, step: usize| -> Vec<f32> {
                (0..len).map(|i| ((i * step % 19) as f32 - 9.0) / 8.0).collect()
            };
            let x = values(shape.batch * shape.image_len(), 7);
            let weight = values(shape.channels_out * shape.patch_len(), 5);
            let y = conv2d_forward(&x, &weight, &shape);
            let dy = values(y.len(), 11);
            let dx = input_gradient(&dy, &weight, &shape).expect("stride 1, padding inside the kernel");
            assert_eq!(dx.len(), x.len());
            let lhs: f64 = y.iter().zip(&dy).map(|(a, b)| (a * b) as f64).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| (a * b) as f64).sum();
            assert!(
                (lhs - rhs).abs() < 1e-3 * lhs.abs().max(1.0),
                "{input:?} k{kernel:?} p{padding:?}: {lhs} against {rhs}"
            );
        }
    }

    /// Both gradients from `dy`'s planes against `dx` as a convolution and the weight gradient
    /// summed over `x`'s planes by the backward pass (asked for it alone): equal up to rounding,
    /// on kernels whose rows and columns differ, so a flipped or transposed layout shows.
    #[test]
    fn gradients_from_the_output_gradients_planes_match_the_separate_ones() {
        for (input, kernel, padding) in [([7, 6], [3, 3], [1, 1]), ([6, 9], [3, 5], [1, 2]), ([5, 5], [1, 3], [0, 1])] {
            let shape = shape(input, kernel, 1, padding);
            let values = |len: usize, step: usize| -> Vec<f32> {
                (0..len).map(|i| ((i * step % 23) as f32 - 11.0) / 8.0).collect()
            };
            let x = values(shape.batch * shape.image_len(), 7);
            let weight = values(shape.channels_out * shape.patch_len(), 5);
            let dy = values(conv2d_forward(&x, &weight, &shape).len(), 11);
            let (dx, dweight) = gradients(&x, &dy, &weight, &shape).expect("stride 1 on a narrow grid");
            let expected_dx = input_gradient(&dy, &weight, &shape).unwrap();
            let (_, expected_dweight) = super::super::host::conv2d_backward(&x, &weight, &dy, &shape, false, true);
            let close = |a: &[f32], b: &[f32], what: &str| {
                let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
                let error = a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
                assert!(a.len() == b.len() && error < 1e-5, "{what} {input:?} k{kernel:?}: relative error {error}");
            };
            close(&dx, &expected_dx, "dx");
            close(&dweight, &expected_dweight.unwrap(), "dweight");
        }
    }

    #[test]
    fn only_a_stride_1_convolution_as_wide_as_its_input_takes_both_gradients_from_one_set_of_planes() {
        let x = vec![1f32; 2 * 3 * 64];
        let weight = vec![1f32; 4 * 3 * 9];
        let dy = |s: &ConvShape| vec![1f32; s.batch * s.channels_out * s.output().unwrap().iter().product::<usize>()];
        let strided = shape([8, 8], [3, 3], 2, [1, 1]);
        assert!(gradients(&x, &dy(&strided), &weight, &strided).is_none());
        let valid = shape([8, 8], [3, 3], 1, [0, 0]);
        assert!(gradients(&x, &dy(&valid), &weight, &valid).is_none());
        let same = shape([8, 8], [3, 3], 1, [1, 1]);
        assert!(gradients(&x, &dy(&same), &weight, &same).is_some());
    }

    #[test]
    fn strides_and_padding_past_the_kernel_are_left_to_the_backward_pass() {
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 2, [1, 1])).is_none());
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 1, [3, 1])).is_none());
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 1, [2, 2])).is_some());
    }
}
