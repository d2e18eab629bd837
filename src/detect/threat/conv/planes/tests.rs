//! Tests of the phase planes: their forward and gradients against the plain definitions.

use super::*;

/// The plain definition, one output value at a time.
fn direct(x: &[f32], weight: &[f32], shape: &ConvShape) -> Vec<f32> {
    let [oh, ow] = shape.output().unwrap();
    let ([h, w], [kh, kw], [ph, pw], [sh, sw]) = (shape.input, shape.kernel, shape.padding, shape.stride);
    let (c_in, c_out) = (shape.channels_in, shape.channels_out);
    let mut y = vec![0f32; c_out * oh * ow];
    for o in 0..c_out {
        for (r, col) in (0..oh).flat_map(|r| (0..ow).map(move |col| (r, col))) {
            let mut sum = 0f64;
            for (c, i, j) in (0..c_in).flat_map(|c| (0..kh).flat_map(move |i| (0..kw).map(move |j| (c, i, j)))) {
                let (yy, xx) = ((r * sh + i) as isize - ph as isize, (col * sw + j) as isize - pw as isize);
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
fn the_planes_give_the_convolution() {
    // Padding narrower, equal to and wider than the kernel's reach, a kernel wider than the
    // image, strides of 1 to 3, and a kernel shorter than its stride.
    for (input, kernel, padding, stride) in [
        ([5, 6], [3, 3], [1, 1], 1),
        ([7, 4], [3, 2], [0, 1], 1),
        ([4, 4], [4, 4], [2, 2], 1),
        ([3, 2], [2, 5], [1, 2], 1),
        ([8, 7], [3, 3], [1, 1], 2),
        ([9, 10], [5, 3], [2, 0], 3),
        ([6, 6], [1, 1], [0, 0], 2),
        ([5, 7], [2, 4], [1, 2], 3),
        // Narrow grids: a 5×5 kernel, a one-row image, a kernel wider than the image.
        ([6, 5], [5, 5], [2, 2], 1),
        ([1, 6], [3, 3], [1, 1], 1),
        ([4, 2], [3, 7], [1, 3], 1),
        // Stride-2 rows long enough for the blocks of eight.
        ([5, 41], [3, 3], [1, 1], 2),
    ] {
        let stride = [stride, stride];
        let shape = ConvShape { batch: 1, channels_in: 3, channels_out: 2, input, kernel, stride, padding };
        let grid = Grid::of(&shape).unwrap();
        let values =
            |len: usize, step: usize| -> Vec<f32> { (0..len).map(|i| ((i * step % 23) as f32 - 11.0) / 4.0).collect() };
        let x = values(3 * input[0] * input[1], 7);
        let weight = values(2 * 3 * kernel[0] * kernel[1], 5);
        let [oh, ow] = grid.out;
        // Garbage in the output and scratch must not survive.
        let mut y = vec![std::mem::MaybeUninit::new(f32::NAN); 2 * oh * ow];
        let mut scratch = Scratch::new(&shape, &grid);
        scratch.planes.fill(f32::NAN);
        forward_image(
            &x,
            &kernel_rows(&weight, &shape),
            &shape,
            &grid,
            &mut scratch,
            (&mut y, 0),
            &Epilogue::default(),
        );
        // SAFETY: every value was initialised (to NaN) when `y` was made.
        let y: Vec<f32> = y.iter().map(|v| unsafe { v.assume_init() }).collect();
        let expected = direct(&x, &weight, &shape);
        for (a, b) in y.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-4, "{input:?} k{kernel:?} p{padding:?} s{stride:?}: {a} against {b}");
        }
    }
}

#[test]
fn kernel_rows_and_taps_regroup_every_weight() {
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
    // Kernel row 1, input 2, column 0 of output 1: the same weight, and every weight restored.
    let taps = kernel_taps(&weight, &shape);
    assert_eq!(taps[((3 + 2) * 3) * 2 + 1], weight[((3 + 2) * 2 + 1) * 3]);
    assert_eq!(kernel_from_taps(&taps, &shape), weight);
}

#[test]
fn every_kernel_takes_the_planes_but_a_plain_pointwise_one_and_unequal_strides() {
    let shape = |kernel, stride, padding| ConvShape {
        batch: 1,
        channels_in: 1,
        channels_out: 1,
        input: [8, 8],
        kernel,
        stride,
        padding,
    };
    assert!(Grid::of(&shape([3, 3], [1, 1], [1, 1])).is_some());
    assert!(Grid::of(&shape([3, 3], [2, 2], [1, 1])).is_some());
    assert!(Grid::of(&shape([1, 1], [2, 2], [0, 0])).is_some());
    assert!(Grid::of(&shape([1, 1], [1, 1], [0, 0])).is_none());
    assert!(Grid::of(&shape([3, 3], [1, 2], [1, 1])).is_none());
}

#[test]
fn every_nth_takes_every_nth_value_at_every_length() {
    let source: Vec<f32> = (0..64).map(|v| v as f32).collect();
    for (s, len) in [(2, 0), (2, 3), (2, 4), (2, 7), (2, 8), (2, 14), (2, 17), (2, 32), (3, 11), (1, 20)] {
        // Only as far as the last value taken (a value at a time), and on to the end
        // (blocks, the last overlapping).
        for source in [&source[..s * len.max(1) - s + 1], &source[..]] {
            let mut dst = vec![f32::NAN; len];
            every_nth(&mut dst, source, s);
            let expected: Vec<f32> = (0..len).map(|k| (s * k) as f32).collect();
            assert_eq!(dst, expected, "stride {s}, {len} values from {}", source.len());
        }
    }
}

#[test]
fn only_a_stride_1_convolution_as_wide_as_its_input_takes_narrow_planes() {
    let grid = |kernel, stride, padding| {
        let shape = ConvShape { batch: 1, channels_in: 1, channels_out: 1, input: [8, 8], kernel, stride, padding };
        Grid::of(&shape).unwrap()
    };
    let narrow = grid([3, 3], [1, 1], [1, 1]);
    assert!(narrow.narrow && narrow.grid_columns() == 8 * 8, "the grid is the output, nothing discarded");
    assert!(grid([5, 3], [1, 1], [2, 1]).narrow);
    assert!(!grid([3, 3], [2, 2], [1, 1]).narrow);
    assert!(!grid([3, 3], [1, 1], [0, 0]).narrow);
    assert!(!grid([3, 3], [1, 1], [3, 1]).narrow);
}
