//! `engine stylize-idx` and `engine::stylize::idx_set::stylize_idx` end to end: a small IDX dataset
//! of seeded random shapes (two splits, 12×12, the Fashion-MNIST layout) re-painted with the real
//! textures of tests/data/textures by a tiny seeded random stylizer at 16².
//!
//! Invariants checked: the output is a valid IDX dataset that the Fashion-MNIST loader reads, with
//! the labels unchanged and one style per image in `<split>-styles.txt`; every image equals the
//! documented pipeline (grey → RGB → 16² → `Stylizer::stylize` with its listed style → mean of RGB
//! → back to 12×12) recomputed here from the public pieces; the result does not depend on the batch
//! size, the chunking or an interruption; weight files count by their bytes, not their paths; other
//! settings on the same folder, bad sizes and missing data are refused with errors that say what
//! to do.

mod common;
use common::{engine, save_random_stylizer};

use engine::data::idx::{encode_idx, load_mnist_style, read_idx};
use engine::data::Image;
use engine::models::Stylizer;
use engine::stylize::idx_set::{stylize_idx, IdxStylizeConfig, IdxStylizeOptions, JOB_FILE};
use engine::stylize::preprocess::{batch_tensor, prepare_style, resize};
use engine::stylize::random_stylizer;
use engine::viz::{tensor_to_rgb8, PixelRange};
use engine::{DType, Device};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};

const SIDE: usize = 12;
const SIZE: usize = 16;
const CLASSES: [&str; 3] = ["a", "b", "c"];

/// A scratch folder with `data/` (train: 11 images, t10k: 5) and `styles/` (the test textures).
struct Setup {
    root: PathBuf,
}

/// Seeded images: a bright rectangle of random size, place and level on a dark noisy background.
fn shapes(n: usize, seed: u64) -> (Vec<u8>, Vec<u8>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut images = Vec::with_capacity(n * SIDE * SIDE);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let (x0, y0) = (rng.random_range(0..5), rng.random_range(0..5));
        let (x1, y1) = (
            rng.random_range(x0 + 3..SIDE),
            rng.random_range(y0 + 3..SIDE),
        );
        let level = rng.random_range(120..=255u8);
        for y in 0..SIDE {
            for x in 0..SIDE {
                let inside = (x0..x1).contains(&x) && (y0..y1).contains(&y);
                images.push(if inside {
                    level
                } else {
                    rng.random_range(0..30)
                });
            }
        }
        labels.push(rng.random_range(0..CLASSES.len() as u8));
    }
    (images, labels)
}

impl Setup {
    fn new(test: &str) -> Setup {
        let root =
            std::env::temp_dir().join(format!("engine-stylize-idx-{test}-{}", std::process::id()));
        std::fs::remove_dir_all(&root).ok();
        let data = root.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for (split, n, seed) in [("train", 11, 1), ("t10k", 5, 2)] {
            let (images, labels) = shapes(n, seed);
            std::fs::write(
                data.join(format!("{split}-images-idx3-ubyte")),
                encode_idx(&[n, SIDE, SIDE], &images),
            )
            .unwrap();
            std::fs::write(
                data.join(format!("{split}-labels-idx1-ubyte")),
                encode_idx(&[n], &labels),
            )
            .unwrap();
        }
        let styles = root.join("styles");
        std::fs::create_dir_all(&styles).unwrap();
        let textures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/textures");
        for e in std::fs::read_dir(textures).unwrap() {
            let p = e.unwrap().path();
            std::fs::copy(&p, styles.join(p.file_name().unwrap())).unwrap();
        }
        Setup { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `engine stylize-idx` on this setup's t10k split (16², CPU, batch 2) into `out`; weights
    /// and anything else are the caller's to add.
    fn command(&self, out: &str) -> std::process::Command {
        let mut c = engine();
        c.args(["stylize-idx", "--size", "16", "--device", "cpu", "--quiet"])
            .args(["--splits", "t10k", "--batch-size", "2"])
            .arg("--data")
            .arg(self.path("data"))
            .arg("--styles")
            .arg(self.path("styles"))
            .arg("--out")
            .arg(self.path(out));
        c
    }

    fn config(&self, out: &str) -> IdxStylizeConfig {
        IdxStylizeConfig {
            data_dir: self.path("data"),
            styles_dir: self.path("styles"),
            out_dir: self.path(out),
            splits: vec!["train".into(), "t10k".into()],
            size: SIZE,
            alpha: 0.8,
            seed: 3,
            limit: None,
            chunk: 4,
            weights: "random width 4 seed 7".into(),
        }
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

fn stylizer() -> Stylizer {
    random_stylizer(7, 4, DType::F32, Device::Cpu).unwrap()
}

fn opts(batch_size: usize) -> IdxStylizeOptions<'static> {
    IdxStylizeOptions {
        batch_size,
        ..Default::default()
    }
}

fn read(path: &Path) -> (Vec<usize>, Vec<u8>) {
    let a = read_idx(path).unwrap();
    (a.dims, a.data)
}

/// The documented pipeline for one image, from the public pieces.
fn reference(s: &Stylizer, grey: &[u8], style_file: &Path, alpha: f64) -> Vec<u8> {
    let rgb = Image {
        width: SIDE,
        height: SIDE,
        channels: 3,
        data: grey.iter().flat_map(|&v| [v; 3]).collect(),
    };
    let content = resize(&rgb, SIZE, SIZE);
    let style = prepare_style(
        &engine::data::folder::decode_image(style_file, 3).unwrap(),
        SIZE,
    );
    let c = batch_tensor(&[&content], DType::F32, Device::Cpu).unwrap();
    let st = batch_tensor(&[&style], DType::F32, Device::Cpu).unwrap();
    let out = engine::no_grad(|| s.stylize(&c, &[(st, 1.0)], alpha, false)).unwrap();
    let o = tensor_to_rgb8(&out, 0, PixelRange::ZeroOne).unwrap();
    let mean: Vec<u8> = o
        .data
        .chunks(3)
        .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32 + 1) / 3) as u8)
        .collect();
    let g = image::GrayImage::from_raw(SIZE as u32, SIZE as u32, mean).unwrap();
    image::imageops::resize(
        &g,
        SIDE as u32,
        SIDE as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw()
}

#[test]
fn writes_an_idx_dataset_that_follows_the_documented_pipeline() {
    let t = Setup::new("pipeline");
    let s = stylizer();
    let cfg = t.config("out");
    let r = stylize_idx(&cfg, &s, DType::F32, Device::Cpu, &opts(3)).unwrap();
    assert_eq!((r.stylized, r.resumed, r.styles), (16, 0, 5));
    assert_eq!(r.finished_splits, ["train", "t10k"]);
    assert!(!r.interrupted);
    let out = t.path("out");
    assert!(out.join(JOB_FILE).is_file());
    assert!(
        !out.join(".partial").exists(),
        "chunks are removed at the end"
    );
    for (split, n) in [("train", 11), ("t10k", 5)] {
        let (dims, images) = read(&out.join(format!("{split}-images-idx3-ubyte")));
        assert_eq!(dims, [n, SIDE, SIDE]);
        let (_, labels) = read(&out.join(format!("{split}-labels-idx1-ubyte")));
        let (_, orig_labels) = read(&t.path("data").join(format!("{split}-labels-idx1-ubyte")));
        assert_eq!(labels, orig_labels, "labels are copied unchanged");
        let (_, orig) = read(&t.path("data").join(format!("{split}-images-idx3-ubyte")));
        let styles: Vec<String> = std::fs::read_to_string(out.join(format!("{split}-styles.txt")))
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(styles.len(), n);
        let p = SIDE * SIDE;
        for i in 0..n {
            let want = reference(
                &s,
                &orig[i * p..(i + 1) * p],
                &t.path("styles").join(&styles[i]),
                cfg.alpha,
            );
            assert_eq!(&images[i * p..(i + 1) * p], &want[..], "{split} image {i}");
            assert_ne!(&images[i * p..(i + 1) * p], &orig[i * p..(i + 1) * p]);
        }
        let distinct: std::collections::BTreeSet<_> = styles.iter().collect();
        assert!(
            distinct.len() > 1,
            "styles are drawn, not fixed: {styles:?}"
        );
    }
    // The Fashion-MNIST loader (what `engine train --data` uses) reads it.
    let d = load_mnist_style(&out, "train", &CLASSES).unwrap();
    assert_eq!((d.len(), d.height, d.width), (11, SIDE, SIDE));
    // A finished folder is not redone.
    let again = stylize_idx(&cfg, &s, DType::F32, Device::Cpu, &opts(3)).unwrap();
    assert_eq!((again.stylized, again.resumed), (0, 0));
}

#[test]
fn batch_size_chunks_and_interruptions_change_nothing() {
    let t = Setup::new("resume");
    let s = stylizer();
    stylize_idx(&t.config("whole"), &s, DType::F32, Device::Cpu, &opts(16)).unwrap();
    let mut cfg = t.config("parts");
    cfg.chunk = 3;
    let first = IdxStylizeOptions {
        batch_size: 1,
        stop_after_chunks: Some(2),
        ..Default::default()
    };
    let r = stylize_idx(&cfg, &s, DType::F32, Device::Cpu, &first).unwrap();
    assert!(r.interrupted);
    assert_eq!((r.stylized, r.kept_in_chunks), (6, 6));
    let parts = t.path("parts");
    assert!(!parts.join("train-images-idx3-ubyte").exists());
    assert!(parts.join(".partial/train-00001.bin").is_file());
    // A torn chunk (a crash while writing outside write_atomic's rename) is redone.
    std::fs::write(parts.join(".partial/train-00001.bin"), [1u8; 5]).unwrap();
    let r = stylize_idx(&cfg, &s, DType::F32, Device::Cpu, &opts(2)).unwrap();
    assert!(!r.interrupted);
    assert_eq!((r.resumed, r.stylized), (3, 13));
    for f in [
        "train-images-idx3-ubyte",
        "t10k-images-idx3-ubyte",
        "train-styles.txt",
        "t10k-styles.txt",
    ] {
        assert_eq!(
            std::fs::read(t.path("whole").join(f)).unwrap(),
            std::fs::read(parts.join(f)).unwrap(),
            "{f}"
        );
    }
    // A different seed draws different styles.
    let mut other = t.config("seed4");
    other.seed = 4;
    other.splits = vec!["train".into()];
    stylize_idx(&other, &s, DType::F32, Device::Cpu, &opts(16)).unwrap();
    assert_ne!(
        std::fs::read(t.path("whole").join("train-styles.txt")).unwrap(),
        std::fs::read(t.path("seed4").join("train-styles.txt")).unwrap()
    );
}

#[test]
fn refuses_mixed_settings_bad_sizes_and_missing_data() {
    let t = Setup::new("refusals");
    let s = stylizer();
    let err = |cfg: &IdxStylizeConfig| {
        stylize_idx(cfg, &s, DType::F32, Device::Cpu, &opts(4))
            .expect_err("refused")
            .to_string()
    };
    let mut cfg = t.config("out");
    cfg.limit = Some(3);
    stylize_idx(
        &cfg,
        &s,
        DType::F32,
        Device::Cpu,
        &IdxStylizeOptions {
            batch_size: 4,
            stop_after_chunks: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let mut changed = cfg.clone();
    changed.alpha = 1.0;
    let e = err(&changed);
    assert!(
        e.contains("other settings") && e.contains("alpha: 0.8 there, 1.0 now"),
        "{e}"
    );
    // Another pool of styles changes every draw: refused, naming it.
    std::fs::copy(t.path("styles/brick.jpg"), t.path("styles/brick-copy.jpg")).unwrap();
    let e = err(&cfg);
    assert!(
        e.contains("style_files: \"5 files") && e.contains("\"6 files"),
        "{e}"
    );
    std::fs::remove_file(t.path("styles/brick-copy.jpg")).unwrap();
    // The same settings with the split list changed and the folder named differently resume.
    let mut same = cfg.clone();
    same.splits = vec!["train".into()];
    same.out_dir = t.path("./out");
    stylize_idx(&same, &s, DType::F32, Device::Cpu, &opts(4)).unwrap();
    // Outputs without the settings file could be anything: refused.
    std::fs::remove_file(t.path("out").join(JOB_FILE)).unwrap();
    let e = err(&cfg);
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains(JOB_FILE),
        "{e}"
    );
    let mut twice = t.config("g");
    twice.splits = vec!["train".into(), "train".into()];
    assert!(err(&twice).contains("named twice"));
    let mut bad = t.config("b");
    bad.size = 20;
    assert!(err(&bad).contains("multiple of 8"), "{}", err(&bad));
    bad.size = 8;
    assert!(err(&bad).contains("at least 16"));
    let mut bad = t.config("c");
    bad.alpha = 1.5;
    assert!(err(&bad).contains("--alpha"));
    let mut bad = t.config("d");
    bad.data_dir = t.path("nowhere");
    let e = err(&bad);
    assert!(
        e.contains("train-images-idx3-ubyte") && e.contains("apt-get"),
        "{e}"
    );
    let mut bad = t.config("e");
    bad.styles_dir = t.path("no-styles");
    assert!(err(&bad).contains("install_style_textures"));
    let mut bad = t.config("f");
    bad.out_dir = t.path("data");
    assert!(err(&bad).contains("replace the originals"));
}

#[test]
fn the_command_runs_and_explains_itself() {
    let t = Setup::new("cli");
    let out = t
        .command("out")
        .args(["--random-weights", "4"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("stylized 5 images"), "{stdout}");
    assert!(stdout.contains("complete splits: t10k"), "{stdout}");
    let (dims, _) = read(&t.path("out/t10k-images-idx3-ubyte"));
    assert_eq!(dims, [5, SIDE, SIDE]);
    // The flags `engine stylize` shares: --fp16 is refused on the CPU before anything is read.
    for cmd in ["stylize-idx", "stylize"] {
        let out = engine()
            .args([
                cmd, "--fp16", "--device", "cpu", "--styles", "nowhere", "--out", "nowhere",
            ])
            .args(["--content", "nowhere"].iter().filter(|_| cmd == "stylize"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("--fp16 needs a CUDA device"),
            "{cmd}: {stderr}"
        );
    }
    let help = engine().args(["stylize-idx", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("engine train --data OUT") && help.contains("resumes"),
        "{help}"
    );
}

#[test]
fn weight_files_are_known_by_their_bytes_not_their_paths() {
    let t = Setup::new("weight-files");
    save_random_stylizer(&t.path("w"), 7, 4);
    let run = |weights: &str| {
        let out = t
            .command("out")
            .arg("--vgg")
            .arg(t.path(weights).join("vgg.safetensors"))
            .arg("--decoder")
            .arg(t.path(weights).join("decoder.safetensors"))
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, text) = run("w");
    assert!(ok && text.contains("stylized 5 images"), "{text}");
    // The same files through a symlinked folder, and a copy elsewhere: the same job, nothing to do.
    std::os::unix::fs::symlink(t.path("w"), t.path("w-link")).unwrap();
    std::fs::create_dir_all(t.path("w-copy")).unwrap();
    for f in ["vgg.safetensors", "decoder.safetensors"] {
        std::fs::copy(t.path("w").join(f), t.path("w-copy").join(f)).unwrap();
    }
    for folder in ["w-link", "w-copy"] {
        let (ok, text) = run(folder);
        assert!(
            ok && text.contains("stylized 0 images") && text.contains("complete splits: t10k"),
            "{folder}: {text}"
        );
    }
    // Settings from before weights were known by their bytes named the files: the same files are
    // recognised (and recorded anew), other files are not.
    let job = t.path("out").join(JOB_FILE);
    let with_weights = |w: String| {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&job).unwrap()).unwrap();
        v["weights"] = serde_json::Value::String(w);
        std::fs::write(&job, serde_json::to_string_pretty(&v).unwrap()).unwrap();
    };
    let by_path = |dir: &str| {
        format!(
            "{} + {}",
            t.path(dir).join("vgg.safetensors").display(),
            t.path(dir).join("decoder.safetensors").display()
        )
    };
    let current = std::fs::read_to_string(&job).unwrap();
    with_weights(by_path("w"));
    let (ok, text) = run("w-copy");
    assert!(ok && text.contains("recorded by path"), "{text}");
    assert_eq!(std::fs::read_to_string(&job).unwrap(), current);
    save_random_stylizer(&t.path("w-other"), 8, 4);
    with_weights(by_path("w-other"));
    let (ok, text) = run("w");
    assert!(!ok && text.contains("other settings"), "{text}");
    std::fs::write(&job, &current).unwrap();
    // The decoder rewritten in place (as a decoder trained further would be): another job.
    std::fs::copy(
        t.path("w-other/decoder.safetensors"),
        t.path("w/decoder.safetensors"),
    )
    .unwrap();
    let (ok, text) = run("w");
    assert!(
        !ok && text.contains("other settings") && text.contains("weights: \"encoder"),
        "{text}"
    );
}

#[test]
fn a_style_that_fails_to_decode_is_left_out_of_the_draw() {
    let t = Setup::new("broken-style");
    // A PNG whose header reads (so it passes the startup check) but whose pixels are cut off.
    let png = t.path("styles/zz-broken.png");
    image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8 * 3, y as u8 * 3, 90]))
        .save(&png)
        .unwrap();
    let bytes = std::fs::read(&png).unwrap();
    std::fs::write(&png, &bytes[..60]).unwrap();
    let r = stylize_idx(
        &t.config("out"),
        &stylizer(),
        DType::F32,
        Device::Cpu,
        &opts(4),
    )
    .unwrap();
    assert_eq!((r.styles, r.excluded_styles), (6, 1));
    for split in ["train", "t10k"] {
        let list =
            std::fs::read_to_string(t.path("out").join(format!("{split}-styles.txt"))).unwrap();
        assert!(!list.contains("zz-broken"), "{list}");
    }
}
