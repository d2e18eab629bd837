//! `poisoncam scan` and `eval` on inputs nobody should have to clean first: broken and odd files,
//! odd folders, bad numbers and bad configs. Each case gets a clear error or a correct result,
//! never a panic, and every input file ends up kept, removed or skipped.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

use poisoncam::PoisonFilterConfig;

fn poisoncam(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_poisoncam")).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A textured grey PNG, different for every `seed`.
fn png(path: &Path, side: u32, seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_fn(side, side, |x, y| image::Luma([((x * 7 + y * 3 + seed * 13) % 256) as u8]))
        .save(path)
        .unwrap();
}

fn jpeg_bytes(side: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(side, side, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 90]));
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

/// A valid PNG header that declares `side × side` pixels, followed by almost no data.
fn bomb_png(side: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&side.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]); // 8-bit grey
    let mut crc = flate2::Crc::new();
    crc.update(&ihdr);
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend_from_slice(&13u32.to_be_bytes());
    bytes.extend_from_slice(&ihdr);
    bytes.extend_from_slice(&crc.sum().to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    bytes
}

/// What a scan wrote: kept ids, removals as `(id, stage)`, skipped ids, and the report.
struct Scanned {
    kept: BTreeSet<String>,
    removed: Vec<(String, String)>,
    skipped: BTreeSet<String>,
    report: serde_json::Value,
}

fn read_outputs(out: &Path) -> Scanned {
    let kept = std::fs::read_to_string(out.join("kept.txt")).unwrap().lines().map(String::from).collect();
    let removed = std::fs::read_to_string(out.join("removed.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .map(|r| (r["id"].as_str().unwrap().to_string(), r["stage"].as_str().unwrap().to_string()))
        .collect();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    let skipped = report["skipped"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    Scanned { kept, removed, skipped, report }
}

/// Scans `data` with recurrence alone (no threat model: these cases are about reading).
fn scan(data: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--signals", "recurrence"];
    args.extend_from_slice(extra);
    poisoncam(&args)
}

/// Every file below `data` with an image extension, as an id relative to `data`.
fn image_files(data: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if entry.file_type().unwrap().is_dir() {
                walk(&path, root, out);
            } else if entry.file_type().unwrap().is_file() {
                out.insert(path.strip_prefix(root).unwrap().to_string_lossy().replace('\\', "/"));
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(data, data, &mut out);
    out
}

#[test]
fn broken_odd_and_hostile_files_are_kept_or_removed_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..40 {
        png(&data.join(format!("good/{i:02}.png")), 28, i);
    }
    let good_png = std::fs::read(data.join("good/00.png")).unwrap();
    let jpeg = jpeg_bytes(28);
    let odd = data.join("odd");
    std::fs::create_dir_all(&odd).unwrap();
    let write = |name: &str, bytes: &[u8]| std::fs::write(odd.join(name), bytes).unwrap();
    write("corrupt.png", b"\x89PNG\r\n\x1a\n this is not a png");
    write("truncated.png", &good_png[..good_png.len() / 2]);
    write("empty.png", b"");
    write("corrupt.jpg", &[0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0, 0xFF, 0xFF, 0xFF]);
    write("truncated.jpg", &jpeg[..jpeg.len() / 3]);
    write("empty.jpeg", b"");
    write("bomb.png", &bomb_png(100_000));
    write("text.png", b"just some text with an image extension\n");
    write("cmyk.jpg", &std::fs::read("tests/fixtures/cmyk.jpg").unwrap());
    image::ImageBuffer::<image::Luma<u16>, _>::from_fn(28, 28, |x, y| image::Luma([(x * 2000 + y * 37) as u16]))
        .save(odd.join("sixteen-bit.png"))
        .unwrap();
    image::RgbaImage::from_fn(28, 28, |x, y| image::Rgba([x as u8 * 9, y as u8 * 9, 40, 128]))
        .save(odd.join("rgba.png"))
        .unwrap();
    image::GrayAlphaImage::from_fn(28, 28, |x, y| image::LumaA([(x * y) as u8, 200]))
        .save(odd.join("grey-alpha.png"))
        .unwrap();
    std::fs::write(odd.join("notes.txt"), b"not an image extension: not an input").unwrap();
    let unreadable: BTreeSet<&str> = [
        "odd/corrupt.png",
        "odd/truncated.png",
        "odd/empty.png",
        "odd/corrupt.jpg",
        "odd/truncated.jpg",
        "odd/empty.jpeg",
        "odd/bomb.png",
        "odd/text.png",
    ]
    .into();
    let readable = ["odd/cmyk.jpg", "odd/sixteen-bit.png", "odd/rgba.png", "odd/grey-alpha.png"];
    #[cfg(unix)]
    {
        // A loop back to the top, and a file the scan may not read (root reads it anyway).
        std::os::unix::fs::symlink(&data, data.join("good/loop")).unwrap();
        png(&odd.join("locked.png"), 28, 99);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(odd.join("locked.png"), std::fs::Permissions::from_mode(0o000)).unwrap();
    }

    let out = dir.path().join("out");
    let output = scan(&data, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
    let s = read_outputs(&out);

    let removed_unreadable: BTreeSet<&str> =
        s.removed.iter().filter(|(_, stage)| stage == "unreadable").map(|(id, _)| id.as_str()).collect();
    for id in &unreadable {
        assert!(removed_unreadable.contains(id), "{id} is removed as unreadable");
    }
    for id in readable {
        assert!(s.kept.contains(id) || s.removed.iter().any(|(r, st)| r == id && st != "unreadable"), "{id} is read");
    }
    // Accounting: every image file below the folder is kept, removed or skipped, exactly once.
    let mut seen: BTreeSet<String> = s.kept.clone();
    for (id, _) in &s.removed {
        assert!(seen.insert(id.clone()), "{id} listed twice");
    }
    let mut expected: BTreeSet<String> = image_files(&data).into_iter().filter(|f| !f.ends_with(".txt")).collect();
    #[cfg(unix)]
    {
        assert!(s.skipped.contains("good/loop/"), "the link loop is reported: {:?}", s.skipped);
        expected.retain(|f| !f.starts_with("good/loop"));
    }
    assert_eq!(seen, expected);
    assert_eq!(s.report["total"], expected.len());
    assert_eq!(s.report["working_size"], serde_json::json!([3, 28, 28]), "the RGB files make the set RGB");
}

/// Runs `poisoncam` with `args`, failing the test (and killing it) if it has not ended within
/// `limit`: these cases are about scans that used to hang.
#[cfg(unix)]
fn poisoncam_within(args: &[&str], limit: std::time::Duration) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_poisoncam"))
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            panic!("`poisoncam {}` still ran after {limit:?}", args.join(" "));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[cfg(unix)]
#[test]
fn fifos_devices_and_sockets_named_like_images_are_reported_never_read() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..30 {
        png(&data.join(format!("{i:02}.png")), 28, i);
    }
    assert!(Command::new("mkfifo").arg(data.join("fifo.png")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/urandom", data.join("rand.jpg")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(data.join("socket.png")).unwrap();
    let out = dir.path().join("out");
    let args = ["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--signals", "recurrence"];
    let output = poisoncam_within(&args, std::time::Duration::from_secs(120));
    assert!(output.status.success(), "{}", stderr(&output));
    let s = read_outputs(&out);
    assert_eq!(s.kept.len(), 30, "every image is kept: {:?}", s.removed);
    assert!(s.removed.is_empty(), "{:?}", s.removed);
    let reasons: Vec<(String, String)> = s.report["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["id"].as_str().unwrap().to_string(), e["reason"].as_str().unwrap().to_string()))
        .collect();
    let reason = |id: &str| reasons.iter().find(|(i, _)| i == id).map(|(_, r)| r.clone()).unwrap_or_default();
    assert!(reason("fifo.png").contains("FIFO"), "{reasons:?}");
    assert!(reason("rand.jpg").contains("character device"), "{reasons:?}");
    assert!(reason("socket.png").contains("socket"), "{reasons:?}");
    assert_eq!(reasons.len(), 3, "{reasons:?}");
}

#[cfg(unix)]
#[test]
fn files_listed_then_deleted_or_swapped_for_a_fifo_or_a_device_are_unreadable() {
    // A file list is read first and its files later, as a folder's listing is: a file deleted or
    // replaced between the two is met by the read itself.
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..20 {
        png(&data.join(format!("{i:02}.png")), 28, i);
    }
    let mut lines: Vec<String> = (0..20).map(|i| format!("data/{i:02}.png")).collect();
    lines.extend(["data/gone.png", "data/fifo.png", "data/rand.jpg"].map(String::from));
    std::fs::write(dir.path().join("list.txt"), lines.join("\n")).unwrap();
    assert!(Command::new("mkfifo").arg(data.join("fifo.png")).status().unwrap().success());
    std::os::unix::fs::symlink("/dev/urandom", data.join("rand.jpg")).unwrap();
    let out = dir.path().join("out");
    let list = dir.path().join("list.txt");
    let args =
        ["scan", "--filelist", list.to_str().unwrap(), "--out", out.to_str().unwrap(), "--signals", "recurrence"];
    let output = poisoncam_within(&args, std::time::Duration::from_secs(120));
    assert!(output.status.success(), "{}", stderr(&output));
    let s = read_outputs(&out);
    assert_eq!(s.kept.len(), 20);
    let removed: BTreeSet<(String, String)> = s.removed.into_iter().collect();
    let expected: BTreeSet<(String, String)> =
        ["data/gone.png", "data/fifo.png", "data/rand.jpg"].map(|id| (id.to_string(), "unreadable".to_string())).into();
    assert_eq!(removed, expected);
    let removed_log = std::fs::read_to_string(out.join("removed.jsonl")).unwrap();
    assert!(removed_log.contains("FIFO") && removed_log.contains("character device"), "{removed_log}");
}

/// Unmounts a small file system when the test ends, however it ends.
#[cfg(target_os = "linux")]
struct Mounted(std::path::PathBuf);

#[cfg(target_os = "linux")]
impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_disk_fails_the_scan_clearly_and_leaves_each_output_whole_or_absent() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    // A 48 KiB file system: the outputs of 1,500 images (their kept list alone is 60 KB) cannot fit.
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=48k", "tmpfs"]).arg(&small).output();
    if !mounted.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!("skipped: a tmpfs cannot be mounted here (needs root)");
        return;
    }
    let _mounted = Mounted(small.clone());
    let data = dir.path().join("data");
    for i in 0..1500 {
        png(&data.join(format!("image-with-a-long-name-{i:05}.png")), 28, i);
    }
    let out = small.join("out");
    let output = scan(&data, &out, &[]);
    assert!(!output.status.success(), "the scan cannot have written everything");
    assert!(
        stderr(&output).contains("cannot write") && stderr(&output).contains("No space left"),
        "{}",
        stderr(&output)
    );
    let mut whole = 0;
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.starts_with(".tmp"), "a temporary file is left: {name}");
        let text = std::fs::read_to_string(entry.path()).unwrap();
        match name.as_str() {
            "report.json" => drop(serde_json::from_str::<serde_json::Value>(&text).unwrap()),
            "removed.jsonl" => text.lines().for_each(|l| drop(serde_json::from_str::<serde_json::Value>(l).unwrap())),
            "kept.txt" | "kept.filelist" => assert_eq!(text.lines().count(), 1500, "{name} is whole"),
            _ => {}
        }
        whole += 1;
    }
    assert!(whole < 5, "some output could not be written, so it is absent");
}

#[test]
fn empty_tiny_and_repeated_folders() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");

    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let output = scan(&empty, &out, &[]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("holds no images"), "{}", stderr(&output));

    let one = dir.path().join("one");
    png(&one.join("only.png"), 28, 1);
    let output = scan(&one, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(read_outputs(&out).kept, BTreeSet::from(["only.png".to_string()]));
    // Masking needs a threat model, which one image cannot train.
    let output = poisoncam(&["scan", one.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("needs at least 2 images"), "{}", stderr(&output));

    // A thousand copies of one image: duplicates, not a recurring trigger.
    let same = dir.path().join("same");
    png(&same.join("0000.png"), 28, 5);
    for i in 1..1000 {
        std::fs::copy(same.join("0000.png"), same.join(format!("{i:04}.png"))).unwrap();
    }
    let output = scan(&same, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let s = read_outputs(&out);
    assert_eq!(s.kept.len() + s.removed.len(), 1000);
    assert!(s.removed.is_empty(), "copies of one image are not poisons: {} removed", s.removed.len());
    // With the threat model too: identical embeddings make one cluster, not twins to flip between.
    let config = dir.path().join("one-epoch.json");
    std::fs::write(&config, r#"{"warm_start": {"epochs": 1, "batch_size": 128}}"#).unwrap();
    let output = poisoncam(&[
        "scan",
        same.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
        "--cache",
        dir.path().join("cache").to_str().unwrap(),
    ]);
    assert!(output.status.success(), "{}", stderr(&output));
    let s = read_outputs(&out);
    assert_eq!(s.kept.len(), 1000, "{} removed", s.removed.len());
}

/// A textured colour JPEG of `side` pixels, different for every `seed`.
fn photo_jpeg(side: u32, seed: u32) -> Vec<u8> {
    let photo = image::RgbImage::from_fn(side, side, |x, y| {
        let v = ((x / 3 + y / 5 + seed * 31) % 97) as u8;
        image::Rgb([v + 60, ((u32::from(v) * 2 + seed) % 200) as u8, 120 - v])
    });
    let mut bytes = Vec::new();
    photo.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Jpeg).unwrap();
    bytes
}

/// Photos are listed from their headers and decoded once, later; one whose header reads but whose
/// body does not must still end up removed as unreadable, whichever signals run and whether the
/// folder is mostly photos (decoded by the signals) or mostly small images (decoded as listed).
#[test]
fn photos_whose_header_reads_but_whose_body_does_not_are_unreadable_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, u32, &[&str]); 3] = [
        ("photos", 128, &[]),
        ("photos-whole-image-signals", 128, &["--signals", "spectral,residual"]),
        ("small", 28, &[]),
    ];
    for (name, side, extra) in cases {
        let data = dir.path().join(name);
        std::fs::create_dir_all(&data).unwrap();
        for i in 0..24u32 {
            std::fs::write(data.join(format!("{i:02}.jpg")), photo_jpeg(side, i)).unwrap();
        }
        // A PNG cut in half: its header declares a photo, its pixel data ends early. (A JPEG cut
        // short decodes, grey where the data ends, as Pillow's lenient mode gives it.)
        let mut broken = Vec::new();
        image::RgbImage::from_fn(160, 160, |x, y| image::Rgb([(x * 7 % 256) as u8, (y * 3 % 256) as u8, 9]))
            .write_to(&mut std::io::Cursor::new(&mut broken), image::ImageFormat::Png)
            .unwrap();
        std::fs::write(data.join("cut.png"), &broken[..broken.len() / 2]).unwrap();
        let out = dir.path().join(format!("out-{name}"));
        let mut args = vec![
            "scan",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--cache",
            dir.path().to_str().unwrap(),
        ];
        args.extend_from_slice(if extra.is_empty() { &["--signals", "recurrence"] } else { extra });
        let output = poisoncam(&args);
        assert!(output.status.success(), "{name}: {}", stderr(&output));
        let s = read_outputs(&out);
        assert!(s.removed.contains(&("cut.png".to_string(), "unreadable".to_string())), "{name}: {:?}", s.removed);
        assert!(!s.kept.contains("cut.png"), "{name}");
        assert_eq!(s.kept.len() + s.removed.len(), 25, "{name}: every file once");
    }
}

#[test]
fn large_photos_are_read_one_at_a_time_at_a_capped_size() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("photos");
    std::fs::create_dir_all(&data).unwrap();
    for i in 0..12u32 {
        let photo = image::RgbImage::from_fn(1600, 1200, |x, y| {
            let v = ((x / 7 + y / 5 + i * 31) % 97) as u8;
            image::Rgb([v + 60, (v * 2) % 200, 120 - v])
        });
        photo.save(data.join(format!("{i:02}.jpg"))).unwrap();
    }
    let out = dir.path().join("out");
    let output = scan(&data, &out, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let s = read_outputs(&out);
    assert_eq!(s.report["working_size"], serde_json::json!([3, 224, 299]), "short side capped at 224");
    assert_eq!(s.kept.len() + s.removed.len(), 12);
}

#[test]
fn bad_numbers_in_flags_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("e.json");
    let json = json.to_str().unwrap();
    for (flag, value) in [
        ("--rate", "nan"),
        ("--rate", "-0.1"),
        ("--trigger-frac", "nan"),
        ("--trigger-frac", "-1"),
        ("--blend", "nan"),
        ("--blend", "-0.5"),
        ("--crop-min", "nan"),
        ("--crop-min", "-0.2"),
        ("--temperature", "nan"),
        ("--temperature", "-1"),
        ("--batch-size", "-4"),
        ("--epochs", "-1"),
        ("--train-size", "-5"),
        ("--jpeg", "-1"),
        ("--jpeg", "0"),
        ("--trigger-jitter", "-2"),
        ("--seed", "-1"),
        ("--implant-epochs", "-1"),
        ("--implant-weight", "nan"),
        ("--implant-weight", "-1"),
    ] {
        let args = ["eval", "--json", json, "--signals", "recurrence", "--implant", flag, value, "--epochs", "1"];
        let output = poisoncam(&args);
        let err = stderr(&output);
        assert!(!output.status.success(), "{flag} {value} was accepted");
        assert!(!err.contains("panicked"), "{flag} {value}: {err}");
        assert!(err.contains("error"), "{flag} {value}: {err}");
    }
    for (flag, value) in [
        ("--rate", "nan"),
        ("--rate", "2"),
        ("--images", "-3"),
        ("--images", "0"),
        ("--images", "20000"),
        ("--epochs", "-1"),
    ] {
        let output = poisoncam(&["demo", "--out", dir.path().to_str().unwrap(), flag, value]);
        assert!(!output.status.success(), "demo {flag} {value} was accepted");
        assert!(!stderr(&output).contains("panicked"), "demo {flag} {value}: {}", stderr(&output));
    }
}

#[test]
fn bad_configs_are_clear_errors_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for i in 0..10 {
        png(&data.join(format!("{i}.png")), 28, i);
    }
    let out = dir.path().join("out");
    let run = |config: &str| {
        let path = dir.path().join("config.json");
        std::fs::write(&path, config).unwrap();
        let output = poisoncam(&[
            "scan",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--config",
            path.to_str().unwrap(),
        ]);
        assert!(!output.status.success(), "{config} was accepted");
        let err = stderr(&output);
        assert!(!err.contains("panicked"), "{err}");
        err
    };
    assert!(run(r#"{"detector": {"kmeans": {"kk": 3}}}"#).contains("unknown setting `detector.kmeans.kk`"));
    assert!(run(r#"{"warm_start": {"epochs": "ten"}}"#).contains("config.json"));
    assert!(run(r#"{"detector": {"kmeans": {"k": 0}}}"#).contains("detector.kmeans.k"));
    assert!(run(r#"{"detector": {"classifier": {"ensemble": 0}}}"#).contains("detector.classifier.ensemble"));
    assert!(run(r#"{"detector": {"localizer": "PatchSearch", "stages": {"paste": false}}}"#).contains("paste test"));
    assert!(run("not json at all").contains("config.json"));
    // K larger than the images: named before the warm start.
    let mut config = PoisonFilterConfig::new();
    config.detector.kmeans.k = Some(50);
    let err = run(&burn::config::config_to_json(&config));
    assert!(err.contains("detector.kmeans.k = 50"), "{err}");
    assert!(!out.join("removed.jsonl").exists(), "nothing was written");
}

/// A small masking config, so that a warm start takes seconds.
fn masking_config(path: &Path, cache: &Path) {
    let mut config = PoisonFilterConfig::new();
    config.warm_start.epochs = 3;
    config.warm_start.batch_size = 32;
    config.warm_start.cache_dir = Some(cache.to_path_buf());
    config.detector.kmeans.k = Some(4);
    config.detector.paste.references = 16;
    config.detector.paste.probes_per_cluster = 2;
    config.write(path).unwrap();
}

/// 240 images, one in twenty with a pasted 6×6 checker, so that the removal log is not empty.
fn masking_data(data: &Path) {
    for i in 0..240u32 {
        let path = data.join(format!("{:02}/{i:03}.png", i % 4));
        png(&path, 28, i);
        if i % 20 == 0 {
            let mut img = image::open(&path).unwrap().to_luma8();
            let (x0, y0) = (2 + (i / 20) % 18, 3 + (i / 7) % 17);
            for y in 0..6 {
                for x in 0..6 {
                    img.put_pixel(x0 + x, y0 + y, image::Luma([if (x + y) % 2 == 0 { 255 } else { 0 }]));
                }
            }
            img.save(&path).unwrap();
        }
    }
}

/// Whether some cache entry under `cache` has finished `epochs` epochs.
fn cached_epochs(cache: &Path, epochs: u64) -> bool {
    let Ok(entries) = std::fs::read_dir(cache) else { return false };
    entries.flatten().any(|e| {
        std::fs::read_to_string(e.path().join("meta.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|m| m["epochs"] == epochs)
    })
}

#[test]
fn a_killed_scan_resumes_to_the_same_removals_and_concurrent_scans_agree() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    masking_data(&data);
    let scan_with = |cache: &Path, out: &Path| {
        let config = dir.path().join(format!("{}.json", cache.file_name().unwrap().to_string_lossy()));
        masking_config(&config, cache);
        let mut command = Command::new(env!("CARGO_BIN_EXE_poisoncam"));
        command.args(["scan", data.to_str().unwrap(), "--out", out.to_str().unwrap(), "--config"]).arg(&config);
        command
    };
    let whole = dir.path().join("whole");
    let output = scan_with(&dir.path().join("cache-whole"), &whole).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let expected = std::fs::read(whole.join("removed.jsonl")).unwrap();
    assert!(read_outputs(&whole).removed.len() >= 12, "the pasted checkers are removed");

    // Killed at several points (during the warm start, and later), then run to the end.
    let cache = dir.path().join("cache-killed");
    let resumed = dir.path().join("resumed");
    for after in [1500, 4000] {
        let mut child = scan_with(&cache, &resumed).stdout(std::process::Stdio::null()).spawn().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(after));
        let _ = child.kill(); // SIGKILL on unix
        let _ = child.wait();
    }
    // Once the warm start is cached whole, the run is detecting: kill it there too.
    let mut child = scan_with(&cache, &resumed).stdout(std::process::Stdio::null()).spawn().unwrap();
    while !cached_epochs(&cache, 3) && child.try_wait().unwrap().is_none() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let output = scan_with(&cache, &resumed).output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(std::fs::read(resumed.join("removed.jsonl")).unwrap(), expected, "byte-identical after kills");

    // Two scans at once on one fresh cache: both finish, with the same result.
    let shared = dir.path().join("cache-shared");
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let first = scan_with(&shared, &a).stdout(std::process::Stdio::null()).spawn().unwrap();
    let second = scan_with(&shared, &b).stdout(std::process::Stdio::null()).spawn().unwrap();
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert_eq!(std::fs::read(a.join("removed.jsonl")).unwrap(), expected);
    assert_eq!(std::fs::read(b.join("removed.jsonl")).unwrap(), expected);
}
