//! Spherical k-means over the embeddings (docs/design.md §3.2): k-means++ seeding, then Lloyd iterations
//! whose nearest-centroid search is one matmul on the device.
//!
//! Points and centroids live on the unit sphere, so the nearest centroid by Euclidean distance is
//! the one with the highest cosine: the geometry the activation probe and the streaming guard use
//! to say which cluster an image belongs to. (Plain k-means assigned by distance to non-unit means,
//! and could disagree with the probe about an image's cluster.)

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::detect::embed::Embeddings;
use crate::detect::threat::l2_normalize;
use crate::error::{Error, Result};

/// k-means settings.
#[derive(Config, Debug, PartialEq)]
pub struct KMeansConfig {
    /// Number of clusters; `None` picks clamp(N / 100, 10, 1000), docs/design.md §3.2.
    #[config(default = "None")]
    pub k: Option<usize>,
    /// Lloyd iterations at most. Default 50.
    #[config(default = 50)]
    pub max_iters: usize,
    /// Stop when the inertia improves by less than this share. Default 1e-4.
    #[config(default = 1e-4)]
    pub tolerance: f64,
    /// Rows per matmul on the device. Default 8192.
    #[config(default = 8192)]
    pub chunk: usize,
    /// Seeds k-means++. Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl KMeansConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        if let Some(k) = self.k {
            crate::check::at_least("detector.kmeans.k", k, 1, "at least 1 (or unset to choose from N)")?;
        }
        crate::check::at_least("detector.kmeans.max_iters", self.max_iters, 1, "at least 1")?;
        crate::check::non_negative("detector.kmeans.tolerance", self.tolerance)?;
        crate::check::at_least("detector.kmeans.chunk", self.chunk, 1, "at least 1")
    }
}

/// A fitted clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct Clusters {
    /// `k × dim`, row-major: the mean direction of each cluster's members (unit length).
    pub centroids: Vec<f32>,
    /// Length of each centroid.
    pub dim: usize,
    /// Cluster of each embedding.
    pub assignments: Vec<usize>,
    /// Sum of squared distances of the unit points to their centroids (2 − 2·cosine each).
    pub inertia: f64,
    /// Lloyd iterations run.
    pub iterations: usize,
}

impl Clusters {
    /// The number of clusters.
    pub fn k(&self) -> usize {
        self.centroids.len() / self.dim.max(1)
    }

    /// The unit centroid of `cluster`.
    pub fn centroid(&self, cluster: usize) -> &[f32] {
        &self.centroids[cluster * self.dim..(cluster + 1) * self.dim]
    }

    /// Centroids scaled to unit length: the activation of docs/design.md §3.3 is a cosine. (Fitted
    /// centroids already are; this also serves clusterings built by hand.)
    pub fn unit_centroids(&self) -> Vec<f32> {
        let mut out = self.centroids.clone();
        scale_rows_to_unit(&mut out, self.dim);
        out
    }

    /// The unit centroids as a `k × dim` tensor on `device`.
    pub fn centroid_tensor<B: Backend>(&self, device: &B::Device) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(self.unit_centroids(), [self.k(), self.dim]), device)
    }

    /// The cluster of each of `points`: its nearest centroid, computed as the fit's last
    /// assignment step computes it (in chunks of `chunk`), so that a point of the fit lands where
    /// the fit put it.
    pub fn assign<B: Backend>(&self, points: &Embeddings, chunk: usize, device: &B::Device) -> Vec<usize> {
        if points.is_empty() || self.k() == 0 {
            return Vec::new();
        }
        let chunks = upload::<B>(&unit_rows(points), chunk, device);
        nearest::<B>(&chunks, &self.centroids, self.dim, device).0
    }

    /// Member indices of every cluster.
    pub fn members(&self) -> Vec<Vec<usize>> {
        let mut members = vec![Vec::new(); self.k()];
        for (i, &c) in self.assignments.iter().enumerate() {
            members[c].push(i);
        }
        members
    }
}

/// Cosine of every feature row to every row of `centroids` (unit, from
/// [`Clusters::centroid_tensor`]), `N × k`: its argmax along dimension 1 is a point's cluster,
/// the same one spherical k-means assigns.
pub fn cosines<B: Backend>(features: Tensor<B, 2>, centroids: Tensor<B, 2>) -> Tensor<B, 2> {
    l2_normalize(features).matmul(centroids.transpose())
}

impl KMeansConfig {
    /// The cluster count used for `n` points.
    pub fn k_for(&self, n: usize) -> usize {
        self.k.unwrap_or_else(|| (n / 100).clamp(10, 1000)).min(n)
    }

    /// Fits spherical k-means to the directions of `points` (each row is scaled to unit length).
    pub fn fit<B: Backend>(&self, points: &Embeddings, device: &B::Device) -> Result<Clusters> {
        let points = &unit_rows(points);
        let n = points.len();
        let k = self.k_for(n);
        if n == 0 || k == 0 {
            return Err(Error::NoInput("k-means"));
        }
        let dim = points.dim;
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut centroids = plus_plus_init(points, k, &mut rng);
        // Fewer distinct directions than k give fewer clusters (see `plus_plus_init`).
        let k = centroids.len() / dim;
        let chunks = upload::<B>(points, self.chunk, device);
        let mut previous = f64::INFINITY;
        let mut iterations = 0;
        for _ in 0..self.max_iters.max(1) {
            iterations += 1;
            let (assignments, inertia) = nearest::<B>(&chunks, &centroids, dim, device);
            centroids = means(points, &assignments, &centroids, k);
            if previous - inertia <= self.tolerance * previous.abs().max(1e-12) {
                break;
            }
            previous = inertia;
        }
        // The last update moved the centroids; assign once more so the two agree.
        let (assignments, inertia) = nearest::<B>(&chunks, &centroids, dim, device);
        Ok(Clusters { centroids, dim, assignments, inertia, iterations })
    }
}

fn squared_distance(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Squared distance below which two unit points are one direction.
const SAME_POINT: f32 = 1e-9;

/// k-means++: each next seed is drawn with probability proportional to its squared distance from
/// the seeds so far. When every point already coincides with a seed, it stops early: seeding the
/// same direction twice would split identical points between twin clusters, and a paste test
/// between twins measures float noise, not a trigger (1,000 copies of one image lost 26% to it).
fn plus_plus_init(points: &Embeddings, k: usize, rng: &mut StdRng) -> Vec<f32> {
    let n = points.len();
    let mut centroids = Vec::with_capacity(k * points.dim);
    centroids.extend_from_slice(points.row(rng.random_range(0..n)));
    let mut closest: Vec<f32> = (0..n).map(|i| squared_distance(points.row(i), &centroids[..points.dim])).collect();
    while centroids.len() < k * points.dim {
        if closest.iter().all(|&d| d < SAME_POINT) {
            break;
        }
        let total: f64 = closest.iter().map(|&d| d as f64).sum();
        let mut target = rng.random::<f64>() * total;
        let mut chosen = n - 1;
        for (i, &d) in closest.iter().enumerate() {
            target -= d as f64;
            if target < 0.0 {
                chosen = i;
                break;
            }
        }
        let seed = points.row(chosen).to_vec();
        for (i, best) in closest.iter_mut().enumerate() {
            *best = best.min(squared_distance(points.row(i), &seed));
        }
        centroids.extend_from_slice(&seed);
    }
    centroids
}

/// The points on the device, in chunks of at most `chunk` rows, with their squared norms: uploaded
/// once per fit rather than at every Lloyd iteration.
fn upload<B: Backend>(points: &Embeddings, chunk: usize, device: &B::Device) -> Vec<(Tensor<B, 2>, Tensor<B, 2>)> {
    let dim = points.dim;
    (0..points.len())
        .step_by(chunk.max(1))
        .map(|start| {
            let end = (start + chunk.max(1)).min(points.len());
            let x = Tensor::<B, 2>::from_data(
                TensorData::new(points.data[start * dim..end * dim].to_vec(), [end - start, dim]),
                device,
            );
            let x_sq = x.clone().powi_scalar(2).sum_dim(1);
            (x, x_sq)
        })
        .collect()
}

/// Nearest centroid of every point, by ‖x‖² − 2x·μ + ‖μ‖² with the dot products from one matmul.
fn nearest<B: Backend>(
    chunks: &[(Tensor<B, 2>, Tensor<B, 2>)],
    centroids: &[f32],
    dim: usize,
    device: &B::Device,
) -> (Vec<usize>, f64) {
    let k = centroids.len() / dim;
    let mu = Tensor::<B, 2>::from_data(TensorData::new(centroids.to_vec(), [k, dim]), device);
    let mu_sq = mu.clone().powi_scalar(2).sum_dim(1).reshape([1, k]);
    let mu_t = mu.transpose();
    let mut assignments = Vec::new();
    let mut inertia = 0.0f64;
    for (x, x_sq) in chunks {
        let distances = (x_sq.clone() - x.clone().matmul(mu_t.clone()) * 2.0 + mu_sq.clone()).clamp_min(0.0);
        let (best, index) = distances.min_dim_with_indices(1);
        inertia += best.into_data().iter::<f32>().map(|d| d as f64).sum::<f64>();
        assignments.extend(index.into_data().iter::<i64>().map(|i| i as usize));
    }
    (assignments, inertia)
}

/// Every row scaled to unit length (a zero row stays zero).
fn unit_rows(points: &Embeddings) -> Embeddings {
    let mut data = points.data.clone();
    scale_rows_to_unit(&mut data, points.dim);
    Embeddings { data, dim: points.dim }
}

/// Scales each `dim`-long row of `data` to unit length in place; a zero row stays zero.
fn scale_rows_to_unit(data: &mut [f32], dim: usize) {
    for row in data.chunks_mut(dim.max(1)) {
        let norm = row.iter().map(|v| v * v).sum::<f32>().sqrt();
        if norm > 0.0 {
            row.iter_mut().for_each(|v| *v /= norm);
        }
    }
}

/// Cluster mean directions (unit length); a cluster left empty keeps its old centroid.
fn means(points: &Embeddings, assignments: &[usize], old: &[f32], k: usize) -> Vec<f32> {
    let dim = points.dim;
    let mut sums = vec![0.0f64; k * dim];
    let mut counts = vec![0usize; k];
    for (i, &c) in assignments.iter().enumerate() {
        counts[c] += 1;
        for (s, &v) in sums[c * dim..(c + 1) * dim].iter_mut().zip(points.row(i)) {
            *s += v as f64;
        }
    }
    let mut out = old.to_vec();
    for c in 0..k {
        let sum = &sums[c * dim..(c + 1) * dim];
        let norm = sum.iter().map(|v| v * v).sum::<f64>().sqrt();
        if counts[c] > 0 && norm > 0.0 {
            for d in 0..dim {
                out[c * dim + d] = (sum[d] / norm) as f32;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Compute;

    /// Three directions 120° apart, each point at a random length between 0.5 and 3.
    fn blobs(seed: u64) -> Embeddings {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut data = Vec::new();
        for i in 0..300 {
            let angle = (i % 3) as f32 * 2.0 * std::f32::consts::PI / 3.0 + (rng.random::<f32>() - 0.5) * 0.3;
            let length = 0.5 + rng.random::<f32>() * 2.5;
            data.push(length * angle.cos());
            data.push(length * angle.sin());
        }
        Embeddings { data, dim: 2 }
    }

    #[test]
    fn default_k_follows_the_design_rule() {
        let config = KMeansConfig::new();
        assert_eq!(config.k_for(500), 10);
        assert_eq!(config.k_for(8000), 80);
        assert_eq!(config.k_for(500_000), 1000);
        assert_eq!(config.k_for(4), 4);
    }

    #[test]
    fn copies_of_few_points_get_one_cluster_each_not_twins() {
        let config = KMeansConfig::new().with_k(Some(10));
        let same = Embeddings { data: [0.6f32, 0.8].repeat(50), dim: 2 };
        let fitted = config.fit::<Compute>(&same, &Default::default()).unwrap();
        assert_eq!(fitted.k(), 1);
        assert!(fitted.assignments.iter().all(|&a| a == 0));
        // Two directions, each at several lengths: two clusters, whatever k asks for.
        let two = Embeddings { data: [1.0f32, 0.0, 0.0, 2.0, 3.0, 0.0, 0.0, 0.5].repeat(20), dim: 2 };
        let fitted = config.fit::<Compute>(&two, &Default::default()).unwrap();
        assert_eq!(fitted.k(), 2);
        assert_ne!(fitted.assignments[0], fitted.assignments[1]);
        assert_eq!(fitted.assignments[0], fitted.assignments[2]);
    }

    #[test]
    fn separates_blobs_and_is_deterministic() {
        let points = blobs(1);
        let config = KMeansConfig::new().with_k(Some(3)).with_seed(3);
        let a = config.fit::<Compute>(&points, &Default::default()).unwrap();
        let b = config.fit::<Compute>(&points, &Default::default()).unwrap();
        assert_eq!(a, b);
        for i in 0..300 {
            assert_eq!(a.assignments[i], a.assignments[i % 3], "point {i}");
        }
        assert_eq!(a.members().iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 100, 100]);
    }

    #[test]
    fn every_point_is_in_the_cluster_of_its_highest_cosine() {
        // The probe and the guard assign by cosine to unit centroids; k-means must agree with them.
        let points = blobs(2);
        let clusters =
            KMeansConfig::new().with_k(Some(5)).with_seed(1).fit::<Compute>(&points, &Default::default()).unwrap();
        let unit = clusters.unit_centroids();
        assert!(
            unit.iter().zip(&clusters.centroids).all(|(a, b)| (a - b).abs() < 1e-5),
            "fitted centroids are unit length"
        );
        for i in 0..points.len() {
            let cosine = |c: usize| -> f32 {
                let x = points.row(i);
                let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
                x.iter().zip(&unit[c * 2..c * 2 + 2]).map(|(a, b)| a * b).sum::<f32>() / norm
            };
            let best = (0..clusters.k()).max_by(|&a, &b| cosine(a).total_cmp(&cosine(b))).unwrap();
            assert!(cosine(clusters.assignments[i]) >= cosine(best) - 1e-6, "point {i}");
        }
    }

    #[test]
    fn the_points_of_a_fit_are_assigned_where_the_fit_put_them() {
        let device = Default::default();
        // No structure and lengths from 0.1 to 5: many points lie near a boundary, and a rule
        // that ignored the scaling to unit length would put some elsewhere.
        let mut rng = StdRng::seed_from_u64(4);
        let dim = 8;
        let mut data = Vec::new();
        for _ in 0..400 {
            let length = 0.1 + rng.random::<f32>() * 4.9;
            data.extend((0..dim).map(|_| (rng.random::<f32>() - 0.5) * length));
        }
        let points = Embeddings { data, dim };
        let clusters = KMeansConfig::new().with_k(Some(12)).fit::<Compute>(&points, &device).unwrap();
        let config = KMeansConfig::new();
        assert_eq!(clusters.assign::<Compute>(&points, config.chunk, &device), clusters.assignments);
        // In chunks of another size too: a guard meets the samples a few at a time.
        assert_eq!(clusters.assign::<Compute>(&points, 7, &device), clusters.assignments);
    }

    #[test]
    fn empty_input_is_an_error() {
        let points = Embeddings { data: vec![], dim: 4 };
        assert!(KMeansConfig::new().fit::<Compute>(&points, &Default::default()).is_err());
    }
}
