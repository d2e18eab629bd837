//! k-nearest-neighbour classification on unit-length embeddings (cosine similarity).

use crate::detect::embed::Embeddings;

/// Predicts a label for every query: the label with the largest summed similarity among the
/// `k` most similar bank rows. Ties go to the smaller label.
pub fn knn_predict(bank: &Embeddings, bank_labels: &[usize], queries: &Embeddings, k: usize) -> Vec<usize> {
    let classes = bank_labels.iter().max().map_or(0, |m| m + 1);
    let k = k.clamp(1, bank.len().max(1));
    let mut sims: Vec<(f32, usize)> = Vec::with_capacity(bank.len());
    (0..queries.len())
        .map(|q| {
            let query = queries.row(q);
            sims.clear();
            sims.extend((0..bank.len()).map(|b| (dot(query, bank.row(b)), b)));
            if sims.len() > k {
                sims.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                sims.truncate(k);
            }
            let mut votes = vec![0f32; classes.max(1)];
            for &(s, b) in &sims {
                votes[bank_labels[b]] += s.max(0.0) + 1e-6;
            }
            votes.iter().enumerate().fold((0, f32::MIN), |best, (c, &v)| if v > best.1 { (c, v) } else { best }).0
        })
        .collect()
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unit(angles: &[f32]) -> Embeddings {
        Embeddings { data: angles.iter().flat_map(|a| [a.cos(), a.sin()]).collect(), dim: 2 }
    }

    #[test]
    fn nearest_neighbours_vote() {
        let bank = unit(&[0.0, 0.1, 0.2, 3.0, 3.1]);
        let labels = [0, 0, 0, 1, 1];
        let queries = unit(&[0.05, 3.05]);
        assert_eq!(knn_predict(&bank, &labels, &queries, 2), vec![0, 1]);
        // With k = 5 the three class-0 rows outvote the nearer class-1 rows only when similar enough.
        assert_eq!(knn_predict(&bank, &labels, &unit(&[3.05]), 5), vec![1]);
    }
}
