//! The paste test (docs/design.md §3.4): paste a located patch into reference images and count how many
//! it drags into one cluster. A trigger drags many; a patch of clean content few.
//!
//! The cluster counted is the one the patch drags most references into, not always the
//! candidate's own: poisons split over several clusters, and a trigger on a poison in a small
//! side cluster drags references into the backdoor's main cluster. Counted only toward its own,
//! such a poison scored like clean content.

use burn::config::Config;
use burn::tensor::backend::Backend;
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::detect::masking::activation::ActivationProbe;
use crate::error::Result;
use crate::image::ImageBatchSource;
use crate::image::PixelBox;

/// Paste-test settings.
#[derive(Config, Debug, PartialEq)]
pub struct PasteConfig {
    /// Reference images each patch is pasted into. Default 128 (docs/design.md §3.4).
    #[config(default = 128)]
    pub references: usize,
    /// Members of every cluster that are masked and paste-tested to score the cluster (the
    /// cluster-level pruning of PatchSearch). Default 4.
    #[config(default = 4)]
    pub probes_per_cluster: usize,
    /// Share of clusters, by cluster score, whose members are searched further. Default 0.1.
    #[config(default = 0.1)]
    pub kept_cluster_share: f64,
    /// A kept cluster's score must exceed the median cluster score by this many scaled median
    /// absolute deviations: on clean data no cluster stands out, and nothing is removed. Default 4.
    #[config(default = 4.0)]
    pub outlier_mads: f64,
    /// And it must move at least this share of the references; so must every patch the paste
    /// test removes. Default 0.05.
    #[config(default = 0.05)]
    pub min_moved: f64,
    /// A kept cluster's best probe must move at least this share of the references, however far
    /// the other clusters' scores lie below it. Default 0.15: by chance, the best probe of a
    /// cluster without poisons moved up to 0.10 in the twelve 28 px runs of 2026-12-05 (under
    /// 0.14 on 2026-11-27), a cluster whose threat model had learnt the backdoor 0.20 to 0.59
    /// (docs/detector.md, 2026-12-05); when the clean scores lay close together the outlier rule
    /// alone kept clean clusters, and the demo removed 45 clean images.
    #[config(default = 0.15)]
    pub min_cluster_moved: f64,
    /// Score a patch by the cluster it drags the largest share of references into (true), or
    /// only by its own cluster (false: PatchSearch's rule, which the baseline keeps). Default true:
    /// with its own cluster alone, poisons outside the backdoor's main cluster scored like clean
    /// content, and clean clusters passed the outlier threshold (docs/detector.md, 2026-11-27).
    #[config(default = true)]
    pub into_any_cluster: bool,
    /// In each kept cluster, this many members with the largest masking scores are paste-tested.
    /// Default 256: a backdoored threat model gathers all the poisons in the kept cluster (80 of
    /// 80 under `eval --implant`), and 32 capped the recall at 0.4.
    #[config(default = 256)]
    pub candidates_per_cluster: usize,
    /// Seeds the choice of reference images. Default 0.
    #[config(default = 0)]
    pub seed: u64,
}

impl PasteConfig {
    /// Rejects settings that cannot work.
    pub fn check(&self) -> Result<()> {
        use crate::check::{at_least, non_negative, share};
        at_least("detector.paste.references", self.references, 1, "at least 1")?;
        at_least("detector.paste.probes_per_cluster", self.probes_per_cluster, 1, "at least 1")?;
        share("detector.paste.kept_cluster_share", self.kept_cluster_share)?;
        non_negative("detector.paste.outlier_mads", self.outlier_mads)?;
        share("detector.paste.min_moved", self.min_moved)?;
        share("detector.paste.min_cluster_moved", self.min_cluster_moved)?;
        at_least("detector.paste.candidates_per_cluster", self.candidates_per_cluster, 1, "at least 1")
    }
}

/// The paste test's verdict on one patch.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasteScore {
    /// Share of the references outside cluster `into` that the patch moved into it.
    pub moved: f32,
    /// The cluster the patch moved the largest share of references into; the candidate's own
    /// cluster when none beats it.
    #[serde(default)]
    pub into: usize,
    /// Mean cosine of the patched references to the cluster's centroid.
    pub pull: f32,
}

impl PasteScore {
    /// Ranks by `moved`, then `pull`.
    pub fn rank_key(&self) -> f32 {
        self.moved + 1e-3 * self.pull
    }
}

/// Reference images and their clusters before any paste, shared by every candidate so that
/// scores compare. The test holds the references' pixels, so that it scores a new sample (in the
/// guard) exactly as it scored the samples of the fit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PasteTest {
    /// `[C, H, W]` of every reference.
    pub shape: [usize; 3],
    /// The references' pixels, one `C×H×W` image after another (saved beside the guard's records,
    /// not in its JSON).
    #[serde(skip)]
    pub pixels: Vec<f32>,
    /// Each reference's [`crate::Image::fingerprint`]: a candidate is never pasted into itself.
    pub fingerprints: Vec<u64>,
    /// Each reference's nearest cluster before any paste.
    pub clusters: Vec<usize>,
    /// See [`PasteConfig::into_any_cluster`].
    pub into_any_cluster: bool,
    /// See [`PasteConfig::seed`].
    pub seed: u64,
}

impl PasteTest {
    /// Draws the references from `images` and measures their own clusters.
    pub fn new<B: Backend>(config: &PasteConfig, probe: &ActivationProbe<B>, images: &ImageBatchSource) -> Self {
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x9a57e);
        let count = config.references.clamp(1, images.len());
        let references: Vec<usize> = sample(&mut rng, images.len(), count).into_iter().collect();
        let mut pixels = Vec::new();
        for &r in &references {
            pixels.extend_from_slice(images.pixels(r));
        }
        let clusters = probe.measure(&pixels, &vec![0; references.len()]).into_iter().map(|a| a.nearest).collect();
        let [_, c, h, w] = images.shape();
        Self {
            shape: [c, h, w],
            pixels,
            fingerprints: references.iter().map(|&r| images.row_fingerprint(r)).collect(),
            clusters,
            into_any_cluster: config.into_any_cluster,
            seed: config.seed,
        }
    }

    /// This test without its reference pixels, which a saved guard keeps in their own file.
    pub fn without_pixels(&self) -> Self {
        let Self { shape, pixels: _, fingerprints, clusters, into_any_cluster, seed } = self;
        Self {
            shape: *shape,
            pixels: Vec::new(),
            fingerprints: fingerprints.clone(),
            clusters: clusters.clone(),
            into_any_cluster: *into_any_cluster,
            seed: *seed,
        }
    }

    /// The number of references.
    pub fn len(&self) -> usize {
        self.clusters.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.clusters.is_empty()
    }

    /// Pastes the `patch` of image `source` into every reference outside `cluster` at random
    /// positions seeded by the image's content, and measures them toward `cluster`.
    pub fn score<B: Backend>(
        &self,
        probe: &ActivationProbe<B>,
        images: &ImageBatchSource,
        source: usize,
        patch: &PixelBox,
        cluster: usize,
    ) -> PasteScore {
        self.score_many(probe, images, &[(source, *patch, cluster)])[0]
    }

    /// [`PasteTest::score`] for many `(source, patch, cluster)` candidates, their pasted
    /// references measured in shared batches: candidates with few references outside their
    /// cluster no longer pay for a forward pass of their own.
    pub fn score_many<B: Backend>(
        &self,
        probe: &ActivationProbe<B>,
        images: &ImageBatchSource,
        candidates: &[(usize, PixelBox, usize)],
    ) -> Vec<PasteScore> {
        let [c, h, w] = self.shape;
        let size = c * h * w;
        let mut pixels = Vec::new();
        let mut toward = Vec::new();
        let mut origins = Vec::new();
        let mut counts = Vec::with_capacity(candidates.len());
        for &(source, patch, cluster) in candidates {
            // Seeded by content, not row: a sample gets the same positions in the fit and in a
            // guard that meets it again.
            let print = images.row_fingerprint(source);
            let mut rng = StdRng::seed_from_u64(self.seed ^ print.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let donor = images.pixels(source);
            let mut count = 0;
            for (r, (&rc, &rp)) in self.clusters.iter().zip(&self.fingerprints).enumerate() {
                if rc == cluster || rp == print {
                    continue;
                }
                let start = pixels.len();
                pixels.extend_from_slice(&self.pixels[r * size..(r + 1) * size]);
                let x = rng.random_range(0..=w - patch.w);
                let y = rng.random_range(0..=h - patch.h);
                paste_region(&mut pixels[start..], donor, [c, h, w], &patch, x, y);
                origins.push(rc);
                count += 1;
            }
            toward.extend(std::iter::repeat_n(cluster, count));
            counts.push(count);
        }
        let mut cursor = probe.measure(&pixels, &toward).into_iter().zip(origins);
        candidates
            .iter()
            .zip(counts)
            .map(|(&(_, _, cluster), count)| {
                let mine: Vec<_> = cursor.by_ref().take(count).collect();
                if count == 0 {
                    return PasteScore { moved: 0.0, into: cluster, pull: 0.0 };
                }
                let landed: Vec<(usize, usize)> = mine.iter().map(|(a, origin)| (*origin, a.nearest)).collect();
                let (into, moved) = if self.into_any_cluster {
                    strongest_pull(cluster, &landed)
                } else {
                    (cluster, pull_share(cluster, &landed))
                };
                let pull = mine.iter().map(|(a, _)| a.toward).sum::<f32>() / count as f32;
                PasteScore { moved, into, pull }
            })
            .collect()
    }
}

/// The cluster that the most pasted references moved into, and the share they make of the
/// references that did not start there; `landed` holds each pasted reference's (cluster before,
/// cluster after). `own` wins ties, then the lower index, so the result does not depend on order.
fn strongest_pull(own: usize, landed: &[(usize, usize)]) -> (usize, f32) {
    let mut reached: Vec<usize> = landed.iter().filter(|(before, after)| before != after).map(|&(_, a)| a).collect();
    reached.sort_unstable();
    reached.dedup();
    let mut best = (own, pull_share(own, landed));
    for cluster in reached {
        let share = pull_share(cluster, landed);
        if share > best.1 {
            best = (cluster, share);
        }
    }
    best
}

/// The share of the pasted references that did not start in `cluster` and ended there.
fn pull_share(cluster: usize, landed: &[(usize, usize)]) -> f32 {
    let eligible = landed.iter().filter(|&&(before, _)| before != cluster).count();
    let moved = landed.iter().filter(|&&(before, after)| before != cluster && after == cluster).count();
    if eligible == 0 {
        0.0
    } else {
        moved as f32 / eligible as f32
    }
}

/// Copies `region` of `donor` into `target` (both `C×H×W`) with its top-left corner at (x, y).
pub fn paste_region(target: &mut [f32], donor: &[f32], shape: [usize; 3], region: &PixelBox, x: usize, y: usize) {
    let [c, h, w] = shape;
    for ch in 0..c {
        for dy in 0..region.h.min(h - y) {
            let from = ch * h * w + (region.y + dy) * w + region.x;
            let to = ch * h * w + (y + dy) * w + x;
            let len = region.w.min(w - x);
            target[to..to + len].copy_from_slice(&donor[from..from + len]);
        }
    }
}

/// Median and scaled median absolute deviation (×1.4826, a standard deviation for normal data).
pub fn median_mad(values: &[f32]) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    let median = |v: &mut Vec<f32>| {
        v.sort_by(f32::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let mut v = values.to_vec();
    let m = median(&mut v);
    let mut dev: Vec<f32> = values.iter().map(|x| (x - m).abs()).collect();
    (m, 1.4826 * median(&mut dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_scored_together_score_as_alone() {
        use crate::backend::Compute;
        use crate::detect::embed::embed;
        use crate::detect::masking::cluster::KMeansConfig;
        use crate::detect::threat::{init_model, EncoderConfig};
        let device = Default::default();
        let model = init_model::<Compute>(&EncoderConfig::new(), 1, &device);
        let mut rng = StdRng::seed_from_u64(2);
        let pixels: Vec<f32> = (0..40 * 12 * 12).map(|_| rng.random::<f32>()).collect();
        let images = ImageBatchSource::from_raw(pixels, [40, 1, 12, 12]).unwrap();
        let clusters = KMeansConfig::new()
            .with_k(Some(3))
            .fit::<Compute>(&embed(&model.backbone, &images, 16, &device), &device)
            .unwrap();
        // A batch of 7 puts the batch edges elsewhere together than alone.
        let probe = ActivationProbe::new(&model.backbone, &clusters, [1, 12, 12], 7, &device);
        let test = PasteTest::new(&PasteConfig::new().with_references(10), &probe, &images);
        let b = |x, y, side| PixelBox { x, y, w: side, h: side };
        let candidates = [(0, b(1, 2, 3), 0), (5, b(6, 0, 4), 1), (9, b(0, 0, 12), 2), (9, b(3, 3, 3), 0)];
        let together = test.score_many(&probe, &images, &candidates);
        let alone: Vec<PasteScore> = candidates
            .iter()
            .map(|&(source, patch, cluster)| test.score(&probe, &images, source, &patch, cluster))
            .collect();
        assert_eq!(together, alone);
    }

    #[test]
    fn paste_copies_the_region() {
        let donor: Vec<f32> = (0..16).map(|v| v as f32).collect();
        let mut target = vec![-1.0f32; 16];
        paste_region(&mut target, &donor, [1, 4, 4], &PixelBox { x: 2, y: 1, w: 2, h: 2 }, 0, 2);
        assert_eq!(&target[8..10], &[6.0, 7.0]);
        assert_eq!(&target[12..14], &[10.0, 11.0]);
        assert_eq!(target.iter().filter(|&&v| v == -1.0).count(), 12);
    }

    #[test]
    fn median_mad_of_known_values() {
        let (m, mad) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]);
        assert_eq!(m, 3.0);
        assert!((mad - 1.4826).abs() < 1e-5);
        assert_eq!(median_mad(&[2.0, 4.0]), (3.0, 1.4826));
    }

    #[test]
    fn rank_key_orders_by_moved_first() {
        let a = PasteScore { moved: 0.5, into: 0, pull: 0.1 };
        let b = PasteScore { moved: 0.4, into: 0, pull: 0.9 };
        assert!(a.rank_key() > b.rank_key());
    }

    #[test]
    fn a_patch_is_scored_by_the_cluster_it_drags_most_references_into() {
        // Own cluster 1; of eight references, four moved into cluster 3 and one into cluster 1.
        let landed = [(0, 3), (0, 3), (2, 3), (2, 3), (0, 1), (0, 0), (2, 2), (3, 3)];
        let (into, moved) = strongest_pull(1, &landed);
        assert_eq!(into, 3);
        // The reference that started in cluster 3 is no evidence either way.
        assert!((moved - 4.0 / 7.0).abs() < 1e-6);
        assert_eq!(strongest_pull(1, &landed[4..7]), (1, 1.0 / 3.0));
    }

    #[test]
    fn the_own_cluster_wins_a_tie_and_staying_put_is_no_pull() {
        let landed = [(0, 1), (0, 2), (0, 0), (3, 3)];
        assert_eq!(strongest_pull(2, &landed), (2, 0.25));
        assert_eq!(strongest_pull(5, &landed), (1, 0.25));
        assert_eq!(strongest_pull(5, &[(0, 0), (4, 4)]), (5, 0.0));
        assert_eq!(strongest_pull(5, &[]), (5, 0.0));
    }
}
