//! `engine stylize` and `engine::stylize::run_stylize` end to end on the real test images: the
//! photos of tests/data/photos as content (in two class folders), the textures of
//! tests/data/textures as styles, at small sizes (content 64 → crop 56, styles 56) with a tiny
//! seeded random stylizer saved as safetensors and loaded back through `Stylizer::load`, so the
//! real loading path is used.
//!
//! Invariants checked: outputs mirror the content tree at the crop size; the manifest lists every
//! content once with a style from the style folder; the style assignment and the pixels depend only
//! on the seed and the file (not on the batch size, a rerun, an interruption or a deleted output);
//! an output equals `Stylizer::stylize` on the same preprocessed tensors bit for bit (CPU); bad
//! contents are skipped and listed, bad styles excluded; missing inputs give errors that say what
//! to do.

mod common;
use common::{engine, save_random_stylizer};

use engine::data::folder::decode_image;
use engine::models::Stylizer;
use engine::stylize::preprocess::{batch_tensor, prepare_content, prepare_style};
use engine::stylize::{
    run_stylize, ManifestFormat, OutputFormat, StylizeConfig, StylizeOptions, StylizeReport,
};
use engine::viz::{tensor_to_rgb8, PixelRange};
use engine::{DType, Device};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const WIDTH: usize = 4;

fn data(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(dir)
}

/// A scratch folder with `content/{a,b}` (the photos, four each), `styles/` (the textures) and the
/// weights of a random stylizer; removed on drop.
struct Setup {
    root: PathBuf,
}

impl Setup {
    fn new(test: &str) -> Setup {
        let root =
            std::env::temp_dir().join(format!("engine-stylize-{test}-{}", std::process::id()));
        std::fs::remove_dir_all(&root).ok();
        let photos = sorted_files(&data("photos"));
        assert_eq!(photos.len(), 8);
        for (i, p) in photos.iter().enumerate() {
            let class = if i < 4 { "a" } else { "b" };
            let dir = root.join("content").join(class);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(p, dir.join(p.file_name().unwrap())).unwrap();
        }
        std::fs::create_dir_all(root.join("styles")).unwrap();
        for p in sorted_files(&data("textures")) {
            std::fs::copy(&p, root.join("styles").join(p.file_name().unwrap())).unwrap();
        }
        save_random_stylizer(&root, 7, WIDTH);
        Setup { root }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    fn stylizer(&self) -> Stylizer {
        Stylizer::load(
            self.path("vgg.safetensors"),
            self.path("decoder.safetensors"),
            DType::F32,
            Device::Cpu,
        )
        .unwrap()
    }

    fn config(&self, out: &str) -> StylizeConfig {
        let mut c = StylizeConfig::new(self.path("content"), self.path("styles"), self.path(out));
        c.content_size = 64;
        c.crop = 56;
        c.style_size = 56;
        c.batch_size = 2;
        c
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        std::fs::remove_dir_all(&self.root).ok();
    }
}

fn sorted_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn run(cfg: &StylizeConfig, s: &Stylizer) -> StylizeReport {
    run_stylize(cfg, s, Device::Cpu, &StylizeOptions::default()).unwrap()
}

/// The image lines of a JSON-lines manifest: content → (style, output).
fn manifest(out: &Path) -> BTreeMap<String, (String, String)> {
    let text = std::fs::read_to_string(out.join("manifest.jsonl")).unwrap();
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["kind"] == "image" {
            assert_eq!(v["alpha"], 1.0);
            let content = v["content"].as_str().unwrap().to_string();
            let entry = (
                v["style"].as_str().unwrap().to_string(),
                v["output"].as_str().unwrap().to_string(),
            );
            assert!(
                m.insert(content.clone(), entry).is_none(),
                "{content} listed twice"
            );
        }
    }
    m
}

/// Every output file's bytes, by relative name.
fn outputs(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut m = BTreeMap::new();
    for class in ["a", "b"]
        .map(|c| out.join(c))
        .iter()
        .filter(|d| d.is_dir())
    {
        for p in sorted_files(class) {
            let rel = p.strip_prefix(out).unwrap().to_str().unwrap().to_string();
            m.insert(rel, std::fs::read(&p).unwrap());
        }
    }
    m
}

fn content_names() -> Vec<String> {
    sorted_files(&data("photos"))
        .iter()
        .enumerate()
        .map(|(i, p)| {
            format!(
                "{}/{}",
                if i < 4 { "a" } else { "b" },
                p.file_name().unwrap().to_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn stylizes_every_image_into_a_mirrored_tree_and_reruns_skip_everything() {
    let t = Setup::new("tree");
    let s = t.stylizer();
    let cfg = t.config("out");
    let r = run(&cfg, &s);
    assert_eq!(
        (r.contents, r.styles, r.done, r.skipped_existing),
        (8, 5, 8, 0)
    );
    assert!(r.skipped_bad.is_empty() && r.excluded_styles.is_empty() && !r.interrupted);

    let m = manifest(&cfg.out_dir);
    assert_eq!(m.keys().cloned().collect::<Vec<_>>(), content_names());
    let styles: Vec<String> = sorted_files(&t.path("styles"))
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    for (content, (style, output)) in &m {
        assert!(styles.contains(style), "{style}");
        assert_eq!(output, &content.replace(".jpg", ".png"));
        let img = image::open(cfg.out_dir.join(output)).unwrap();
        assert_eq!((img.width(), img.height()), (56, 56), "{output}");
    }
    let files = outputs(&cfg.out_dir);
    assert_eq!(files.len(), 8);
    let distinct: std::collections::BTreeSet<&Vec<u8>> = files.values().collect();
    assert_eq!(distinct.len(), 8, "every output differs");
    let text = std::fs::read_to_string(cfg.out_dir.join("manifest.jsonl")).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(
        (last["kind"].as_str(), last["done"].as_u64()),
        (Some("summary"), Some(8))
    );

    // A rerun skips everything and lists nothing twice.
    let again = run(&cfg, &s);
    assert_eq!(
        (again.done, again.skipped_existing, again.recorded),
        (0, 8, 0)
    );
    assert_eq!(manifest(&cfg.out_dir), m);
    assert_eq!(outputs(&cfg.out_dir), files);

    // Same seed, another batch size and folder: the same styles and the same bytes.
    let mut other = t.config("out-batch3");
    other.batch_size = 3;
    run(&other, &s);
    assert_eq!(manifest(&other.out_dir), m);
    assert_eq!(outputs(&other.out_dir), files);

    // Another seed draws other styles.
    let mut seeded = t.config("out-seed1");
    seeded.seed = 1;
    run(&seeded, &s);
    assert_ne!(manifest(&seeded.out_dir), m);
}

#[test]
fn interrupted_or_deleted_outputs_are_redone_identically() {
    let t = Setup::new("resume");
    let s = t.stylizer();
    let full = t.config("full");
    run(&full, &s);
    let (want_files, want_manifest) = (outputs(&full.out_dir), manifest(&full.out_dir));

    // Stopped after one batch (as Ctrl-C would), then resumed.
    let cfg = t.config("out");
    let stopped = run_stylize(
        &cfg,
        &s,
        Device::Cpu,
        &StylizeOptions {
            stop_after_batches: Some(1),
            ..StylizeOptions::default()
        },
    )
    .unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.done, 2);
    assert_eq!(outputs(&cfg.out_dir).len(), 2);
    let resumed = run(&cfg, &s);
    assert_eq!((resumed.done, resumed.skipped_existing), (6, 2));
    assert_eq!(outputs(&cfg.out_dir), want_files);
    assert_eq!(manifest(&cfg.out_dir), want_manifest);

    // A deleted output is recreated, alone and identical.
    let gone = cfg.out_dir.join("b/rocket.png");
    std::fs::remove_file(&gone).unwrap();
    let r = run(&cfg, &s);
    assert_eq!((r.done, r.skipped_existing), (1, 7));
    assert_eq!(outputs(&cfg.out_dir), want_files);

    // An output whose manifest line was lost (a crash between the two) is listed again.
    let path = cfg.out_dir.join("manifest.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: String = text
        .lines()
        .filter(|l| !l.contains("\"a/chelsea.jpg\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(kept.len() < text.len());
    std::fs::write(&path, kept + "{\"kind\":\"ima").unwrap(); // and a torn last line
    let r = run(&cfg, &s);
    assert_eq!((r.done, r.recorded), (0, 1));
    assert_eq!(manifest(&cfg.out_dir), want_manifest);
}

#[test]
fn output_equals_stylize_on_the_same_preprocessed_tensors() {
    let t = Setup::new("direct");
    let s = t.stylizer();
    let cfg = t.config("out");
    run(&cfg, &s);
    let m = manifest(&cfg.out_dir);
    let mut checked = 0;
    for (content, (style, output)) in m.iter().take(3) {
        let c = prepare_content(
            &decode_image(&cfg.content_dir.join(content), 3).unwrap(),
            64,
            56,
        )
        .unwrap();
        let st = prepare_style(&decode_image(&cfg.styles_dir.join(style), 3).unwrap(), 56);
        let ct = batch_tensor(&[&c], DType::F32, Device::Cpu).unwrap();
        let stt = batch_tensor(&[&st], DType::F32, Device::Cpu).unwrap();
        let y = engine::no_grad(|| s.stylize(&ct, &[(stt, 1.0)], 1.0, false)).unwrap();
        let want = tensor_to_rgb8(&y, 0, PixelRange::ZeroOne).unwrap();
        let got = image::open(cfg.out_dir.join(output)).unwrap().into_rgb8();
        assert_eq!(
            (got.width() as usize, got.height() as usize),
            (want.width, want.height)
        );
        assert!(
            got.into_raw() == want.data,
            "{output} differs from Stylizer::stylize"
        );
        checked += 1;
    }
    assert_eq!(checked, 3);
}

#[test]
fn bad_images_are_skipped_and_listed_and_bad_styles_excluded() {
    let t = Setup::new("bad");
    std::fs::write(
        t.path("content/b/garbage.jpg"),
        b"not a JPEG at all, just bytes",
    )
    .unwrap();
    image::RgbImage::from_fn(20, 40, |x, y| image::Rgb([x as u8 * 9, y as u8 * 5, 77]))
        .save(t.path("content/a/tiny.png"))
        .unwrap();
    std::fs::write(
        t.path("styles/broken.jpg"),
        [0xffu8, 0xd8, 0xff, 0x00, 0x13, 0x37],
    )
    .unwrap();
    let s = t.stylizer();
    let cfg = t.config("out");
    let r = run(&cfg, &s);
    assert_eq!((r.contents, r.done, r.styles), (10, 8, 5));
    let bad: Vec<&Path> = r.skipped_bad.iter().map(|b| b.path.as_path()).collect();
    assert_eq!(bad.len(), 2, "{:?}", r.skipped_bad);
    assert!(bad.contains(&t.path("content/b/garbage.jpg").as_path()));
    assert!(bad.contains(&t.path("content/a/tiny.png").as_path()));
    assert!(r.skipped_bad.iter().any(|b| b.reason.contains("too small")));
    assert_eq!(r.excluded_styles.len(), 1);
    assert_eq!(r.excluded_styles[0].path, t.path("styles/broken.jpg"));
    let listed = std::fs::read_to_string(cfg.out_dir.join("skipped.txt")).unwrap();
    for name in ["garbage.jpg", "tiny.png", "broken.jpg"] {
        assert!(listed.contains(name), "{listed}");
    }
    let m = manifest(&cfg.out_dir);
    assert_eq!(m.len(), 8);
    assert!(m.values().all(|(style, _)| style != "broken.jpg"));
    assert!(!cfg.out_dir.join("b/garbage.png").exists());
    // Bad contents are tried (and listed) again on a rerun; nothing else is redone.
    let again = run(&cfg, &s);
    assert_eq!(
        (again.done, again.skipped_existing, again.skipped_bad.len()),
        (0, 8, 2)
    );
}

#[test]
fn config_errors_say_what_to_do() {
    let t = Setup::new("errors");
    let s = t.stylizer();
    let err =
        |cfg: &StylizeConfig| match run_stylize(cfg, &s, Device::Cpu, &StylizeOptions::default()) {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        };
    let mut cfg = t.config("out");
    cfg.styles_dir = t.path("no-such-styles");
    let e = err(&cfg);
    assert!(
        e.contains("style folder") && e.contains("does not exist") && e.contains("--styles"),
        "{e}"
    );
    let mut inside = t.config("out");
    inside.out_dir = t.path("content/a/stylized");
    assert!(err(&inside).contains("inside --content"));
    std::fs::create_dir_all(t.path("empty")).unwrap();
    std::fs::write(t.path("empty/x.jpg"), b"junk").unwrap();
    let mut junk = t.config("out");
    junk.styles_dir = t.path("empty");
    let e = err(&junk);
    assert!(e.contains("no usable style images"), "{e}");
}

#[test]
fn the_command_writes_jpeg_and_a_csv_manifest_and_reports_missing_inputs() {
    let t = Setup::new("cli");
    let base = |out: &str| {
        let mut c = engine();
        c.arg("stylize")
            .arg("--content")
            .arg(t.path("content"))
            .arg("--styles")
            .arg(t.path("styles"))
            .arg("--out")
            .arg(t.path(out))
            .args(["--content-size", "64", "--crop", "56", "--style-size", "56"])
            .args(["--device", "cpu", "--quiet"]);
        c
    };
    let out = base("out")
        .arg("--vgg")
        .arg(t.path("vgg.safetensors"))
        .arg("--decoder")
        .arg(t.path("decoder.safetensors"))
        .args(["--format", "jpeg", "--quality", "80", "--manifest", "csv"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("done 8, skipped existing 0, skipped bad 0"),
        "{stdout}"
    );
    let csv = std::fs::read_to_string(t.path("out/manifest.csv")).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "content,style,output,alpha");
    assert_eq!(lines.len(), 10, "{csv}");
    assert!(lines[9].starts_with("# summary: 8 done"), "{csv}");
    let img = image::open(t.path("out/a/astronaut.jpg")).unwrap();
    assert_eq!((img.width(), img.height()), (56, 56));

    // The library run with the same settings draws the same styles.
    let mut cfg = t.config("lib");
    cfg.format = OutputFormat::Jpeg(80);
    cfg.manifest = ManifestFormat::Csv;
    run(&cfg, &t.stylizer());
    let lib = std::fs::read_to_string(t.path("lib/manifest.csv")).unwrap();
    assert_eq!(lib.lines().take(9).collect::<Vec<_>>(), lines[..9]);

    let missing = base("out2")
        .arg("--vgg")
        .arg(t.path("nope/vgg_normalised.safetensors"))
        .arg("--decoder")
        .arg(t.path("decoder.safetensors"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success());
    assert!(stderr.contains("convert_adain_weights.py"), "{stderr}");

    let no_styles = engine()
        .arg("stylize")
        .arg("--content")
        .arg(t.path("content"))
        .arg("--styles")
        .arg(t.path("nope"))
        .arg("--out")
        .arg(t.path("out3"))
        .args(["--random-weights", "2", "--device", "cpu"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&no_styles.stderr);
    assert!(!no_styles.status.success());
    assert!(
        stderr.contains("style folder") && stderr.contains("does not exist"),
        "{stderr}"
    );
}
