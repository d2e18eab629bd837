//! The user's encoder read from PyTorch and safetensors checkpoints: features equal PyTorch's on
//! reduced-width twins of torchvision's ResNets (made by benches/peer/resnet_twins.py, with
//! PyTorch's features beside them), the wrappers SSL trainers save load, and hostile or broken
//! files are clear errors.

use std::path::{Path, PathBuf};

use burn::tensor::{Tensor, TensorData};
use poisoncam::backend::Compute;
use poisoncam::detect::embed::Embed;
use poisoncam::detect::resnet::{Arch, CheckpointProblem, EncoderFile, Normalization, ResNet, Stem};
use poisoncam::Error;

#[path = "../benches/peer/hash_pixels.rs"]
mod hash_pixels;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet").join(name)
}

/// The twin's settings and PyTorch's features, from `<name>.json`.
struct Twin {
    stem: Stem,
    input_size: usize,
    normalization: Normalization,
    arch: Arch,
    features: Vec<Vec<f32>>,
}

fn twin(name: &str) -> Twin {
    let text = std::fs::read_to_string(fixture(&format!("{name}.json"))).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    fn parse<T: serde::de::DeserializeOwned>(v: &serde_json::Value, key: &str) -> T {
        serde_json::from_value(v[key].clone()).unwrap()
    }
    Twin {
        stem: parse(&v, "stem"),
        input_size: parse(&v, "input_size"),
        normalization: parse(&v, "normalization"),
        arch: parse(&v, "arch"),
        features: parse(&v, "features"),
    }
}

/// benches/peer/resnet_twins.py's `inputs`: pixels from an integer hash, exact on both sides.
fn inputs(n: usize, size: usize) -> Tensor<Compute, 4> {
    let values = hash_pixels::hash_pixels(n, size);
    Tensor::from_data(TensorData::new(values, [n, 3, size, size]), &Default::default())
}

fn settings(path: PathBuf, twin: &Twin) -> EncoderFile {
    EncoderFile::new(path, twin.input_size, twin.normalization).with_stem(Some(twin.stem))
}

fn load(file: &EncoderFile) -> poisoncam::Result<ResNet<Compute>> {
    file.load::<Compute>(&Default::default()).map(|(model, _)| model)
}

fn features(model: &ResNet<Compute>, images: Tensor<Compute, 4>) -> Vec<f32> {
    model.features(images).into_data().iter::<f32>().collect()
}

/// ‖a − b‖ / ‖b‖.
fn relative_error(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum();
    let norm: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (diff / norm).sqrt()
}

fn problem(result: poisoncam::Result<ResNet<Compute>>) -> CheckpointProblem {
    match result {
        Err(Error::Checkpoint { problem, .. }) => problem,
        Err(other) => panic!("not a checkpoint error: {other}"),
        Ok(_) => panic!("the checkpoint loaded"),
    }
}

#[test]
fn features_equal_pytorchs_on_both_twins_and_both_formats() {
    for (name, formats) in [("twin18", &["pth", "safetensors"][..]), ("twin50", &["safetensors"][..])] {
        let twin = twin(name);
        let expected: Vec<f32> = twin.features.concat();
        for format in formats {
            let file = settings(fixture(&format!("{name}.{format}")), &twin);
            let (model, config) = file.load::<Compute>(&Default::default()).unwrap();
            assert_eq!(config.arch, twin.arch, "{name}.{format}: the architecture read off the keys");
            let got = features(&model, inputs(16, twin.input_size));
            let error = relative_error(&got, &expected);
            eprintln!("{name}.{format}: relative error {error:.2e}");
            assert!(error <= 1e-4, "{name}.{format}: relative error {error}");
        }
    }
}

#[test]
fn a_grey_image_is_its_grey_replicated_to_rgb() {
    let twin = twin("twin18");
    let model = load(&settings(fixture("twin18.safetensors"), &twin)).unwrap();
    let grey = inputs(2, twin.input_size).narrow(1, 0, 1);
    let rgb = grey.clone().repeat_dim(1, 3);
    assert_eq!(features(&model, grey), features(&model, rgb));
}

#[test]
fn moco_lightning_and_lightly_layouts_load_the_backbone_the_prefix_picks() {
    let file = |name: &str, prefix: Option<&str>| {
        EncoderFile::new(fixture(name), 32, Normalization::None)
            .with_stem(Some(Stem::Cifar))
            .with_key_prefix(prefix.map(str::to_string))
    };
    match problem(load(&file("moco.pth.tar", None))) {
        CheckpointProblem::AmbiguousPrefix { candidates } => {
            assert_eq!(candidates, ["state_dict.module.encoder_k", "state_dict.module.encoder_q"])
        }
        other => panic!("{other}"),
    }
    let images = inputs(4, 32);
    let query = features(&load(&file("moco.pth.tar", Some("encoder_q"))).unwrap(), images.clone());
    let key = features(&load(&file("moco.pth.tar", Some("encoder_k"))).unwrap(), images.clone());
    let lightning = features(&load(&file("solo.ckpt", Some("backbone"))).unwrap(), images.clone());
    let lightly = features(&load(&file("lightly.pth", None)).unwrap(), images);
    assert_ne!(query, key, "the two encoders differ, so the prefix chose");
    assert_eq!(query, lightning, "the same weights under MoCo's and Lightning's keys");
    assert_eq!(query, lightly, "and as an nn.Sequential of the children, numbered");
}

#[test]
fn a_wrong_or_regex_prefix_is_an_error_listing_the_backbones() {
    for wanted in ["encoder_x", "module.(encoder_q", "encoder_.*", "[a-"] {
        let file = EncoderFile::new(fixture("moco.pth.tar"), 32, Normalization::None)
            .with_stem(Some(Stem::Cifar))
            .with_key_prefix(Some(wanted.into()));
        match problem(load(&file)) {
            CheckpointProblem::PrefixNotFound { candidates, .. } => assert_eq!(candidates.len(), 2, "{wanted}"),
            other => panic!("{wanted}: {other}"),
        }
    }
}

#[test]
fn an_architecture_or_stem_the_file_contradicts_is_an_error() {
    let twin = twin("twin18");
    let as_50 = settings(fixture("twin18.pth"), &twin).with_arch(Some(Arch::ResNet50));
    match problem(load(&as_50)) {
        CheckpointProblem::ArchMismatch { given, found } => {
            assert_eq!((given.as_str(), found.as_str()), ("resnet50", "resnet18"))
        }
        other => panic!("{other}"),
    }
    let cifar = settings(fixture("twin18.pth"), &twin).with_stem(Some(Stem::Cifar));
    assert!(matches!(problem(load(&cifar)), CheckpointProblem::Stem(_)));
    let unnamed = EncoderFile::new(fixture("twin50.safetensors"), 32, Normalization::Cifar);
    assert!(matches!(problem(load(&unnamed)), CheckpointProblem::Stem(_)), "a 3×3 stem must be named");
}

#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let twin = twin("twin18");
    for name in ["twin18.pth", "twin18.safetensors"] {
        let bytes = std::fs::read(fixture(name)).unwrap();
        for cut in [bytes.len() / 2, bytes.len() - 10, 12] {
            let path = dir.path().join(name);
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let error = problem(load(&settings(path, &twin)));
            assert!(matches!(error, CheckpointProblem::Unreadable(_)), "{name} cut at {cut}: {error}");
        }
    }
}

#[test]
fn short_tensor_storage_is_an_error_not_zeros() {
    let file = EncoderFile::new(fixture("short_storage.pth"), 32, Normalization::None).with_stem(Some(Stem::Cifar));
    match problem(load(&file)) {
        CheckpointProblem::ShortStorage { needed_bytes, stored_bytes, .. } => assert!(stored_bytes < needed_bytes),
        other => panic!("{other}"),
    }
}

#[test]
fn a_pickle_that_calls_a_system_function_is_refused_by_name_and_runs_nothing() {
    let marker = Path::new("/tmp/poisoncam-pwned");
    let _ = std::fs::remove_file(marker);
    let file = EncoderFile::new(fixture("system_call.pth"), 32, Normalization::None);
    match problem(load(&file)) {
        CheckpointProblem::RefusedGlobal(name) => assert_eq!(name, "posix.system"),
        other => panic!("{other}"),
    }
    assert!(!marker.exists(), "the pickle's call ran");
}

/// `twin18.pth` with its first storage entry replaced by `zeros` bytes of zeros, deflated: a zip
/// bomb whose pickle is a real ResNet's.
fn inflating_checkpoint(path: &Path, zeros: usize) {
    use std::io::Write;
    let mut source = zip::ZipArchive::new(std::fs::File::open(fixture("twin18.pth")).unwrap()).unwrap();
    let mut out = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let deflated =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated).large_file(true);
    for i in 0..source.len() {
        let entry = source.by_index(i).unwrap();
        if entry.name().ends_with("/data/0") {
            let name = entry.name().to_string();
            drop(entry);
            out.start_file(name, deflated).unwrap();
            let block = vec![0u8; 1 << 20];
            for _ in 0..zeros / block.len() {
                out.write_all(&block).unwrap();
            }
        } else {
            out.raw_copy_file(entry).unwrap();
        }
    }
    out.finish().unwrap();
}

#[test]
fn a_storage_entry_that_inflates_past_its_tensors_is_refused_before_inflating() {
    let dir = tempfile::tempdir().unwrap();
    let twin = twin("twin18");
    let bomb = dir.path().join("bomb.pth");
    inflating_checkpoint(&bomb, 64 << 20);
    assert!(std::fs::metadata(&bomb).unwrap().len() < 1 << 20, "the bomb is small on disk");
    match problem(load(&settings(bomb, &twin))) {
        CheckpointProblem::EntrySize { entry, declared_bytes, needed_bytes } => {
            assert!(entry.ends_with("data/0"), "{entry}");
            assert_eq!(declared_bytes, 64 << 20);
            assert!(needed_bytes < declared_bytes);
        }
        other => panic!("{other}"),
    }
}

#[cfg(unix)]
#[test]
fn a_checkpoint_path_that_is_a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("encoder.pth");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let file = EncoderFile::new(fifo, 32, Normalization::None);
    match problem(load(&file)) {
        CheckpointProblem::Unreadable(why) => assert!(why.contains("FIFO"), "{why}"),
        other => panic!("{other}"),
    }
}

/// A safetensors file of zero-filled f32 tensors with these keys and shapes.
fn safetensors(path: &Path, tensors: &[(&str, Vec<usize>)]) {
    let mut header = serde_json::Map::new();
    let mut offset = 0;
    for (key, shape) in tensors {
        let bytes = shape.iter().product::<usize>() * 4;
        let entry = serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]});
        header.insert(key.to_string(), entry);
        offset += bytes;
    }
    let header = serde_json::Value::Object(header).to_string();
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    out.resize(out.len() + offset, 0);
    std::fs::write(path, out).unwrap();
}

#[test]
fn a_file_of_another_architecture_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    // The crate's own warm-start backbone as burn saves it: neither torch zip nor safetensors.
    let model = poisoncam::detect::threat::EncoderConfig::new().init::<Compute>(&Default::default());
    let saved = poisoncam::detect::threat::save_model(&model.backbone, dir.path().join("backbone")).unwrap();
    assert!(matches!(
        problem(load(&EncoderFile::new(saved, 28, Normalization::None))),
        CheckpointProblem::Unreadable(_)
    ));
    // A VGG's keys.
    let vgg = dir.path().join("vgg.safetensors");
    safetensors(&vgg, &[("features.0.weight", vec![8, 3, 3, 3]), ("classifier.0.weight", vec![10, 8])]);
    assert!(matches!(problem(load(&EncoderFile::new(vgg, 32, Normalization::None))), CheckpointProblem::NotResNet(_)));
    // ResNet keys whose stages hold [2, 2, 2, 1] blocks: no torchvision depth.
    let mut keys = vec![("conv1.weight".to_string(), vec![8, 3, 7, 7])];
    for (stage, blocks) in [2, 2, 2, 1].into_iter().enumerate() {
        for b in 0..blocks {
            keys.push((format!("layer{}.{b}.conv1.weight", stage + 1), vec![8, 8, 3, 3]));
        }
    }
    let odd = dir.path().join("odd.safetensors");
    safetensors(&odd, &keys.iter().map(|(k, s)| (k.as_str(), s.clone())).collect::<Vec<_>>());
    match problem(load(&EncoderFile::new(odd.clone(), 32, Normalization::None))) {
        CheckpointProblem::NotResNet(reason) => assert!(reason.contains("[2, 2, 2, 1]"), "{reason}"),
        other => panic!("{other}"),
    }
    let asked = EncoderFile::new(odd, 32, Normalization::None).with_arch(Some(Arch::ResNet18));
    assert!(matches!(problem(load(&asked)), CheckpointProblem::ArchMismatch { .. }));
}

#[test]
fn a_misshaped_or_missing_tensor_is_named() {
    let dir = tempfile::tempdir().unwrap();
    // resnet18's keys at widths [8, 16, 16, 16], complete up to layer1.0's second convolution.
    let mut keys = vec![("conv1.weight".to_string(), vec![8, 3, 7, 7])];
    for (stage, w) in [8usize, 16, 16, 16].into_iter().enumerate() {
        let cin = if stage == 0 { 8 } else { 16 };
        keys.push((format!("layer{}.0.conv1.weight", stage + 1), vec![w, cin, 3, 3]));
        keys.push((format!("layer{}.1.conv1.weight", stage + 1), vec![w, w, 3, 3]));
    }
    for norm in ["bn1", "layer1.0.bn1"] {
        for part in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("{norm}.{part}"), vec![8]));
        }
    }
    let write = |name: &str, last: (&str, Vec<usize>)| {
        let path = dir.path().join(name);
        let mut all: Vec<(&str, Vec<usize>)> = keys.iter().map(|(k, s)| (k.as_str(), s.clone())).collect();
        all.push(last);
        safetensors(&path, &all);
        EncoderFile::new(path, 32, Normalization::None)
    };
    match problem(load(&write("misshaped.safetensors", ("layer1.0.conv2.weight", vec![8, 8, 5, 5])))) {
        CheckpointProblem::Shape { key, expected, found } => {
            assert_eq!(key, "layer1.0.conv2.weight");
            assert_eq!((expected, found), (vec![8, 8, 3, 3], vec![8, 8, 5, 5]));
        }
        other => panic!("{other}"),
    }
    match problem(load(&write("missing.safetensors", ("layer1.0.conv2.weight", vec![8, 8, 3, 3])))) {
        CheckpointProblem::MissingTensor(key) => assert_eq!(key, "layer1.0.bn2.weight"),
        other => panic!("{other}"),
    }
}
