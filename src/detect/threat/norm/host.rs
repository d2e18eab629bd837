//! Batch-statistics normalisation on the host, for Flex under autodiff.
//!
//! Written as tensor ops, a training batch norm is about five full-size passes forward and eight
//! backward, each a separate Flex kernel with its own allocation. Here the statistics take one
//! pass per channel, the output one pass, and the backward two (sums per channel, then the input
//! gradient), with the statistics accumulated in f64.

use rayon::prelude::*;

use crate::detect::threat::zeroed::written_in_chunks;

/// A normalised batch and what its backward pass needs besides the input.
pub struct Normalised {
    /// `γ·x̂ + β` with `x̂ = (x − mean) / sqrt(var + ε)`, `N×C×HW`.
    pub y: Vec<f32>,
    /// Per-channel batch mean.
    pub mean: Vec<f32>,
    /// Per-channel biased batch variance.
    pub var: Vec<f32>,
    /// Per-channel `1 / sqrt(var + ε)`.
    pub inv_std: Vec<f32>,
}

/// What follows the normalisation in the same pass: `relu?(γ·x̂ + β + residual)`.
#[derive(Clone, Copy, Default)]
pub struct Then<'a> {
    /// Added before the ReLU, `N×C×HW` like the input (a residual block's skip).
    pub residual: Option<&'a [f32]>,
    /// Whether negative outputs are zeroed.
    pub relu: bool,
}

/// Normalises `x` (`N×C×HW`, row-major) with its own per-channel statistics, then applies
/// `then` in the pass that writes the output.
pub fn forward_then(
    x: &[f32],
    [n, c, hw]: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
    then: Then,
) -> Normalised {
    assert!(x.len() == n * c * hw && gamma.len() == c && beta.len() == c);
    assert!(then.residual.is_none_or(|r| r.len() == x.len()), "the residual is shaped like the input");
    let count = (n * hw) as f64;
    let plane = |image: usize, channel: usize| &x[(image * c + channel) * hw..][..hw];
    let (mean, var): (Vec<f64>, Vec<f64>) = (0..c)
        .into_par_iter()
        .map(|channel| {
            let sum: f64 = (0..n).map(|i| lane_sum(plane(i, channel), |v| v as f64)).sum();
            let mean = sum / count;
            let squares: f64 = (0..n).map(|i| lane_sum(plane(i, channel), |v| (v as f64 - mean).powi(2))).sum();
            (mean, squares / count)
        })
        .unzip();
    let inv_std: Vec<f32> = var.iter().map(|v| (1.0 / (v + epsilon).sqrt()) as f32).collect();
    let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    // x̂ is not kept: the backward pass recomputes it from `x` with the same two operations, to
    // the same bits, which saves writing and holding a second batch-sized buffer per norm.
    let y = written_in_chunks(
        x.len(),
        hw,
        || (),
        |_, row, y| {
            let x = &x[row * hw..][..hw];
            let channel = row % c;
            let (m, s, g, b) = (mean[channel], inv_std[channel], gamma[channel], beta[channel]);
            for (y, &v) in y.iter_mut().zip(x) {
                *y = hat(v, m, s) * g + b;
            }
            if let Some(residual) = then.residual {
                y.iter_mut().zip(&residual[row * hw..][..hw]).for_each(|(y, r)| *y += r);
            }
            if then.relu {
                y.iter_mut().for_each(|y| *y = y.max(0.0));
            }
        },
    );
    Normalised { y, mean, var: var.iter().map(|&v| v as f32).collect(), inv_std }
}

/// The gradients of [`forward_then`] given `dy`.
pub struct Gradients {
    /// Of the input.
    pub dx: Vec<f32>,
    /// Of γ, per channel.
    pub dgamma: Vec<f32>,
    /// Of β, per channel.
    pub dbeta: Vec<f32>,
    /// Of the residual: `dy` where the output passed the ReLU. `None` unless asked for.
    pub dresidual: Option<Vec<f32>>,
}

/// The gradients of [`forward_then`]: `relu_output` is its output when it applied a ReLU (the
/// gradient passes where that is positive), and `want_residual` asks for the residual's.
pub fn backward_then(
    dy: &[f32],
    x: &[f32],
    [n, c, hw]: [usize; 3],
    [gamma, mean, inv_std]: [&[f32]; 3],
    relu_output: Option<&[f32]>,
    want_residual: bool,
) -> Gradients {
    assert!(dy.len() == n * c * hw && x.len() == dy.len());
    assert!(gamma.len() == c && mean.len() == c && inv_std.len() == c);
    assert!(relu_output.is_none_or(|y| y.len() == dy.len()), "the ReLU's output is shaped like dy");
    let at = |image: usize, channel: usize| (image * c + channel) * hw;
    let (dgamma, dbeta): (Vec<f64>, Vec<f64>) = (0..c)
        .into_par_iter()
        .map(|channel| {
            (0..n).fold((0f64, 0f64), |(dg, db), i| {
                let from = at(i, channel);
                let (dy, x) = (&dy[from..][..hw], &x[from..][..hw]);
                let h = |v| hat(v, mean[channel], inv_std[channel]);
                let (row_dg, row_db) = match relu_output {
                    Some(y) => lane_pair_sum(dy, x, &y[from..][..hw], relu_gate, h),
                    None => lane_pair_sum(dy, x, dy, |d, _| d, h),
                };
                (dg + row_dg as f64, db + row_db as f64)
            })
        })
        .unzip();
    let count = (n * hw) as f64;
    let dx = written_in_chunks(
        dy.len(),
        hw,
        || (),
        |_, row, dx| {
            let channel = row % c;
            let scale = gamma[channel] * inv_std[channel];
            let (mean_dy, mean_dy_h) = ((dbeta[channel] / count) as f32, (dgamma[channel] / count) as f32);
            let (m, s) = (mean[channel], inv_std[channel]);
            let value = |d: f32, v: f32| scale * (d - mean_dy - hat(v, m, s) * mean_dy_h);
            let (dy, x) = (&dy[row * hw..][..hw], &x[row * hw..][..hw]);
            // One loop per case, each over slices cut to the row, so that both vectorise.
            match relu_output {
                Some(y) => {
                    let y = &y[row * hw..][..hw];
                    for (((dx, &d), &v), &y) in dx.iter_mut().zip(dy).zip(x).zip(y) {
                        *dx = value(relu_gate(d, y), v);
                    }
                }
                None => dx.iter_mut().zip(dy).zip(x).for_each(|((dx, &d), &v)| *dx = value(d, v)),
            }
        },
    );
    // The residual's gradient is what passed the ReLU: a pass of its own, which costs less than
    // zeroing a second buffer for the pass above to write in step.
    let dresidual = want_residual.then(|| {
        written_in_chunks(
            dy.len(),
            hw,
            || (),
            |_, row, dres| {
                let dy = &dy[row * hw..][..hw];
                match relu_output {
                    Some(y) => {
                        let y = &y[row * hw..][..hw];
                        dres.iter_mut().zip(dy).zip(y).for_each(|((r, &d), &y)| *r = relu_gate(d, y));
                    }
                    None => dres.copy_from_slice(dy),
                }
            },
        )
    });
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|v| v as f32).collect();
    Gradients { dx, dgamma: to_f32(dgamma), dbeta: to_f32(dbeta), dresidual }
}

/// `x̂ = (v − mean) · (1/σ)`, written once for the forward pass and the backward's recomputation.
#[inline(always)]
fn hat(v: f32, mean: f32, inv_std: f32) -> f32 {
    (v - mean) * inv_std
}

/// The gradient `d` that passes a ReLU whose output was `y`: none where it clamped.
#[inline(always)]
fn relu_gate(d: f32, y: f32) -> f32 {
    if y <= 0.0 {
        0.0
    } else {
        d
    }
}

/// Accumulators per sum: one running sum is a chain the compiler must keep in order, so it
/// cannot vectorise it; this many independent ones, added in a fixed order at the end, it can,
/// and the order (so the bits) is the same on every run.
const LANES: usize = 16;

/// `Σ value(v)` over `values`, in [`LANES`] accumulators.
#[inline(always)]
fn lane_sum(values: &[f32], value: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; LANES];
    let chunks = values.chunks_exact(LANES);
    let tail: f64 = chunks.remainder().iter().map(|&v| value(v)).sum();
    for chunk in chunks {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += value(v);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// `(Σ g·h(x), Σ g)` with `g = gate(d, y)` over `dy`, `x` and `y` (all one length), in
/// [`LANES`] accumulators each: the norm's γ and β gradients on one plane.
#[inline(always)]
fn lane_pair_sum(
    dy: &[f32],
    x: &[f32],
    y: &[f32],
    gate: impl Fn(f32, f32) -> f32,
    h: impl Fn(f32) -> f32,
) -> (f32, f32) {
    let (mut gh, mut g) = ([0f32; LANES], [0f32; LANES]);
    let (dys, xs, ys) = (dy.chunks_exact(LANES), x.chunks_exact(LANES), y.chunks_exact(LANES));
    let tails = (dys.remainder(), xs.remainder(), ys.remainder());
    for ((dy, x), y) in dys.zip(xs).zip(ys) {
        for k in 0..LANES {
            let d = gate(dy[k], y[k]);
            gh[k] += d * h(x[k]);
            g[k] += d;
        }
    }
    let (mut sum_gh, mut sum_g) = (gh.iter().sum::<f32>(), g.iter().sum::<f32>());
    for ((&dy, &x), &y) in tails.0.iter().zip(tails.1).zip(tails.2) {
        let d = gate(dy, y);
        sum_gh += d * h(x);
        sum_g += d;
    }
    (sum_gh, sum_g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_output_has_zero_mean_and_unit_variance_per_channel() {
        let (n, c, hw) = (3, 2, 5);
        let x: Vec<f32> = (0..n * c * hw).map(|i| ((i * 37 % 17) as f32) * 0.5 + (i % c) as f32 * 10.0).collect();
        let out = forward_then(&x, [n, c, hw], &[1.0, 1.0], &[0.0, 0.0], 0.0, Then::default());
        for channel in 0..c {
            let values: Vec<f32> = (0..n).flat_map(|i| out.y[(i * c + channel) * hw..][..hw].to_vec()).collect();
            let mean = values.iter().sum::<f32>() / values.len() as f32;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / values.len() as f32;
            assert!(mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4, "channel {channel}: mean {mean}, var {var}");
        }
    }

    #[test]
    fn lane_sums_add_every_value_whatever_the_length() {
        for len in [0, 5, 16, 37] {
            let dy: Vec<f32> = (0..len).map(|i| (i % 7) as f32 - 3.0).collect();
            let h: Vec<f32> = (0..len).map(|i| (i % 5) as f32 * 0.5).collect();
            let y: Vec<f32> = (0..len).map(|i| if i % 3 == 0 { 0.0 } else { 1.0 }).collect();
            let (gh, g) = lane_pair_sum(&dy, &h, &y, relu_gate, |v| v);
            let kept = || (0..len).filter(|i| i % 3 != 0);
            assert_eq!(g, kept().map(|i| dy[i]).sum::<f32>(), "length {len}");
            assert_eq!(gh, kept().map(|i| dy[i] * h[i]).sum::<f32>(), "length {len}");
            assert_eq!(lane_sum(&h, |v| v as f64), h.iter().map(|&v| v as f64).sum::<f64>(), "length {len}");
        }
    }
}
