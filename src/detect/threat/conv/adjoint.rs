//! The input gradient of a stride-1 convolution as a convolution of the output gradient.
//!
//! The backward pass's own route to `dx` is one GEMM per image with only `O` terms per sum
//! (`Wᵀ·dY`), whose `C·kh·kw` rows are then added back onto the image run by run: at 28 px that
//! GEMM and those additions were a fifth of a training step. At stride 1 the same gradient is a
//! plain convolution of `dy` with the kernel flipped and its channels swapped, padded by
//! `k − 1 − p`: the forward pass's phase planes then run it, `O·kw` terms per sum and kernel row,
//! writing each input value once.

use super::host::conv2d_forward;
use super::shape::ConvShape;

/// `dx` for the output gradient `dy` of a convolution of `shape` with `weight` (`O×C×kh×kw`), as
/// a convolution; `None` when the stride is not 1 or the padding reaches past the kernel (then
/// the flipped kernel's padding would be negative).
pub(super) fn input_gradient(dy: &[f32], weight: &[f32], shape: &ConvShape) -> Option<Vec<f32>> {
    let adjoint = adjoint_shape(shape)?;
    Some(conv2d_forward(dy, &flipped(weight, shape), &adjoint))
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

    #[test]
    fn strides_and_padding_past_the_kernel_are_left_to_the_backward_pass() {
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 2, [1, 1])).is_none());
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 1, [3, 1])).is_none());
        assert!(adjoint_shape(&shape([8, 8], [3, 3], 1, [2, 2])).is_some());
    }
}
