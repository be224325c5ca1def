//! Data formats: ImageNet-style folder trees (decoding JPEG/PNG/BMP/WebP, class pinning, corrupt
//! and too-small files skipped and named by the loader), IDX (plain and gzip), CIFAR-10/100 binary
//! batches, joined datasets, the trainer's data specs and `engine predict`. Every file is made here.

mod common;
use common::{run_engine, scratch_dir};

use engine::data::augment::{AugmentConfig, Preprocess};
use engine::data::cifar::{self, CifarKind};
use engine::data::idx::{encode_idx, load_mnist_style};
use engine::data::{ArrayDataset, ConcatDataset, Dataset, ImageFolder, Loader, LoaderConfig};
use engine::train::{trainer, DataSpec, Recipe, TrainConfig};
use std::path::Path;
use std::sync::Arc;

/// A w×h RGB image with a colour gradient depending on `seed`.
fn rgb(w: u32, h: u32, seed: u8) -> image::RgbImage {
    image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 7) as u8 ^ seed, (y * 5) as u8, seed.wrapping_mul(31)])
    })
}

fn save(img: &image::RgbImage, path: &Path) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// `<root>/cat` and `<root>/dog` with images in several formats (and non-image files to ignore).
fn make_tree(root: &Path, seed: u8) {
    save(&rgb(40, 30, seed), &root.join("cat/a.png"));
    save(&rgb(33, 47, seed + 1), &root.join("cat/b.JPEG"));
    save(&rgb(20, 20, seed + 2), &root.join("cat/sub/c.bmp"));
    save(&rgb(24, 36, seed + 3), &root.join("dog/d.webp"));
    save(&rgb(50, 25, seed + 4), &root.join("dog/e.jpg"));
    std::fs::write(root.join("dog/notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("README"), "ignored").unwrap();
}

fn eval_augment(size: usize) -> AugmentConfig {
    AugmentConfig {
        size,
        preprocess: Preprocess::CenterCrop { resize: size },
        flip: false,
        jitter: 0.0,
        hue: false,
        lighting: 0.0,
        mean: vec![0.5],
        std: vec![0.25],
    }
}

fn loader(ds: Arc<dyn Dataset>, batch: usize, augment: AugmentConfig) -> Arc<Loader> {
    Arc::new(
        Loader::new(
            ds,
            LoaderConfig {
                batch_size: batch,
                shuffle: true,
                drop_last: false,
                seed: 1,
                augment,
                mixup_alpha: 0.0,
                mixup_on_host: true,
                prefetch: 2,
            },
        )
        .unwrap(),
    )
}

#[test]
fn image_folder_lists_sorted_classes_and_decodes_every_format() {
    let root = scratch_dir("folder");
    make_tree(&root, 10);
    let ds = ImageFolder::new(&root, None).unwrap();
    assert_eq!(ds.class_names(), ["cat", "dog"]);
    assert_eq!(ds.len(), 5, "txt and README files are not images");
    assert_eq!(ds.channels(), 3);
    let names: Vec<String> = (0..ds.len()).map(|i| ds.describe(i)).collect();
    assert!(names[0].ends_with("cat/a.png") && names[1].ends_with("cat/b.JPEG"));
    assert!(names[2].ends_with("cat/sub/c.bmp"), "{names:?}");
    assert_eq!(
        (0..5).map(|i| ds.label(i)).collect::<Vec<_>>(),
        [0, 0, 0, 1, 1]
    );
    let sizes = [(40, 30), (33, 47), (20, 20), (24, 36), (50, 25)];
    for (i, &(w, h)) in sizes.iter().enumerate() {
        let img = ds.get(i).unwrap();
        assert_eq!(
            (img.width, img.height, img.channels),
            (w, h, 3),
            "{}",
            names[i]
        );
        assert_eq!(img.data.len(), w * h * 3);
    }
    // Lossless formats decode exactly.
    let png = ds.get(0).unwrap();
    let src = rgb(40, 30, 10);
    assert_eq!(png.data, src.into_raw());
    // A grayscale file comes out as RGB.
    let gray = image::GrayImage::from_fn(12, 10, |x, _| image::Luma([x as u8 * 20]));
    gray.save(root.join("dog/gray.png")).unwrap();
    let ds = ImageFolder::new(&root, None).unwrap();
    let i = (0..ds.len())
        .find(|&i| ds.describe(i).ends_with("gray.png"))
        .unwrap();
    let img = ds.get(i).unwrap();
    assert_eq!(img.channels, 3);
    assert_eq!(&img.data[3..6], &[20, 20, 20]);
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn folder_errors_name_the_problem() {
    let base = scratch_dir("folder-errors");
    let err = |p: &Path| ImageFolder::new(p, None).unwrap_err().to_string();
    let missing = base.join("nope");
    let e = err(&missing);
    assert!(e.contains("does not exist") && e.contains("nope"), "{e}");
    let empty = base.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("stray.jpg"), b"x").unwrap();
    let e = err(&empty);
    assert!(
        e.contains("is empty") && e.contains("no class sub-folders"),
        "{e}"
    );
    let hollow = base.join("hollow");
    save(&rgb(8, 8, 0), &hollow.join("cat/a.png"));
    std::fs::create_dir_all(hollow.join("dog")).unwrap();
    std::fs::write(hollow.join("dog/readme.txt"), "x").unwrap();
    let e = err(&hollow);
    assert!(e.contains("dog") && e.contains("has no images"), "{e}");
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn class_lists_can_be_pinned_to_the_training_classes() {
    let base = scratch_dir("pin");
    make_tree(&base.join("train"), 0);
    save(&rgb(30, 30, 1), &base.join("val/dog/x.png"));
    let train = ImageFolder::new(&base.join("train"), None).unwrap();
    let val = ImageFolder::new(&base.join("val"), Some(train.class_names())).unwrap();
    assert_eq!(val.class_names(), ["cat", "dog"]);
    assert_eq!(val.len(), 1);
    assert_eq!(val.label(0), 1, "dog keeps the training label 1");
    // Unpinned, the lone class would be label 0: pinning is what keeps labels consistent.
    assert_eq!(
        ImageFolder::new(&base.join("val"), None).unwrap().label(0),
        0
    );
    save(&rgb(30, 30, 1), &base.join("val/bird/y.png"));
    let e = ImageFolder::new(&base.join("val"), Some(train.class_names()))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("class mismatch") && e.contains("\"bird\"") && e.contains("val"),
        "{e}"
    );
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn corrupt_and_too_small_images_are_skipped_counted_and_named() {
    let root = scratch_dir("corrupt");
    make_tree(&root, 3);
    std::fs::write(
        root.join("cat/broken.jpg"),
        b"\xff\xd8\xff\xe0 definitely not a jpeg",
    )
    .unwrap();
    std::fs::write(root.join("dog/empty.png"), b"").unwrap();
    save(&rgb(6, 40, 9), &root.join("dog/tiny.png"));
    let ds = ImageFolder::new(&root, None).unwrap().with_min_side(16);
    assert_eq!(ds.len(), 8);
    let idx = |name: &str| {
        (0..ds.len())
            .find(|&i| ds.describe(i).ends_with(name))
            .unwrap()
    };
    let e = ds.get(idx("broken.jpg")).unwrap_err().to_string();
    assert!(e.contains("broken.jpg") && e.contains("corrupt"), "{e}");
    let e = ds.get(idx("tiny.png")).unwrap_err().to_string();
    assert!(
        e.contains("tiny.png") && e.contains("too small") && e.contains("6×40"),
        "{e}"
    );

    let l = loader(Arc::new(ds), 3, eval_augment(16));
    let batches: Vec<_> = l.epoch(0, 0).collect();
    assert_eq!(batches.len(), 3);
    let kept: usize = batches.iter().map(|b| b.labels.len()).sum();
    let skipped: Vec<&String> = batches.iter().flat_map(|b| &b.skipped).collect();
    assert_eq!(kept, 5);
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    for name in ["broken.jpg", "empty.png", "tiny.png"] {
        let hits: Vec<_> = skipped.iter().filter(|s| s.contains(name)).collect();
        assert_eq!(hits.len(), 1, "{name} named once: {skipped:?}");
        assert_eq!(
            hits[0].matches(name).count(),
            1,
            "the path is not repeated: {}",
            hits[0]
        );
    }
    for b in &batches {
        assert_eq!(b.images.len(), b.labels.len() * 3 * 16 * 16);
        assert!(b.images.iter().all(|v| v.is_finite()));
    }
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn idx_files_plain_and_gzip() {
    use std::io::Write;
    let dir = scratch_dir("idx");
    let imgs: Vec<u8> = (0..4 * 5 * 6).map(|i| i as u8).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&encode_idx(&[4, 5, 6], &imgs)).unwrap();
    std::fs::write(dir.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(
        dir.join("train-labels-idx1-ubyte"),
        encode_idx(&[4], &[3, 1, 0, 2]),
    )
    .unwrap();
    let ds = ArrayDataset {
        data: load_mnist_style(&dir, "train", &["a", "b", "c", "d"]).unwrap(),
    };
    assert_eq!((ds.len(), ds.channels(), ds.label(0)), (4, 1, 3));
    let img = ds.get(1).unwrap();
    assert_eq!((img.width, img.height), (6, 5));
    assert_eq!(img.data, imgs[30..60]);
    std::fs::remove_dir_all(&dir).ok();
}

/// `n` random-ish 32×32×3 HWC images.
fn cifar_images(n: usize, seed: usize) -> Vec<u8> {
    (0..n * 3072)
        .map(|i| ((i * 13 + seed) % 251) as u8)
        .collect()
}

#[test]
fn cifar10_binary_batches() {
    let base = scratch_dir("cifar10");
    let dir = base.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&dir).unwrap();
    let mut all_images = Vec::new();
    let mut all_labels = Vec::new();
    for b in 1..=5 {
        let imgs = cifar_images(3, b);
        let labels: Vec<usize> = (0..3).map(|i| (i + b) % 10).collect();
        std::fs::write(
            dir.join(format!("data_batch_{b}.bin")),
            cifar::encode_records(&imgs, &labels, None),
        )
        .unwrap();
        all_images.extend(imgs);
        all_labels.extend(labels);
    }
    std::fs::write(
        dir.join("test_batch.bin"),
        cifar::encode_records(&cifar_images(2, 99), &[9, 0], None),
    )
    .unwrap();
    // The parent folder is accepted, and the record layout on disk is CHW.
    let train = cifar::load_cifar(&base, true).unwrap();
    assert_eq!(train.kind, CifarKind::Cifar10);
    assert_eq!(train.len(), 15);
    assert_eq!(train.labels, all_labels);
    assert_eq!(
        train.class_names()[0],
        "airplane",
        "built-in names without meta"
    );
    let raw = std::fs::read(dir.join("data_batch_1.bin")).unwrap();
    let img = train.get(0).unwrap();
    assert_eq!((img.width, img.height, img.channels), (32, 32, 3));
    // Pixel (x=5, y=2): R at 1 + 2*32+5, G one plane later, B two planes later.
    let p = 2 * 32 + 5;
    assert_eq!(
        &img.data[p * 3..p * 3 + 3],
        &[raw[1 + p], raw[1 + 1024 + p], raw[1 + 2048 + p]]
    );
    assert_eq!(img.data, all_images[..3072]);
    std::fs::write(
        dir.join("batches.meta.txt"),
        "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n",
    )
    .unwrap();
    let test = cifar::load_cifar(&dir, false).unwrap();
    assert_eq!((test.len(), test.label(0)), (2, 9));
    assert_eq!(test.class_names()[1], "car");
    // Errors: a truncated batch, a missing batch, no CIFAR at all.
    std::fs::write(dir.join("data_batch_3.bin"), &raw[..5000]).unwrap();
    let e = cifar::load_cifar(&dir, true).unwrap_err().to_string();
    assert!(
        e.contains("data_batch_3.bin") && e.contains("3073-byte"),
        "{e}"
    );
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    let e = cifar::load_cifar(&dir, true).unwrap_err().to_string();
    assert!(e.contains("missing data_batch_3.bin"), "{e}");
    let e = cifar::load_cifar(&base.join("nothing"), true)
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not exist"), "{e}");
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn cifar100_uses_fine_labels() {
    let dir = scratch_dir("cifar100");
    let imgs = cifar_images(4, 7);
    let fine = [42, 7, 99, 0];
    let coarse = [1, 2, 3, 4];
    std::fs::write(
        dir.join("train.bin"),
        cifar::encode_records(&imgs, &fine, Some(&coarse)),
    )
    .unwrap();
    std::fs::write(
        dir.join("test.bin"),
        cifar::encode_records(&imgs[..3072], &[5], Some(&[0])),
    )
    .unwrap();
    let names: Vec<String> = (0..100).map(|i| format!("fine{i}")).collect();
    std::fs::write(dir.join("fine_label_names.txt"), names.join("\n")).unwrap();
    let train = cifar::load_cifar(&dir, true).unwrap();
    assert_eq!(train.kind, CifarKind::Cifar100);
    assert_eq!(train.labels, fine);
    assert_eq!(train.class_names().len(), 100);
    assert_eq!(train.class_names()[42], "fine42");
    assert_eq!(train.get(2).unwrap().data, imgs[2 * 3072..3 * 3072]);
    assert_eq!(cifar::load_cifar(&dir, false).unwrap().labels, [5]);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn concat_joins_roots_with_the_same_classes() {
    let base = scratch_dir("concat");
    make_tree(&base.join("in"), 0);
    make_tree(&base.join("sin"), 100);
    save(&rgb(20, 20, 5), &base.join("sin/dog/extra.png"));
    let part = |name: &str| -> (String, Arc<dyn Dataset>) {
        let p = base.join(name);
        (
            p.display().to_string(),
            Arc::new(ImageFolder::new(&p, None).unwrap()),
        )
    };
    let joined = ConcatDataset::new(vec![part("in"), part("sin")]).unwrap();
    assert_eq!(joined.len(), 11);
    assert_eq!(joined.class_names(), ["cat", "dog"]);
    assert!(joined.describe(4).contains("/in/dog/"));
    assert!(joined.describe(5).contains("/sin/cat/"));
    assert!(joined.describe(10).contains("/sin/dog/"));
    assert_eq!(joined.label(5), 0);
    assert_eq!(joined.label(10), 1);
    assert_eq!(joined.get(10).unwrap().width, 20, "sin/dog/extra.png");
    // The loader's shuffle covers the union.
    let l = loader(Arc::new(joined), 4, eval_augment(8));
    let mut order = l.order(0);
    assert_ne!(order, (0..11).collect::<Vec<_>>());
    order.sort();
    assert_eq!(order, (0..11).collect::<Vec<_>>());
    let n: usize = l.epoch(0, 0).map(|b| b.labels.len()).sum();
    assert_eq!(n, 11);

    save(&rgb(20, 20, 5), &base.join("odd/bird/x.png"));
    save(&rgb(20, 20, 5), &base.join("odd/cat/x.png"));
    let e = ConcatDataset::new(vec![part("in"), part("odd")])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("class mismatch")
            && e.contains("odd")
            && e.contains("\"bird\"")
            && e.contains("\"dog\""),
        "{e}"
    );
    assert!(ConcatDataset::new(vec![]).is_err());
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn trainer_builds_folder_and_cifar_specs_with_clear_errors() {
    let base = scratch_dir("specs");
    make_tree(&base.join("in"), 0);
    make_tree(&base.join("sin"), 50);
    make_tree(&base.join("val"), 20);
    let mut cfg = TrainConfig::imagenet(
        Recipe::Baseline,
        vec![base.join("in"), base.join("sin")],
        vec![base.join("val")],
        18,
        base.join("run"),
    );
    assert_eq!(cfg.model.width, 64);
    assert_eq!(cfg.augment.size, 224);
    assert_eq!(cfg.eval_resize, 256);
    assert_eq!(
        cfg.augment.preprocess,
        Preprocess::RandomResizedCrop { min_area: 0.08 }
    );
    let (train, val) = trainer::datasets(&cfg).unwrap();
    assert_eq!((train.len(), val.len()), (10, 5));
    let filled = trainer::with_data_classes(&cfg, train.class_names()).unwrap();
    assert_eq!(filled.model.num_classes, 2);
    assert_eq!(filled.class_names, ["cat", "dog"]);
    // A limit spreads over the classes of sorted folder data.
    cfg.train_limit = 4;
    let (train, _) = trainer::datasets(&cfg).unwrap();
    let labels: Vec<usize> = (0..train.len()).map(|i| train.label(i)).collect();
    assert!(labels.contains(&0) && labels.contains(&1), "{labels:?}");

    // A run configured for other classes.
    let mut other = filled.clone();
    other.class_names = vec!["cat".into(), "cow".into()];
    let e = trainer::with_data_classes(&other, &filled.class_names)
        .unwrap_err()
        .to_string();
    assert!(e.contains("class mismatch") && e.contains("cow"), "{e}");

    // Validation classes outside the training ones.
    save(&rgb(20, 20, 1), &base.join("val/eel/x.png"));
    let e = trainer::datasets(&cfg).err().unwrap().to_string();
    assert!(e.contains("eel") && e.contains("class mismatch"), "{e}");
    std::fs::remove_dir_all(base.join("val/eel")).unwrap();
    // Missing and empty roots.
    cfg.data = DataSpec::ImageFolder {
        train: vec![base.join("missing")],
        val: vec![base.join("val")],
        min_side: 0,
    };
    let e = trainer::datasets(&cfg).err().unwrap().to_string();
    assert!(e.contains("missing") && e.contains("does not exist"), "{e}");
    cfg.data = DataSpec::ImageFolder {
        train: vec![],
        val: vec![base.join("val")],
        min_side: 0,
    };
    let e = trainer::datasets(&cfg).err().unwrap().to_string();
    assert!(e.contains("--train-dir"), "{e}");

    // CIFAR through the spec.
    let cdir = base.join("cifar");
    std::fs::create_dir_all(&cdir).unwrap();
    std::fs::write(
        cdir.join("train.bin"),
        cifar::encode_records(&cifar_images(2, 0), &[1, 3], Some(&[0, 0])),
    )
    .unwrap();
    std::fs::write(
        cdir.join("test.bin"),
        cifar::encode_records(&cifar_images(1, 0), &[3], Some(&[0])),
    )
    .unwrap();
    let c = TrainConfig::cifar(Recipe::Baseline, cdir, 18, 8, base.join("run2"));
    let (train, val) = trainer::datasets(&c).unwrap();
    assert_eq!((train.len(), val.len(), train.channels()), (2, 1, 3));
    assert_eq!(train.class_names().len(), 100);
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn configs_without_the_new_fields_still_load() {
    let c = TrainConfig::fashion_mnist(Recipe::Mixup, "/data".into(), 18, 16, "out".into());
    let mut v = serde_json::to_value(&c).unwrap();
    v.as_object_mut().unwrap().remove("class_names");
    let back: TrainConfig = serde_json::from_value(v).unwrap();
    assert_eq!(back, c);
    let folder: DataSpec =
        serde_json::from_str(r#"{"ImageFolder": {"train": ["/a", "/b"], "val": ["/c"]}}"#).unwrap();
    assert_eq!(
        folder,
        DataSpec::ImageFolder {
            train: vec!["/a".into(), "/b".into()],
            val: vec!["/c".into()],
            min_side: 0
        }
    );
}

/// A tiny folder run end to end: train (a corrupt file is skipped and logged), then `engine eval`
/// and `engine predict` on the checkpoint.
#[test]
fn folder_training_eval_and_predict_end_to_end() {
    let base = scratch_dir("e2e");
    make_tree(&base.join("train"), 0);
    make_tree(&base.join("val"), 40);
    std::fs::write(
        base.join("train/dog/zz-broken.png"),
        b"\x89PNG\r\n\x1a\n garbage",
    )
    .unwrap();
    let out = base.join("run");
    let mut cfg = TrainConfig::imagenet(
        Recipe::Baseline,
        vec![base.join("train")],
        vec![base.join("val")],
        18,
        out.clone(),
    );
    cfg.model.width = 4;
    cfg.augment.size = 32;
    cfg.eval_resize = 36;
    cfg.batch_size = 3;
    cfg.epochs = 1;
    cfg.warmup_epochs = 0.0;
    let summary = trainer::train(&cfg, engine::Device::Cpu, &Default::default()).unwrap();
    assert_eq!(summary.history.len(), 1);
    assert_eq!(summary.history[0].skipped_samples, 1);
    let log = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
    assert!(
        log.contains("skipped_sample") && log.contains("zz-broken.png"),
        "{log}"
    );
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved.class_names, ["cat", "dog"]);
    assert_eq!(saved.model.num_classes, 2);

    let ckpt = out.join("checkpoint.safetensors");
    let (ok, stdout, stderr) = run_engine(&["eval", ckpt.to_str().unwrap()]);
    assert!(ok && stdout.contains("top-1"), "{stdout}{stderr}");
    let img = base.join("val/cat/a.png");
    let missing = base.join("nope.jpg");
    let (ok, stdout, stderr) = run_engine(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        img.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert!(!ok, "an unreadable image makes predict fail at the end");
    assert!(stdout.contains("a.png"), "{stdout}");
    assert!(
        stdout.contains("1. cat") || stdout.contains("1. dog"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2. ") && !stdout.contains("3. "),
        "2 classes: {stdout}"
    );
    let total: f64 = stdout
        .lines()
        .filter_map(|l| l.trim().strip_suffix('%'))
        .map(|l| l.split_whitespace().last().unwrap().parse::<f64>().unwrap())
        .sum();
    assert!((total - 100.0).abs() < 0.1, "softmax sums to 1: {stdout}");
    assert!(stderr.contains("nope.jpg"), "{stderr}");
    std::fs::remove_dir_all(&base).ok();
}

/// The CLI: `--data-format cifar --data DIR` trains and evaluates; the default format
/// (Fashion-MNIST IDX) trains a 1-channel model whose `predict` takes colour or gray images and
/// names Fashion-MNIST classes; folder flags are checked.
#[test]
fn cli_formats_and_grayscale_predict() {
    use std::io::Write;
    let base = scratch_dir("cli");
    let cdir = base.join("cifar");
    std::fs::create_dir_all(&cdir).unwrap();
    for b in 1..=5 {
        std::fs::write(
            cdir.join(format!("data_batch_{b}.bin")),
            cifar::encode_records(&cifar_images(2, b), &[b % 10, (b + 3) % 10], None),
        )
        .unwrap();
    }
    std::fs::write(
        cdir.join("test_batch.bin"),
        cifar::encode_records(&cifar_images(2, 0), &[0, 1], None),
    )
    .unwrap();
    let out = base.join("run-cifar");
    let (s, o) = (cdir.to_str().unwrap(), out.to_str().unwrap());
    let common = [
        "--epochs",
        "1",
        "--width",
        "4",
        "--batch-size",
        "5",
        "--quiet",
        "--recipe",
        "baseline",
    ];
    let mut args = vec!["train", "--data-format", "cifar", "--data", s, "--out", o];
    args.extend(common);
    let (ok, stdout, stderr) = run_engine(&args);
    assert!(ok && stdout.contains("final: top-1"), "{stdout}{stderr}");
    let ckpt = out.join("checkpoint.safetensors");
    let (ok, stdout, stderr) = run_engine(&["eval", ckpt.to_str().unwrap()]);
    assert!(ok && stdout.contains("top-1"), "{stdout}{stderr}");
    let cfg: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg.model.in_channels, 3);
    assert_eq!(cfg.class_names[9], "truck");

    // Fashion-MNIST-style IDX files (gzip) in the default format.
    let fdir = base.join("fmnist");
    std::fs::create_dir_all(&fdir).unwrap();
    for (split, n) in [("train", 10), ("t10k", 4)] {
        let imgs: Vec<u8> = (0..n * 784).map(|i| (i * 3 % 256) as u8).collect();
        let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&encode_idx(&[n, 28, 28], &imgs)).unwrap();
        std::fs::write(
            fdir.join(format!("{split}-images-idx3-ubyte.gz")),
            gz.finish().unwrap(),
        )
        .unwrap();
        std::fs::write(
            fdir.join(format!("{split}-labels-idx1-ubyte")),
            encode_idx(&[n], &labels),
        )
        .unwrap();
    }
    let out = base.join("run-fm");
    let mut args = vec![
        "train",
        "--data",
        fdir.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend(common);
    // Channels-last batches (on the CPU one conversion per batch; the flag lands in config.json).
    args.push("--channels-last");
    let (ok, stdout, stderr) = run_engine(&args);
    assert!(ok, "{stdout}{stderr}");
    let config = std::fs::read_to_string(out.join("config.json")).unwrap();
    assert!(
        config.contains("\"channels_last\": true"),
        "config.json: {config}"
    );
    let ckpt = out.join("checkpoint.safetensors");
    let color = base.join("shoe.png");
    save(&rgb(60, 40, 3), &color);
    let gray = base.join("shoe-gray.jpg");
    image::GrayImage::from_fn(28, 28, |x, y| image::Luma([(x * y) as u8]))
        .save(&gray)
        .unwrap();
    let (ok, stdout, stderr) = run_engine(&[
        "predict",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        color.to_str().unwrap(),
        gray.to_str().unwrap(),
    ]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout.matches("5. ").count(),
        2,
        "top-5 for each image: {stdout}"
    );
    assert!(
        ["T-shirt/top", "Trouser", "Ankle boot", "Sneaker"]
            .iter()
            .any(|c| stdout.contains(c)),
        "Fashion-MNIST names: {stdout}"
    );

    // Folder flags.
    let (ok, _, stderr) = run_engine(&["train", "--data-format", "folder", "--train-dir", "/x"]);
    assert!(!ok && stderr.contains("--val-dir"), "{stderr}");
    let (ok, _, stderr) = run_engine(&[
        "train",
        "--train-dir",
        base.join("nothing").to_str().unwrap(),
        "--val-dir",
        "/x",
        "--out",
        base.join("run-bad").to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("does not exist"), "{stderr}");
    std::fs::remove_dir_all(&base).ok();
}
