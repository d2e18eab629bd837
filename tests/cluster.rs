//! Cross-checks the device k-means against linfa-clustering's KMeans, the Rust k-means of record.

use linfa::traits::{Fit, Predict};
use linfa::DatasetBase;
use linfa_clustering::KMeans;
use ndarray::Array2;
use poisoncam::backend::Compute;
use poisoncam::detect::embed::Embeddings;
use poisoncam::detect::masking::cluster::KMeansConfig;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Five tight blobs in 8 dimensions, far apart in direction, so that k-means on the unit-length
/// points (linfa) and spherical k-means (ours) must find the same partition.
fn blobs() -> Embeddings {
    let mut rng = StdRng::seed_from_u64(11);
    let dim = 8;
    let centres: Vec<Vec<f32>> = (0..5).map(|_| (0..dim).map(|_| rng.random::<f32>() * 20.0).collect()).collect();
    let mut data = Vec::new();
    for i in 0..500 {
        for d in 0..dim {
            data.push(centres[i % 5][d] + rng.random::<f32>() - 0.5);
        }
    }
    Embeddings { data, dim }
}

#[test]
fn matches_linfa_partition_and_inertia() {
    let points = blobs();
    let ours = KMeansConfig::new().with_k(Some(5)).fit::<Compute>(&points, &Default::default()).unwrap();

    // linfa clusters the same unit-length points.
    let unit: Vec<f64> = points
        .data
        .chunks(points.dim)
        .flat_map(|row| {
            let norm = row.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            row.iter().map(move |&v| v as f64 / norm)
        })
        .collect();
    let array = Array2::from_shape_vec((points.len(), points.dim), unit).unwrap();
    let dataset = DatasetBase::from(array.clone());
    let theirs = KMeans::params(5).max_n_iterations(100).fit(&dataset).unwrap();
    let their_labels = theirs.predict(&array);

    // Same partition up to renaming the clusters: the pairs (ours, theirs) form a bijection.
    let mut map = std::collections::HashMap::new();
    for (i, &a) in ours.assignments.iter().enumerate() {
        let b = their_labels[i];
        assert_eq!(*map.entry(a).or_insert(b), b, "point {i} splits a cluster");
    }
    assert_eq!(map.len(), 5);

    // The same partition has the same mean directions: linfa's means scaled to unit length.
    let their_inertia: f64 = (0..points.len())
        .map(|i| {
            let c = theirs.centroids().row(their_labels[i]);
            let norm = c.iter().map(|v| v * v).sum::<f64>().sqrt();
            array.row(i).iter().zip(c.iter()).map(|(x, y)| (x - y / norm).powi(2)).sum::<f64>()
        })
        .sum();
    let relative = (ours.inertia - their_inertia).abs() / their_inertia;
    assert!(relative < 1e-3, "inertia {} vs linfa {their_inertia}", ours.inertia);
}
