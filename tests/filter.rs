//! The detector and the `PoisonFilter` adapter on a small poisoned set with a strong trigger.

mod common;

use common::{natives, small_config, source, toy};

use burn::data::dataset::Dataset;
#[cfg(not(feature = "cuda"))]
use poisoncam::backend::{Compute, Train};
#[cfg(feature = "cuda")]
use poisoncam::backend::{Cuda as Compute, CudaTrain as Train};
use poisoncam::data::{ImageDataset, ImageItem};
use poisoncam::detect::masking::activation::ActivationProbe;
use poisoncam::detect::masking::localize::cam::{CamConfig, MaskSearch};
use poisoncam::detect::masking::locate;
use poisoncam::detect::threat::{init_model, warm_start, EncoderConfig, WarmStartConfig};
use poisoncam::detect::{detect, DetectorConfig, Stage};
use poisoncam::sim::eval::box_hit;
use poisoncam::{Image, PoisonFilter, PoisonFilterConfig, PoisonFilterExt};

#[test]
fn masking_locates_a_strong_trigger() {
    let set = toy(false);
    let images = source(&set.dataset);
    let device = Default::default();
    // A short warm start is enough for the encoder to key on the one structure in these images.
    let warm = WarmStartConfig::new().with_epochs(3).with_batch_size(64).with_seed(1);
    let (model, _) = warm_start::<Train>(&images, &warm, None, &device).unwrap();
    let config =
        DetectorConfig::new().with_kmeans(poisoncam::detect::masking::cluster::KMeansConfig::new().with_k(Some(10)));
    let clusters = config
        .kmeans
        .fit::<Compute>(&poisoncam::detect::embed::embed(&model.backbone, &images, 256, &device), &device)
        .unwrap();
    let probe = ActivationProbe::new(&model.backbone, &clusters, [1, 28, 28], 512, &device);
    let poisons: Vec<usize> = set.truth.poisoned.iter().map(|(i, _)| *i).collect();
    for search in [MaskSearch::Grid, MaskSearch::CoarseToFine] {
        let config = DetectorConfig::new().with_cam(CamConfig::new().with_search(search));
        let targets: Vec<usize> = poisons.iter().map(|&i| clusters.assignments[i]).collect();
        let boxes = locate(&model.backbone, &clusters, &probe, &images, &poisons, &targets, &config, &device).unwrap();
        let hits = boxes.iter().zip(&set.truth.poisoned).filter(|((b, _), (_, t))| box_hit(b, t)).count();
        assert!(hits * 10 >= poisons.len() * 7, "{search:?}: {hits} of {} trigger boxes located", poisons.len());
    }
}

#[test]
fn adapter_keeps_exactly_what_was_not_removed() {
    let set = toy(true);
    let device = Default::default();
    let filter = set.dataset.clone().poison_filter::<Train>(&small_config(), &device).unwrap();
    let report = filter.report();
    assert_eq!(report.total, 300);
    assert_eq!(report.kept + report.removed, 300);
    assert!(report.removed > 0, "something was removed, so the kept items are a true subset");
    let removed: Vec<usize> = report.removals.iter().map(|r| r.index).collect();
    let mut all: Vec<usize> = filter.kept_indices().iter().copied().chain(removed.iter().copied()).collect();
    all.sort_unstable();
    assert_eq!(all, (0..300).collect::<Vec<_>>(), "kept ∪ removed is the input, disjointly");
    assert_eq!(filter.len(), filter.kept_indices().len());
    for (position, &inner) in filter.kept_indices().iter().enumerate() {
        assert_eq!(filter.get(position).unwrap().id, set.dataset.get(inner).unwrap().id);
    }
    assert!(filter.get(filter.len()).is_none());
    // The report says whether a classifier decided anything, and how well it validated.
    assert_eq!(report.classifier_validation, filter.detection().classifier_validation);
    // burn's own selection serves the same items.
    let (len, first) = (filter.len(), filter.get(0).unwrap().id);
    let selection = filter.into_selection();
    assert_eq!((selection.len(), selection.get(0).unwrap().id), (len, first));
}

#[test]
fn unreadable_items_are_removed_and_logged() {
    struct WithBroken(ImageDataset);
    impl Dataset<BrokenOr> for WithBroken {
        fn get(&self, index: usize) -> Option<BrokenOr> {
            self.0.get(index).map(|item| BrokenOr { item, broken: index % 50 == 7 })
        }
        fn len(&self) -> usize {
            self.0.len()
        }
    }
    #[derive(Clone)]
    struct BrokenOr {
        item: ImageItem,
        broken: bool,
    }
    impl poisoncam::AsImage for BrokenOr {
        fn as_image(&self) -> poisoncam::Result<Image> {
            if self.broken {
                return Err(poisoncam::Error::Config("simulated unreadable item".into()));
            }
            Ok(self.item.image.clone())
        }
    }
    let set = toy(true);
    let device = Default::default();
    let filter = PoisonFilter::fit::<Train>(WithBroken(set.dataset), &small_config(), &device).unwrap();
    let unreadable: Vec<usize> =
        filter.report().removals.iter().filter(|r| r.stage == Stage::Unreadable).map(|r| r.index).collect();
    assert_eq!(unreadable, vec![7, 57, 107, 157, 207, 257]);
    assert_eq!(filter.report().kept + filter.report().removed, 300);
    // Detection rows skip the unreadable items; suspicions speak in dataset indices.
    assert_eq!(filter.dataset_index(7), Some(8));
    assert_eq!(filter.dataset_index(294), None);
    let suspicions = filter.suspicions();
    for r in filter.report().removals.iter().filter(|r| r.trigger_box.is_some()) {
        let s = suspicions.iter().find(|s| s.index == r.index).expect("every boxed removal is a suspicion");
        assert!(s.removed);
        assert_eq!((s.id.as_str(), Some(s.trigger_box.to_array())), (r.id.as_str(), r.trigger_box));
    }
    assert!(suspicions.windows(2).all(|w| w[0].score >= w[1].score), "most suspicious first");
}

#[test]
fn detection_is_deterministic_under_a_seed() {
    let set = toy(true);
    let images = source(&set.dataset);
    let device = Default::default();
    let model = init_model::<Compute>(&EncoderConfig::new(), 2, &device);
    let config = small_config().detector;
    let natives = natives(&set.dataset);
    let a = detect::<Train>(Some(&model.backbone), &images, &natives, &config, &device).unwrap();
    let b = detect::<Train>(Some(&model.backbone), &images, &natives, &config, &device).unwrap();
    assert_eq!(a.removed, b.removed);
    assert_eq!(a.evidence, b.evidence);
    assert_eq!(a.cluster_scores, b.cluster_scores);
}

#[test]
fn config_round_trips_through_json() {
    let mut config = small_config();
    config.detector.cam.search = MaskSearch::CoarseToFine;
    config.working_size = Some([32, 32]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("filter.json");
    config.write(&path).unwrap();
    let loaded = PoisonFilterConfig::read(&path).unwrap();
    assert_eq!(loaded, config);
    std::fs::write(&path, "{ not json").unwrap();
    assert!(matches!(PoisonFilterConfig::read(&path), Err(poisoncam::Error::Config(_))));
}

#[test]
fn empty_dataset_is_an_error() {
    let device = Default::default();
    let empty = ImageDataset::new(vec![]);
    assert!(matches!(PoisonFilter::fit::<Train>(empty, &small_config(), &device), Err(poisoncam::Error::NoInput(_))));
}

/// A user's own encoder: one convolution and a global average pool, not this crate's `Backbone`.
#[derive(burn::module::Module, Debug)]
struct OwnEncoder<B: burn::tensor::backend::Backend> {
    conv: burn::nn::conv::Conv2d<B>,
}

impl<B: burn::tensor::backend::Backend> poisoncam::detect::embed::Embed<B> for OwnEncoder<B> {
    fn features(&self, images: burn::tensor::Tensor<B, 4>) -> burn::tensor::Tensor<B, 2> {
        let map = burn::tensor::activation::relu(self.conv.forward(images));
        let [n, f, _, _] = map.dims();
        map.mean_dim(3).mean_dim(2).reshape([n, f])
    }
}

/// Masking alone, so that nothing but the user's encoder can decide: its embeddings are what is
/// clustered, and every removal comes from a masking stage.
#[test]
fn fit_with_encoder_takes_any_model_that_embeds() {
    let set = toy(false);
    let device = Default::default();
    let encoder = poisoncam::detect::threat::init_model_with::<Compute, _>(4, &device, |d| OwnEncoder {
        conv: burn::nn::conv::Conv2dConfig::new([1, 16], [3, 3]).init(d),
    });
    let n = set.dataset.len();
    let mut config = small_config();
    config.detector.signals.recurrence = false;

    let filter = PoisonFilter::fit_with_encoder::<Train>(set.dataset.clone(), &encoder, &config, &device).unwrap();

    let report = filter.report();
    assert!(report.warm_start.is_none(), "the user's encoder is used as it is");
    let embed = report.cost.iter().find(|c| c.stage == "embed").expect("masking embedded through the encoder");
    assert!(embed.forwards_per_image >= 1.0);
    let clusters = filter.detection().clusters.as_ref().expect("the encoder's embeddings were clustered");
    assert_eq!(clusters.dim, 16, "one feature per output channel of the user's convolution");
    assert_eq!(clusters.assignments.len(), n);
    assert!(report.removals.iter().all(|r| r.stage != Stage::Recurrence), "recurrence was off");
    assert_eq!(filter.len() + report.removals.len(), n);

    // Grad-CAM needs a feature map, which this encoder does not offer: a config error, not a panic.
    let mut config = small_config();
    config.detector.localizer = poisoncam::detect::Localizer::PatchSearch;
    assert!(matches!(
        PoisonFilter::fit_with_encoder::<Train>(set.dataset, &encoder, &config, &device),
        Err(poisoncam::Error::Config(_))
    ));
}
