//! The `poisoncam scan` command on a folder a user might have: class sub-folders, mixed sizes,
//! a few corrupt files.

use std::path::Path;
use std::process::Command;

use poisoncam::PoisonFilterConfig;

fn write_png(path: &Path, size: u32, seed: u32) {
    let img = image::GrayImage::from_fn(size, size, |x, y| image::Luma([((x * 7 + y * 3 + seed * 13) % 256) as u8]));
    img.save(path).unwrap();
}

fn small_config(path: &Path) {
    let mut config = PoisonFilterConfig::new();
    config.warm_start.epochs = 1;
    config.warm_start.batch_size = 32;
    config.detector.kmeans.k = Some(4);
    config.detector.paste.references = 16;
    config.detector.paste.probes_per_cluster = 2;
    config.write(path).unwrap();
}

#[test]
fn scan_writes_outputs_and_reports_corrupt_files() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for class in ["boots", "shirts"] {
        std::fs::create_dir_all(data.join(class)).unwrap();
        for i in 0..30u32 {
            // Every fifth image is larger: the scan resizes to the most common size (28).
            write_png(&data.join(class).join(format!("{i:02}.png")), if i % 5 == 0 { 40 } else { 28 }, i);
        }
    }
    std::fs::write(data.join("boots/broken.png"), b"not a png at all").unwrap();
    std::fs::write(data.join("shirts/truncated.jpg"), [0xFF, 0xD8, 0xFF, 0xE0, 0, 16]).unwrap();
    let config = dir.path().join("config.json");
    small_config(&config);
    let out = dir.path().join("out");

    let status = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--config"])
        .arg(&config)
        .arg("--cache")
        .arg(dir.path().join("cache"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["skipped"], serde_json::json!([]), "every file could be listed");
    assert_eq!(report["total"], 62);
    assert_eq!(report["working_size"], serde_json::json!([1, 28, 28]));

    let kept: Vec<String> = std::fs::read_to_string(out.join("kept.txt")).unwrap().lines().map(String::from).collect();
    let removed: Vec<serde_json::Value> = std::fs::read_to_string(out.join("removed.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(kept.len() + removed.len(), 62);
    assert!(kept.contains(&"boots/00.png".to_string()) || removed.iter().any(|r| r["id"] == "boots/00.png"));
    for r in &removed {
        assert!(r["index"].is_u64() && r["id"].is_string() && r["score"].is_number());
    }
    // The corrupt files are removed as unreadable, with the decoder's reason.
    let unreadable: Vec<&str> =
        removed.iter().filter(|r| r["stage"] == "unreadable").map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(unreadable, vec!["boots/broken.png", "shirts/truncated.jpg"]);
    assert!(removed.iter().filter(|r| r["stage"] == "unreadable").all(|r| r["error"].is_string()));
}

#[test]
fn scan_of_a_missing_or_empty_path_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    for path in [dir.path().join("missing"), dir.path().to_path_buf()] {
        let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
            .args(["scan", path.to_str().unwrap(), "--out"])
            .arg(dir.path().join("out"))
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("error: ") && stderr.contains(path.to_str().unwrap()), "{stderr}");
    }
}

/// 400 embedded images as PNG files `NNN.png` in `dir/data`, 3% with a pasted trigger; the
/// file names of the poisons.
fn poisoned_folder(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    use poisoncam::data::FashionMnist;
    use poisoncam::sim::attack::{poison, AttackConfig};
    let set = poison(
        &FashionMnist::embedded().unwrap().slice(0..400),
        &AttackConfig { rate: 0.03, seed: 4, ..AttackConfig::default() },
    )
    .unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    for (i, item) in set.dataset.items().iter().enumerate() {
        let bytes: Vec<u8> = item.image.pixels().iter().map(|v| (v * 255.0).round() as u8).collect();
        image::GrayImage::from_raw(28, 28, bytes).unwrap().save(data.join(format!("{i:03}.png"))).unwrap();
    }
    (data, set.truth.poisoned.iter().map(|(i, _)| format!("{i:03}.png")).collect())
}

#[test]
fn scan_with_recurrence_alone_removes_the_pasted_poisons() {
    let dir = tempfile::tempdir().unwrap();
    let (data, expected) = poisoned_folder(dir.path());
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(["scan", data.to_str().unwrap(), "--signals", "recurrence", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let removed: Vec<serde_json::Value> = std::fs::read_to_string(out.join("removed.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = removed.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, expected);
    assert!(removed.iter().all(|r| r["stage"] == "recurrence" && r["box"].is_array()));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(report["warm_start"].is_null(), "recurrence alone trains no threat model");
    // The picture, eight tiles a row: the patch (dark frame), then a red-framed tile per
    // removal, each showing its box.
    let sheet = image::open(out.join("removed.png")).unwrap().to_rgb8();
    let tile = 160 + 6;
    assert_eq!(sheet.width() as usize, 8 * tile);
    assert!(sheet.height() as usize >= (1 + expected.len()).div_ceil(8) * tile);
    assert_eq!(sheet.get_pixel(0, 0).0, [40, 40, 40], "the patch comes first");
    assert_eq!(sheet.get_pixel(tile as u32, 0).0, [220, 30, 30], "a removal is framed red");
    let yellow = sheet.pixels().filter(|p| p.0 == [255, 215, 0]).count();
    assert!(yellow > 0, "the boxes are drawn");
}

/// Runs `poisoncam scan --signals recurrence` with `args`; its `kept.filelist` lines and report.
fn scan_list(args: &[&str], out: &Path) -> (Vec<String>, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(["scan", "--signals", "recurrence", "--out", out.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let lines = std::fs::read_to_string(out.join("kept.filelist")).unwrap().lines().map(String::from).collect();
    let report = serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    (lines, report)
}

#[test]
fn a_file_list_in_gives_the_kept_file_list_out_and_keep_and_report_only_change_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, poisons) = poisoned_folder(dir.path());
    // The list sits beside the folder and names its files relatively, with a label each.
    let list = dir.path().join("train.txt");
    let written: Vec<String> = (0..400).map(|i| format!("data/{i:03}.png {}", i % 10)).collect();
    std::fs::write(&list, written.join("\n")).unwrap();
    let out = dir.path().join("out");
    let (kept, report) = scan_list(&["--filelist", list.to_str().unwrap()], &out);
    let root = std::fs::canonicalize(&data).unwrap();
    let expected: Vec<String> = (0..400)
        .filter(|i| !poisons.contains(&format!("{i:03}.png")))
        .map(|i| format!("{}/{i:03}.png {}", root.display(), i % 10))
        .collect();
    assert_eq!(kept, expected, "every clean file, absolute, with its label");
    assert_eq!(report["report_only"], false);
    // Read back as a list, the kept list scans to itself: nothing more is removed.
    let round = dir.path().join("kept.txt");
    std::fs::write(&round, kept.join("\n")).unwrap();
    let (again, _) = scan_list(&["--filelist", round.to_str().unwrap()], &dir.path().join("out2"));
    assert_eq!(again, kept);

    // A person clears two removals: they are kept and named in the report.
    let keep = dir.path().join("keep.txt");
    let cleared = [format!("data/{}", poisons[0]), format!("data/{}", poisons[1])];
    std::fs::write(&keep, cleared.join("\n")).unwrap();
    let (kept, report) = scan_list(&["--filelist", list.to_str().unwrap(), "--keep", keep.to_str().unwrap()], &out);
    assert_eq!(kept.len(), expected.len() + 2);
    assert_eq!(report["cleared"], serde_json::json!(cleared));

    // Report only: every input kept, the removals still reported.
    let (kept, report) = scan_list(&[data.to_str().unwrap(), "--report-only"], &out);
    assert_eq!(kept.len(), 400);
    assert!(kept[0].ends_with("/000.png"), "a folder's files are listed too: {}", kept[0]);
    assert_eq!(report["report_only"], true);
    assert_eq!(report["removals"].as_array().unwrap().len(), poisons.len());
    assert_eq!(std::fs::read_to_string(out.join("kept.txt")).unwrap().lines().count(), 400);
}

#[cfg(not(feature = "cuda"))]
#[test]
fn the_cuda_backend_in_a_cpu_build_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(["--backend", "cuda", "scan", dir.path().to_str().unwrap(), "--out"])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`cuda` feature"), "{stderr}");
}

#[test]
fn a_default_scan_of_photos_on_the_cpu_runs_recurrence_alone_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..12u32 {
        let img = image::RgbImage::from_fn(160, 128, |x, y| {
            image::Rgb([((x * 3 + i * 17) % 256) as u8, ((y * 5 + i * 29) % 256) as u8, ((x * y + i) % 256) as u8])
        });
        img.save(data.join(format!("{i:02}.png"))).unwrap();
    }
    let out = dir.path().join("out");
    let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stderr).contains("masking is off"));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert!(report["note"].as_str().unwrap().contains("median short side 128 px"), "{}", report["note"]);
    assert!(report["warm_start"].is_null(), "no threat model was trained");
    assert_eq!(report["config"]["detector"]["signals"]["masking"], false);
}

/// `scan --encoder`: the settings a checkpoint cannot hold are asked for, two backbones are
/// named, and with one picked the scan runs masking through it at the encoder's input size.
#[test]
fn scan_with_an_encoder_asks_what_the_checkpoint_cannot_say() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..60u32 {
        write_png(&data.join(format!("{i:02}.png")), 28, i);
    }
    let config = dir.path().join("config.json");
    small_config(&config);
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet/moco.pth.tar");
    let out = dir.path().join("out");
    let scan = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_poisoncam"))
            .args(["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--config"])
            .arg(&config)
            .arg("--encoder")
            .arg(&checkpoint)
            .args(["--stem", "cifar"])
            .args(extra)
            .output()
            .unwrap()
    };
    let unstated = scan(&["--input-size", "32"]);
    assert!(!unstated.status.success());
    assert!(String::from_utf8_lossy(&unstated.stderr).contains("--normalize"), "{unstated:?}");
    let two = scan(&["--input-size", "32", "--normalize", "none"]);
    assert!(!two.status.success());
    let message = String::from_utf8_lossy(&two.stderr);
    assert!(
        message.contains("encoder_q") && message.contains("encoder_k") && message.contains("--key-prefix"),
        "{message}"
    );
    let picked = scan(&["--input-size", "32", "--normalize", "none", "--key-prefix", "encoder_q"]);
    assert!(picked.status.success(), "{}", String::from_utf8_lossy(&picked.stderr));
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["working_size"], serde_json::json!([1, 32, 32]), "read at the encoder's input size");
    assert!(report["warm_start"].is_null(), "no threat model was trained");
    assert_eq!(report["total"], 60);
}

/// `eval --export` writes the set that `eval --encoder` then judges: the same images (one
/// fingerprint), their labels and every poison's box.
#[test]
fn eval_judges_an_encoder_on_exactly_the_set_it_exported() {
    let dir = tempfile::tempdir().unwrap();
    let run = |extra: &[&str]| {
        let output = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
            .args(["eval", "--seed", "3", "--train-size", "400", "--rate", "0.05", "--json"])
            .arg(dir.path().join("eval.json"))
            .args(extra)
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    let export = dir.path().join("export");
    run(&["--export", export.to_str().unwrap()]);
    let attack: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(export.join("attack.json")).unwrap()).unwrap();
    assert_eq!(attack["train_shape"], serde_json::json!([400, 1, 28, 28]));
    assert_eq!(std::fs::metadata(export.join("train.f32")).unwrap().len(), 400 * 28 * 28 * 4);
    assert_eq!(attack["labels"].as_array().unwrap().len(), 400);
    let poisons = attack["poisoned"].as_array().unwrap().len();
    assert!(poisons > 0);
    let rows = attack["implant_rows"].as_array().unwrap().len();
    assert_eq!(std::fs::metadata(export.join("implant.f32")).unwrap().len(), (rows * 28 * 28 * 4) as u64);
    let checkpoint = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/resnet/solo.ckpt");
    let checkpoint = checkpoint.to_str().unwrap();
    run(&["--signals", "masking", "--no-clean", "--encoder", checkpoint, "--key-prefix", "backbone"]
        .into_iter()
        .chain(["--stem", "cifar", "--input-size", "28", "--normalize", "none"])
        .collect::<Vec<_>>());
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("eval.json")).unwrap()).unwrap();
    assert_eq!(report["poisoned_fingerprint"], attack["fingerprint"]);
    assert_eq!(report["poisoned_count"].as_u64().unwrap() as usize, poisons);
    assert!(report["encoder"]["downstream"]["asr"].is_number(), "the encoder's own scores");
    assert!(report["poisoned"].is_null(), "no threat model was warm-started");
}
