//! Small poisoned sets shared by the integration tests.
#![allow(dead_code)]

use poisoncam::data::{FashionMnist, ImageDataset, ImageItem};
use poisoncam::image::ImageBatchSource;
use poisoncam::sim::attack::{poison, AttackConfig, PoisonedSet, TriggerSource};
use poisoncam::{Image, PoisonFilterConfig};
use rand::RngExt;

/// 300 images, 10% of them poisoned with a large (7×7) trigger. `real` takes Fashion-MNIST
/// images; otherwise the backgrounds are faint smooth gradients, so the trigger is the only
/// structure an untrained encoder can respond to.
pub fn toy(real: bool) -> PoisonedSet {
    let base = if real {
        FashionMnist::embedded().unwrap().slice(0..300)
    } else {
        let items = (0..300)
            .map(|i| {
                let (a, b) = ((i % 7) as f32 / 70.0, (i % 11) as f32 / 110.0);
                let pixels =
                    (0..28 * 28).map(|p| 0.4 + a * (p % 28) as f32 / 28.0 + b * (p / 28) as f32 / 28.0).collect();
                ImageItem {
                    id: format!("toy/{i}.png"),
                    image: Image::new(1, 28, 28, pixels).unwrap(),
                    label: Some(i % 3),
                }
            })
            .collect();
        ImageDataset::new(items)
    };
    let config = AttackConfig {
        rate: 0.1,
        trigger_frac: 0.25,
        trigger: TriggerSource::Procedural { seed: 3 },
        ..AttackConfig::default()
    };
    poison(&base, &config).unwrap()
}

pub fn source(set: &ImageDataset) -> ImageBatchSource {
    let images: Vec<Image> = set.items().iter().map(|i| i.image.clone()).collect();
    ImageBatchSource::with_natural_size(&images).unwrap()
}

pub fn small_config() -> PoisonFilterConfig {
    let mut config = PoisonFilterConfig::new().seeded(5);
    config.warm_start.epochs = 1;
    config.warm_start.batch_size = 64;
    let d = &mut config.detector;
    d.kmeans.k = Some(10);
    d.paste.references = 32;
    d.paste.probes_per_cluster = 2;
    d.paste.candidates_per_cluster = 8;
    d.classifier.examples_per_class = 256;
    d.classifier.epochs = 20;
    d.classifier.learning_rate = 3e-3;
    d.classifier.ensemble = 1;
    // The toy is 10% poisoned, at the default cap: allow a sweep to flag a little more.
    d.classifier.max_flagged_share = 0.25;
    config
}

pub fn natives(set: &ImageDataset) -> Vec<Image> {
    set.items().iter().map(|i| i.image.clone()).collect()
}

/// A colour image of its own size: a smooth two-colour gradient, blotches and pixel noise, so that
/// its windows differ as a photo's do; stored at 8 bits.
pub fn photo_like(rng: &mut rand::rngs::StdRng) -> Image {
    let (h, w) = (rng.random_range(96..200usize), rng.random_range(96..200usize));
    let base: [f32; 6] = std::array::from_fn(|_| rng.random::<f32>() * 0.6 + 0.2);
    let blots: Vec<(f32, f32, f32, [f32; 3])> = (0..6)
        .map(|_| {
            (
                rng.random::<f32>() * w as f32,
                rng.random::<f32>() * h as f32,
                10.0 + rng.random::<f32>() * 30.0,
                std::array::from_fn(|_| rng.random::<f32>() - 0.5),
            )
        })
        .collect();
    let mut pixels = vec![0.0; 3 * h * w];
    for c in 0..3 {
        for y in 0..h {
            for x in 0..w {
                let t = (x + y) as f32 / (h + w) as f32;
                let mut v = base[c] * (1.0 - t) + base[3 + c] * t;
                for (bx, by, r, col) in &blots {
                    let d2 = (x as f32 - bx).powi(2) + (y as f32 - by).powi(2);
                    v += col[c] * 0.4 * (-d2 / (r * r)).exp();
                }
                v += (rng.random::<f32>() - 0.5) * 0.08;
                pixels[(c * h + y) * w + x] = (v.clamp(0.0, 1.0) * 255.0).round() / 255.0;
            }
        }
    }
    Image::new(3, h, w, pixels).unwrap()
}

/// 120 generated photos (`photo_like`, seeded by `seed`), every `every`-th carrying a trigger
/// over the whole image, their clean twin, and a held-back poison and clean image the fit never
/// sees.
pub struct WholeImageFixture {
    pub poisoned: ImageDataset,
    pub clean: ImageDataset,
    pub poisons: Vec<usize>,
    pub held_back: (Image, Image),
}

pub fn whole_image_fixture(seed: u64, every: usize, poison: impl Fn(&Image) -> Image) -> WholeImageFixture {
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    let images: Vec<Image> = (0..122).map(|_| photo_like(&mut rng)).collect();
    let poisons: Vec<usize> = (0..120).step_by(every).collect();
    let item = |i: usize, image: Image| ImageItem { id: format!("f/{i}.png"), image, label: None };
    let clean = ImageDataset::new(images[..120].iter().enumerate().map(|(i, im)| item(i, im.clone())).collect());
    let poisoned = ImageDataset::new(
        images[..120]
            .iter()
            .enumerate()
            .map(|(i, im)| item(i, if poisons.contains(&i) { poison(im) } else { im.clone() }))
            .collect(),
    );
    WholeImageFixture { poisoned, clean, poisons, held_back: (poison(&images[120]), images[121].clone()) }
}

impl WholeImageFixture {
    /// The whole check of a whole-image signal: with `config(true)` the fit removes exactly the
    /// poisons, each by `stage`, boxed whole; the clean twin loses nothing; with `config(false)`
    /// nothing is removed (no other signal did the work); and the guard, saved and loaded, agrees
    /// with the fit on the training samples, removes a poison it never saw and keeps a clean image.
    pub fn assert_removed_by(&self, stage: poisoncam::Stage, config: impl Fn(bool) -> PoisonFilterConfig) {
        use poisoncam::backend::{Compute, Train};
        use poisoncam::{Guard, PoisonFilter};
        let (filter, guard) =
            PoisonFilter::fit_guarded::<Train>(self.poisoned.clone(), &config(true), &Default::default()).unwrap();
        let removed: Vec<(usize, poisoncam::Stage)> =
            filter.report().removals.iter().map(|r| (r.index, r.stage)).collect();
        let expected: Vec<(usize, poisoncam::Stage)> = self.poisons.iter().map(|&i| (i, stage)).collect();
        assert_eq!(removed, expected, "{:?}", filter.report().signals);
        self.assert_whole_image_removals(filter.report());

        let twin = PoisonFilter::fit::<Train>(self.clean.clone(), &config(true), &Default::default()).unwrap();
        assert_eq!(twin.report().removed, 0, "{:?}", twin.report().signals);
        let without = PoisonFilter::fit::<Train>(self.poisoned.clone(), &config(false), &Default::default()).unwrap();
        assert_eq!(without.report().removed, 0, "without {stage:?}, no other signal removes the poisons");

        let dir = tempfile::tempdir().unwrap();
        guard.save(dir.path()).unwrap();
        let loaded = Guard::<Compute>::load(dir.path(), &Default::default()).unwrap();
        let (poison, clean) = &self.held_back;
        for g in [&guard, &loaded] {
            assert_guard_agrees(filter.report(), g, &self.poisoned);
            assert_eq!(g.screen(poison).stage, Some(stage));
            assert!(!g.screen(clean).removed);
        }
    }

    /// Each removal's box is the whole image and its score in (0.5, 1].
    pub fn assert_whole_image_removals(&self, report: &poisoncam::filter::report::FilterReport) {
        use burn::data::dataset::Dataset;
        for r in &report.removals {
            let image = self.poisoned.get(r.index).unwrap().image;
            assert_eq!(r.original_box, Some([0, 0, image.width(), image.height()]), "the box is the whole image");
            assert!(r.score > 0.5 && r.score <= 1.0, "{}", r.score);
        }
    }
}

/// The guard a fit returned judges the fit's own samples as the filter did: the same samples
/// removed (some, so that two empty sets do not pass), each by the same stage, with the same
/// score and boxes.
pub fn assert_guard_agrees<B, I, D>(
    report: &poisoncam::filter::report::FilterReport,
    guard: &poisoncam::filter::guard::Guard<B>,
    dataset: &D,
) where
    B: burn::tensor::backend::Backend,
    I: poisoncam::AsImage,
    D: burn::data::dataset::Dataset<I>,
{
    assert!(!report.removals.is_empty(), "the filter removed something");
    let items: Vec<I> = (0..dataset.len()).map(|i| dataset.get(i).unwrap()).collect();
    let verdicts = guard.screen_batch(&items);
    let by_guard: Vec<usize> = (0..items.len()).filter(|&i| verdicts[i].removed).collect();
    let by_filter: Vec<usize> = report.removals.iter().map(|r| r.index).collect();
    assert_eq!(by_guard, by_filter, "the guard removes exactly the filter's removals");
    for r in &report.removals {
        let v = &verdicts[r.index];
        assert_eq!(v.stage, Some(r.stage), "{}", r.id);
        assert!((v.score - r.score).abs() < 1e-5, "{}: guard {} filter {}", r.id, v.score, r.score);
        assert_eq!(v.trigger_box.map(|b| b.to_array()), r.trigger_box, "{}", r.id);
        assert_eq!(v.original_box.map(|b| b.to_array()), r.original_box, "{}", r.id);
    }
}
