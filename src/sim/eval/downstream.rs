//! Downstream scores of an encoder (docs/design.md §5): kNN clean accuracy, attack success rate and the
//! target-class false-positive rate, plus how tightly the poisons gather in feature space.

use burn::tensor::backend::Backend;
use serde::{Deserialize, Serialize};

use super::knn::knn_predict;
use crate::detect::embed::{embed, Embed, Embeddings};
use crate::image::ImageBatchSource;

/// Images with their true labels.
pub struct LabeledImages<'a> {
    /// The images.
    pub images: &'a ImageBatchSource,
    /// Their labels, by row.
    pub labels: &'a [usize],
}

/// The `downstream` block of the eval JSON for one encoder.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DownstreamScores {
    /// kNN accuracy on the clean test images.
    pub clean_acc: f64,
    /// Share of triggered non-target test images predicted as the target class.
    pub asr: f64,
    /// Share of clean non-target test images predicted as the target class (the base rate of `asr`).
    pub target_fp: f64,
    /// Mean share of each poison's k nearest training neighbours that are poisons too
    /// (chance level is the poisoning rate); `None` when the bank holds no poisons.
    pub poison_neighbour_share: Option<f64>,
    /// The same share if a poison's neighbours were drawn from its own class: all poisons come
    /// from the target class, so class purity alone lifts the share far above the poisoning rate.
    #[serde(default)]
    pub poison_neighbour_null: Option<f64>,
}

/// Everything [`downstream_scores`] needs besides the encoder.
pub struct DownstreamData<'a> {
    /// The training images with the labels a user would have (poisons carry the target label).
    pub bank: LabeledImages<'a>,
    /// Which bank rows are poisons.
    pub poisoned: &'a [usize],
    /// Held-out images and their true labels.
    pub test: LabeledImages<'a>,
    /// Non-target test images with the trigger pasted.
    pub triggered: &'a ImageBatchSource,
    /// The attack's target class.
    pub target: usize,
    /// Neighbours voting in the kNN classifier.
    pub k: usize,
}

/// kNN accuracy, attack success and neighbour shares of `backbone` on `data`.
pub fn downstream_scores<B: Backend>(
    backbone: &dyn Embed<B>,
    data: &DownstreamData<'_>,
    batch_size: usize,
    device: &B::Device,
) -> DownstreamScores {
    let bank = embed(backbone, data.bank.images, batch_size, device);
    let test = embed(backbone, data.test.images, batch_size, device);
    let triggered = embed(backbone, data.triggered, batch_size, device);
    let test_pred = knn_predict(&bank, data.bank.labels, &test, data.k);
    let clean_acc = share(test_pred.iter().zip(data.test.labels).filter(|(p, t)| p == t).count(), test_pred.len());
    let non_target: Vec<usize> = (0..test_pred.len()).filter(|&i| data.test.labels[i] != data.target).collect();
    let target_fp = share(non_target.iter().filter(|&&i| test_pred[i] == data.target).count(), non_target.len());
    let trig_pred = knn_predict(&bank, data.bank.labels, &triggered, data.k);
    let asr = share(trig_pred.iter().filter(|&&p| p == data.target).count(), trig_pred.len());
    DownstreamScores {
        clean_acc,
        asr,
        target_fp,
        poison_neighbour_share: poison_neighbour_share(&bank, data.poisoned, data.k),
        poison_neighbour_null: class_conditional_null(data.bank.labels, data.poisoned.len(), data.target),
    }
}

fn share(count: usize, total: usize) -> f64 {
    if total == 0 {
        0.0
    } else {
        count as f64 / total as f64
    }
}

/// The share of a poison's classmates that are poisons: `(P − 1) / (n_target − 1)`.
fn class_conditional_null(labels: &[usize], poisons: usize, target: usize) -> Option<f64> {
    let classmates = labels.iter().filter(|&&l| l == target).count();
    (poisons > 0 && classmates > 1).then(|| (poisons - 1) as f64 / (classmates - 1) as f64)
}

/// Labels each bank row poison (1) or not (0) and asks the kNN how often a poison's neighbours are poisons.
fn poison_neighbour_share(bank: &Embeddings, poisoned: &[usize], k: usize) -> Option<f64> {
    if poisoned.is_empty() {
        return None;
    }
    let mut total = 0.0;
    for &p in poisoned {
        let row = bank.row(p);
        let mut sims: Vec<(f32, usize)> = (0..bank.len())
            .filter(|&j| j != p)
            .map(|j| (row.iter().zip(bank.row(j)).map(|(a, b)| a * b).sum(), j))
            .collect();
        let k = k.min(sims.len()).max(1);
        if sims.len() > k {
            sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
            sims.truncate(k);
        }
        let hits = sims.iter().filter(|(_, j)| poisoned.binary_search(j).is_ok()).count();
        total += hits as f64 / sims.len().max(1) as f64;
    }
    Some(total / poisoned.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_null_is_the_poison_share_of_the_target_class() {
        // 801 images of class 0, 81 of them poisons: a poison's 800 classmates hold 80 poisons.
        let labels: Vec<usize> = (0..8010).map(|i| if i < 801 { 0 } else { 1 + i % 9 }).collect();
        assert_eq!(class_conditional_null(&labels, 81, 0), Some(0.1));
        assert_eq!(class_conditional_null(&labels, 0, 0), None);
    }
}
