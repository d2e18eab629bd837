//! SimCLR's NT-Xent loss.

use burn::tensor::activation::log_softmax;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

/// Rows scaled to unit length (a small epsilon keeps zero rows finite).
pub fn l2_normalize<B: Backend>(x: Tensor<B, 2>) -> Tensor<B, 2> {
    let norm = x.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    x / norm
}

/// NT-Xent over two views: each of the `2N` projections must pick its partner view among the other
/// `2N − 1`, with cosine similarities divided by `temperature`. Returns the mean loss.
pub fn nt_xent<B: Backend>(z1: Tensor<B, 2>, z2: Tensor<B, 2>, temperature: f32) -> Tensor<B, 1> {
    let [n, _] = z1.dims();
    let device = z1.device();
    let z = l2_normalize(Tensor::cat(vec![z1, z2], 0));
    let sim = z.clone().matmul(z.transpose()) / temperature;
    // A large negative on the diagonal removes each sample's similarity to itself.
    let self_mask = Tensor::<B, 2>::eye(2 * n, &device) * 1e9;
    let log_prob = log_softmax(sim - self_mask, 1);
    let mut positives = vec![0f32; 4 * n * n];
    for i in 0..2 * n {
        positives[i * 2 * n + (i + n) % (2 * n)] = 1.0;
    }
    let positives = Tensor::<B, 2>::from_data(TensorData::new(positives, [2 * n, 2 * n]), &device);
    (log_prob * positives).sum().neg() / (2 * n) as f32
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    fn tensor(rows: &[[f32; 2]]) -> Tensor<Flex, 2> {
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::from_data(TensorData::new(flat, [rows.len(), 2]), &Default::default())
    }

    #[test]
    fn matches_the_hand_computed_value() {
        // Each anchor sees its partner at cosine 1 and two negatives at cosine 0:
        // loss = −ln(e / (e + 2)) = ln(1 + 2/e) with τ = 1.
        let z = tensor(&[[1.0, 0.0], [0.0, 3.0]]);
        let loss: f32 = nt_xent(z.clone(), z, 1.0).into_scalar();
        let expected = (1.0 + 2.0 / std::f32::consts::E).ln();
        assert!((loss - expected).abs() < 1e-5, "{loss} vs {expected}");
    }

    #[test]
    fn matches_a_direct_computation_at_low_temperature() {
        let z1 = [[1.0, 2.0], [-1.0, 0.5], [0.3, -2.0]];
        let z2 = [[0.8, 2.5], [-0.2, 1.0], [1.0, -1.0]];
        let tau = 0.2f64;
        let all: Vec<[f64; 2]> = z1
            .iter()
            .chain(&z2)
            .map(|r| {
                let n = (r[0] as f64).hypot(r[1] as f64);
                [r[0] as f64 / n, r[1] as f64 / n]
            })
            .collect();
        let mut expected = 0.0;
        for i in 0..6 {
            let sim = |j: usize| (all[i][0] * all[j][0] + all[i][1] * all[j][1]) / tau;
            let denominator: f64 = (0..6).filter(|&j| j != i).map(|j| sim(j).exp()).sum();
            expected -= (sim((i + 3) % 6).exp() / denominator).ln() / 6.0;
        }
        let loss: f32 = nt_xent(tensor(&z1), tensor(&z2), tau as f32).into_scalar();
        assert!((f64::from(loss) - expected).abs() < 1e-4, "{loss} vs {expected}");
    }
}
