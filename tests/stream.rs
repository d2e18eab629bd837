//! The streaming guard: save → load keeps its verdicts, and concurrent screening equals serial.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use common::{small_config, source, toy};
use poisoncam::backend::{Compute, Train};
use poisoncam::data::{ImageDataset, ImageItem};
use poisoncam::detect::embed::embed;
use poisoncam::detect::masking::classify::{ClassifierData, PoisonClassifier};
use poisoncam::detect::masking::cluster::KMeansConfig;
use poisoncam::detect::recurrence::{RecurrenceConfig, TemplateScreen};
use poisoncam::detect::threat::{warm_start, WarmStartConfig};
use poisoncam::detect::{Decisions, DetectorConfig, MaskingFit, Stage};
use poisoncam::filter::guard::{Guard, GuardModel, MaskingGuard, ScreenExt, Verdict};
use poisoncam::{Image, PoisonFilter};

/// One fit shared by the tests (fitting dominates their run time): the items, the saved guard,
/// and the verdicts the guard gave before it was saved.
struct Fitted {
    items: Vec<ImageItem>,
    /// The same guard without the recurring patches: masking's judgement alone.
    masking_only: Guard<Compute>,
    trigger: Image,
    poisoned: Vec<usize>,
    dir: tempfile::TempDir,
    before_save: Vec<Verdict>,
}

fn fitted() -> &'static Fitted {
    static FITTED: OnceLock<Fitted> = OnceLock::new();
    FITTED.get_or_init(|| {
        // The guard's parts are fitted directly, the classifier on the true trigger boxes: these
        // tests are about screening, saving and threads, not about how well detection finds the
        // patches (tests/filter.rs and `eval` measure that).
        let set = toy(false);
        let device = Default::default();
        let images = source(&set.dataset);
        let warm = WarmStartConfig::new().with_epochs(3).with_batch_size(64).with_seed(1);
        let encoder = warm.encoder_for(&images);
        let (model, _) = warm_start::<Train>(&images, &warm, None, &device).unwrap();
        let clusters = KMeansConfig::new()
            .with_k(Some(10))
            .fit::<Compute>(&embed(&model.backbone, &images, 256, &device), &device)
            .unwrap();
        let clean: Vec<usize> = (0..images.len()).filter(|&i| !set.truth.is_poisoned(i)).collect();
        let data = ClassifierData { images: &images, patches: &set.truth.poisoned, clean_pool: &clean };
        let classifier = small_config().detector.classifier.fit::<Train>(&data, &device).unwrap();
        assert!(classifier.validation_accuracy >= 0.9, "validation {}", classifier.validation_accuracy);
        let natives = common::natives(&set.dataset);
        let found = RecurrenceConfig::new().find(&natives).unwrap();
        let templates =
            TemplateScreen::new(found.patches.iter().map(|p| p.template()).collect(), &RecurrenceConfig::new());
        // The classifier alone decides for masking: no cluster was kept by a paste test.
        let masking = |c: PoisonClassifier<Compute>| {
            let decisions = Decisions { classifier_threshold: Some(c.threshold), ..Decisions::default() };
            let fit = MaskingFit { clusters: clusters.clone(), paste: None, classifier: Some(c), decisions };
            MaskingGuard::new(GuardModel::WarmStarted(model.backbone.clone(), encoder.clone()), fit)
        };
        let masking_only = Guard::new(Vec::new(), DetectorConfig::new(), [1, 28, 28], &device)
            .with_masking(masking(classifier.clone()));
        let guard = Guard::new(vec![Box::new(templates)], DetectorConfig::new(), [1, 28, 28], &device)
            .with_masking(masking(classifier));
        let poisoned = set.truth.poisoned.iter().map(|(i, _)| *i).collect();
        let trigger = set.trigger.clone();
        let items = set.dataset.into_items();
        // One at a time: a backend may round differently at other batch sizes.
        let before_save = items.iter().map(|i| guard.screen(i)).collect();
        let dir = tempfile::tempdir().unwrap();
        guard.save(dir.path()).unwrap();
        Fitted { items, masking_only, trigger, poisoned, dir, before_save }
    })
}

fn load(dir: &Path) -> Guard<Compute> {
    Guard::load(dir, &Default::default()).unwrap()
}

#[test]
fn a_loaded_guard_judges_as_the_saved_one() {
    let f = fitted();
    assert!(f.before_save.iter().any(|v| v.removed), "some poisons are caught");
    assert!(f.before_save.iter().any(|v| !v.removed), "not everything is removed");
    assert!(f.before_save.iter().filter(|v| v.removed).all(|v| v.trigger_box.is_some()));
    // The items are at the working size, so both boxes agree.
    assert!(f.before_save.iter().all(|v| v.original_box == v.trigger_box));
    let loaded = load(f.dir.path());
    let after: Vec<Verdict> = f.items.iter().map(|i| loaded.screen(i)).collect();
    assert_eq!(after, f.before_save);
}

/// Without templates, the poisons can only be removed by the classifier, each with the box
/// masking located: the guard's removing branch on the threat model's side.
#[test]
fn without_templates_the_classifier_removes_the_poisons_and_locates_their_triggers() {
    let f = fitted();
    let verdicts = f.masking_only.screen_batch(&f.items);
    let by_classifier: Vec<usize> =
        (0..verdicts.len()).filter(|&i| verdicts[i].stage == Some(Stage::Classifier)).collect();
    assert!(verdicts.iter().all(|v| v.stage != Some(Stage::Recurrence)), "no template to match");
    let caught = f.poisoned.iter().filter(|i| by_classifier.contains(i)).count();
    assert!(caught * 10 >= f.poisoned.len() * 8, "the classifier caught {caught} of {} poisons", f.poisoned.len());
    let clean_removed = by_classifier.len() - caught;
    assert!(clean_removed * 50 <= f.items.len(), "{clean_removed} clean samples removed");
    for &i in &by_classifier {
        let v = &verdicts[i];
        assert!(v.score > 0.0 && v.cluster.is_some(), "{v:?}");
        assert!(v.trigger_box.is_some(), "a classifier removal has its located box: {v:?}");
    }
}

#[test]
fn concurrent_screening_equals_serial() {
    let f = fitted();
    let guard = load(f.dir.path());
    let parallel: Vec<Verdict> = std::thread::scope(|scope| {
        let handles: Vec<_> = f
            .items
            .chunks(f.items.len().div_ceil(4))
            .map(|chunk| {
                let guard = &guard;
                scope.spawn(move || chunk.iter().map(|i| guard.screen(i)).collect::<Vec<_>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(parallel, f.before_save, "four threads judge as one");
}

#[test]
fn iterator_screening_logs_what_it_drops() {
    let f = fitted();
    let guard = load(f.dir.path());
    let kept: Vec<String> = f.items.iter().cloned().screen(&guard).map(|i| i.id).collect();
    let removed = guard.removals();
    assert_eq!(kept.len() + removed.len(), f.items.len());
    assert_eq!(removed.len(), f.before_save.iter().filter(|v| v.removed).count());
    assert!(removed.iter().all(|(id, _)| !kept.contains(id)));
}

#[test]
fn growing_dataset_only_adds_the_new_samples() {
    let f = fitted();
    let guard = load(f.dir.path());
    let distinct = |items: &[ImageItem]| items.iter().map(|i| i.image.fingerprint()).collect::<HashSet<u64>>().len();
    let kept_first = guard.screen_dataset(&ImageDataset::new(f.items[..200].to_vec())).unwrap();
    // Each image judged is cached once: the first 200 now, and only the new ones after.
    assert_eq!(guard.cached_verdicts(), distinct(&f.items[..200]));
    let kept_all = guard.screen_dataset(&ImageDataset::new(f.items.clone())).unwrap();
    assert_eq!(guard.cached_verdicts(), distinct(&f.items), "the grown set adds only its new images");
    assert!(distinct(&f.items) > distinct(&f.items[..200]), "the set did grow");
    assert_eq!(&kept_all[..kept_first.len()], &kept_first[..]);
    assert!(!guard.removals().is_empty(), "the poisons are removed, so kept and removed are both tested");
    assert_eq!(kept_all.len() + guard.removals().len(), f.items.len());
}

#[test]
fn new_samples_carrying_a_found_patch_are_removed() {
    let f = fitted();
    for &i in &f.poisoned {
        assert_eq!(f.before_save[i].stage, Some(Stage::Recurrence), "poison {i} is caught by its patch");
    }
    let guard = load(f.dir.path());
    let background = || Image::new(1, 28, 28, (0..28 * 28).map(|p| 0.35 + (p % 28) as f32 / 200.0).collect()).unwrap();
    let mut carrier = background();
    carrier.paste(&f.trigger, 2, 19);
    let id = |s: &str| Some(s.to_string());
    let verdict = guard.screen(&ImageItem { id: "new/carrier".into(), image: carrier, label: None });
    assert!(verdict.removed && verdict.stage == Some(Stage::Recurrence), "{verdict:?}");
    // The box is the template's: a part of the trigger, or the trigger with some background.
    let located = verdict.trigger_box.unwrap();
    let side = f.trigger.width();
    assert!(
        poisoncam::sim::eval::box_hit(&located, &poisoncam::PixelBox { x: 2, y: 19, w: side, h: side }),
        "{located:?}"
    );
    // A carrier of twice the working size, the trigger at its own size: the box comes back in
    // the sample's own pixels, and halved in working pixels.
    let mut large = Image::new(1, 56, 56, (0..56 * 56).map(|p| 0.35 + (p % 56) as f32 / 400.0).collect()).unwrap();
    large.paste(&f.trigger, 30, 40);
    let verdict = guard.screen(&ImageItem { id: "new/large".into(), image: large, label: None });
    assert!(verdict.removed && verdict.stage == Some(Stage::Recurrence), "{verdict:?}");
    let (b, o) = (verdict.trigger_box.unwrap(), verdict.original_box.unwrap());
    assert!(
        poisoncam::sim::eval::box_hit(&o, &poisoncam::PixelBox { x: 30, y: 40, w: side, h: side }),
        "{o:?} in 56-px pixels"
    );
    assert_eq!(b, poisoncam::image::scale_box(o, [56, 56], [28, 28]), "{b:?} in 28-px pixels");
    let clean = guard.screen(&ImageItem { id: "new/clean".into(), image: background(), label: None });
    assert_ne!(clean.stage, Some(Stage::Recurrence));
    assert!(guard.removals().iter().any(|(k, _)| Some(k.clone()) == id("new/carrier")));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &to.join(entry.file_name()));
        } else {
            std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

#[test]
fn a_changed_image_under_the_same_id_is_judged_again() {
    let f = fitted();
    let guard = load(f.dir.path());
    let poison = f.poisoned[0];
    let clean = (0..f.items.len()).find(|&i| !f.before_save[i].removed).unwrap();
    let as_same = |i: usize| ImageItem { id: "same/name.png".into(), ..f.items[i].clone() };
    assert!(guard.screen(&as_same(poison)).removed);
    assert_eq!(guard.removals().len(), 1);
    assert!(!guard.screen(&as_same(clean)).removed, "the new content is judged, not the old verdict");
    assert!(guard.removals().is_empty(), "a sample that now passes leaves the removal log");
}

#[test]
fn the_verdict_cache_is_bounded_and_verdicts_do_not_depend_on_it() {
    let f = fitted();
    let guard = load(f.dir.path()).with_cache_capacity(std::num::NonZeroUsize::new(10).unwrap());
    let verdicts: Vec<Verdict> = f.items.iter().take(60).map(|i| guard.screen(i)).collect();
    assert_eq!(guard.cached_verdicts(), 10);
    assert_eq!(verdicts, f.before_save[..60]);
}

#[test]
fn an_unreadable_sample_is_tried_again_next_time() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct Flaky<'a>(&'a ImageItem, AtomicBool);
    impl poisoncam::AsImage for Flaky<'_> {
        fn as_image(&self) -> poisoncam::Result<Image> {
            if self.1.swap(false, Ordering::SeqCst) {
                return Err(poisoncam::Error::Config("file still being written".into()));
            }
            self.0.as_image()
        }
        fn id(&self) -> Option<String> {
            Some(self.0.id.clone())
        }
    }
    let f = fitted();
    let guard = load(f.dir.path());
    let clean = (0..f.items.len()).find(|&i| !f.before_save[i].removed).unwrap();
    let flaky = Flaky(&f.items[clean], AtomicBool::new(true));
    assert_eq!(guard.screen(&flaky).stage, Some(Stage::Unreadable));
    assert_eq!(guard.screen(&flaky), f.before_save[clean], "the failed read was not cached");
    assert!(guard.removals().is_empty());
}

#[test]
fn a_second_save_replaces_the_first_whole() {
    let f = fitted();
    let dir = tempfile::tempdir().unwrap();
    copy_dir(f.dir.path(), dir.path());
    let guard = load(dir.path());
    guard.save(dir.path()).unwrap();
    let records = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "mpk"))
        .count();
    let saved = load(f.dir.path());
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("guard.json")).unwrap()).unwrap();
    let classifiers = meta["classifier_models"].as_u64().unwrap() as usize;
    assert!(classifiers >= 1);
    assert_eq!(records, 1 + classifiers, "the backbone and classifiers of the latest save; older ones removed");
    assert_eq!(meta["generation"], 2);
    let again = load(dir.path());
    let sample: Vec<Verdict> = f.items.iter().take(20).map(|i| again.screen(i)).collect();
    assert_eq!(sample, f.items.iter().take(20).map(|i| saved.screen(i)).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_or_mismatched_guard_is_an_error_when_loaded() {
    let f = fitted();
    let broken = |edit: &dyn Fn(&Path)| {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(f.dir.path(), dir.path());
        edit(dir.path());
        Guard::<Compute>::load(dir.path(), &Default::default()).err()
    };
    let json = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join("guard.json")).unwrap()).unwrap()
    };
    let write_json = |dir: &Path, v: serde_json::Value| std::fs::write(dir.join("guard.json"), v.to_string()).unwrap();

    let garbage = broken(&|d| std::fs::write(d.join("guard.json"), b"{ not json").unwrap());
    assert!(matches!(garbage, Some(poisoncam::Error::Format { .. })), "{garbage:?}");
    let wrong_type = broken(&|d| {
        let mut v = json(d);
        v["dim"] = serde_json::json!("sixty-four");
        write_json(d, v);
    });
    assert!(matches!(wrong_type, Some(poisoncam::Error::Format { .. })), "{wrong_type:?}");
    let mismatched = broken(&|d| {
        let mut v = json(d);
        v["dim"] = serde_json::json!(32);
        write_json(d, v);
    });
    assert!(matches!(mismatched, Some(poisoncam::Error::Format { .. })), "{mismatched:?}");
    let nan = broken(&|d| {
        let mut v = json(d);
        v["threshold"] = serde_json::json!(7.5);
        write_json(d, v);
    });
    assert!(matches!(nan, Some(poisoncam::Error::Format { .. })), "{nan:?}");
    let truncated = broken(&|d| {
        let backbone = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("backbone"))
            .unwrap();
        let bytes = std::fs::read(&backbone).unwrap();
        std::fs::write(&backbone, &bytes[..bytes.len() / 2]).unwrap();
    });
    assert!(truncated.is_some(), "a truncated record is an error");
    let missing = broken(&|d| std::fs::remove_file(d.join("guard.json")).unwrap());
    assert!(matches!(missing, Some(poisoncam::Error::Io { .. })), "{missing:?}");
    // Each signal's screen is checked in its own folder.
    let templates = |d: &Path| d.join(format!("signals-{}/recurrence/templates.json", json(d)["generation"]));
    assert!(templates(f.dir.path()).exists(), "the recurrence screen is saved in its folder");
    let short_template = broken(&|d| {
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(templates(d)).unwrap()).unwrap();
        v["templates"][0]["values"] = serde_json::json!([0.5]);
        std::fs::write(templates(d), v.to_string()).unwrap();
    });
    assert!(matches!(short_template, Some(poisoncam::Error::Format { .. })), "{short_template:?}");
    let unknown_signal = broken(&|d| {
        let mut v = json(d);
        v["signals"] = serde_json::json!(["telepathy"]);
        write_json(d, v);
    });
    assert!(matches!(unknown_signal, Some(poisoncam::Error::Format { .. })), "{unknown_signal:?}");
}

/// One fit through `PoisonFilter::fit_guarded`, then the training samples through its guard:
/// the guard must remove exactly what the filter removed, each by the same stage. Every stage
/// must remove something here, so that the test covers each rule: half the poisons carry the
/// trigger as pasted (recurrence), the other half a noisy copy that recurrence cannot match, and
/// the paste test and classifier run with their gates opened, since their defaults (set on
/// thousands of images) keep nothing on 300. The classifier's share gate is opened all the way:
/// on 300 images it flags near half the set, and a share limit there would make the test turn
/// on the last bits of the warm start's floats rather than on the guard.
#[test]
fn the_guard_removes_exactly_what_the_filter_removed_by_the_same_stage() {
    use rand::{RngExt, SeedableRng};
    let mut set = toy(true);
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let mut items = set.dataset.clone().into_items();
    for (i, b) in set.truth.poisoned.iter().skip(1).step_by(2) {
        let image = &mut items[*i].image;
        for y in b.y..b.y + b.h {
            for x in b.x..b.x + b.w {
                let v = image.get(0, y, x) + rng.random_range(-0.15f32..0.15);
                image.set(0, y, x, v.clamp(0.0, 1.0));
            }
        }
    }
    set.dataset = ImageDataset::new(items.clone());
    let mut config = small_config();
    config.warm_start.epochs = 3;
    let d = &mut config.detector;
    d.paste.outlier_mads = 0.0;
    d.paste.min_moved = 0.0;
    d.paste.min_cluster_moved = 0.0;
    d.paste.kept_cluster_share = 0.3;
    d.classifier.min_validation_accuracy = 0.5;
    d.classifier.max_flagged_share = 1.0;
    let device = Default::default();
    let (filter, guard) = PoisonFilter::fit_guarded::<Train>(set.dataset, &config, &device).unwrap();
    let by_filter: Vec<(usize, Stage)> = filter.report().removals.iter().map(|r| (r.index, r.stage)).collect();
    for stage in [Stage::Recurrence, Stage::Paste, Stage::Classifier] {
        assert!(by_filter.iter().any(|(_, s)| *s == stage), "no removal by {stage:?}: {by_filter:?}");
    }
    let stages = |verdicts: &[Verdict]| -> Vec<(usize, Stage)> {
        verdicts.iter().enumerate().filter_map(|(i, v)| v.stage.map(|s| (i, s))).collect()
    };
    let verdicts = guard.screen_batch(&items);
    assert_eq!(stages(&verdicts), by_filter);
    assert!(verdicts.iter().filter(|v| v.removed).all(|v| v.trigger_box.is_some()), "every removal has its box");
    // Saved and loaded, the decisions and the paste test's references come back whole.
    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let loaded = load(dir.path());
    let one_at_a_time: Vec<Verdict> = items.iter().map(|i| loaded.screen(i)).collect();
    assert_eq!(stages(&one_at_a_time), by_filter, "a loaded guard screening one sample at a time");
}

/// A guard fitted through the user's ResNet (a checkpoint's MoCo query encoder) saves that model
/// and loads it back: every verdict, with its masking score and cluster, which only the
/// ResNet's features decide, is the same before the save and after the load, and the loaded
/// guard removes what the filter removed.
#[test]
fn a_guard_fitted_through_the_users_resnet_saves_and_loads_it() {
    use poisoncam::detect::resnet::{EncoderFile, Normalization, Stem};
    let set = toy(true);
    let items = set.dataset.clone().into_items();
    let mut config = small_config();
    config.detector.signals.recurrence = false;
    let d = &mut config.detector;
    d.paste.outlier_mads = 0.0;
    d.paste.min_moved = 0.0;
    d.paste.min_cluster_moved = 0.0;
    d.classifier.min_validation_accuracy = 0.5;
    let device = Default::default();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet/moco.pth.tar");
    let file = EncoderFile::new(fixture, 28, Normalization::None)
        .with_stem(Some(Stem::Cifar))
        .with_key_prefix(Some("encoder_q".into()));
    let (resnet, settings) = file.load::<Compute>(&device).unwrap();
    let model = GuardModel::ResNet(resnet, settings);
    let (filter, guard) =
        PoisonFilter::fit_guarded_with_encoder::<Train>(set.dataset, model, &config, &device).unwrap();
    assert!(guard.is_armed(), "masking left something to judge by");
    let before = guard.screen_batch(&items);
    assert!(before.iter().all(|v| v.cluster.is_some()), "every sample was assigned through the ResNet");
    let dir = tempfile::tempdir().unwrap();
    guard.save(dir.path()).unwrap();
    let after = load(dir.path()).screen_batch(&items);
    assert_eq!(before, after);
    let removed: Vec<usize> = after.iter().enumerate().filter(|(_, v)| v.removed).map(|(i, _)| i).collect();
    let by_filter: Vec<usize> = filter.report().removals.iter().map(|r| r.index).collect();
    assert!(!by_filter.is_empty(), "the filter removed something, so the two sets are not both empty");
    assert_eq!(removed, by_filter);
}
