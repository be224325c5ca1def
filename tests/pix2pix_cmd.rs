//! `engine pix2pix` end to end on the real photographs of tests/data/photos (8 images):
//! - `make-pairs` for each task writes 2:1 PNG pairs with a seeded 6/2 split, deterministic content
//!   (gray2color's A is B's luminance; edges and blur are the library's functions of B) and refuses
//!   to overwrite without `--force`;
//! - training at 32 px (ngf 8, ndf 8, n_layers 2, batch 2, 36 iterations) lowers G_L1 and writes
//!   charts, sample grids, config and checkpoint; `pix2pix test` (the binary) then writes per-image
//!   outputs, one grid per image and metrics JSON whose L1 equals the last validation L1;
//! - a run stopped mid-epoch and resumed reproduces an uninterrupted run bit for bit, at 64 px where
//!   the U-Net has a dropout level (weights, BN statistics, Adam state and every logged loss);
//! - the perceptual term from a tiny engine checkpoint, from torchvision weights and from AdaIN's
//!   VGG (`vgg:FILE`, four tap weights, grey outputs as grey RGB), and the errors for perceptual
//!   files of the wrong kind or channel count and tap weights of the wrong number;
//! - clear errors for missing or empty folders, images that are not 2:1, and a diverging loss.

mod common;
use common::{engine, fresh_path};

use engine::models::{ResNet, ResNetConfig, VggEncoder};
use engine::nn::init::Init;
use engine::nn::named_params;
use engine::nn::state::{load_tensors, save_tensors};
use engine::optim::{DynamicLossScaler, Sgd, SgdConfig};
use engine::pix2pix::config::{PerceptualSpec, PerceptualTerm, Pix2PixConfig};
use engine::pix2pix::pairs::{luma, task_input};
use engine::pix2pix::{
    make_pairs, psnr, run_test, GenMode, MakePairsConfig, PairSource, PairTask, TestOptions,
};
use engine::train::checkpoint::{self, RunState};
use engine::train::{Recipe, RunOptions, TrainConfig};
use engine::viz::jsonl::read_records;
use engine::{DType, Device, Tensor};
use image::RgbImage;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos")
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn pairs(task: PairTask, size: usize, out: &Path) {
    make_pairs(&MakePairsConfig {
        src: photos(),
        src_format: PairSource::Photos,
        limit: 0,
        out: out.to_path_buf(),
        task,
        size,
        val_fraction: 0.2,
        seed: 0,
        force: false,
    })
    .unwrap();
}

/// The 32 px test network: ngf 8, ndf 8, n_layers 2, batch 2, 3 iterations an epoch.
fn tiny(data: &Path, out: PathBuf, epochs: usize) -> Pix2PixConfig {
    let mut c = Pix2PixConfig::new(data.to_path_buf(), out, 32);
    c.generator.ngf = 8;
    c.discriminator.ndf = 8;
    c.discriminator.n_layers = 2;
    c.batch_size = 2;
    (c.epochs, c.epochs_decay) = (epochs, 0);
    c.sample_every = 0;
    c
}

fn quiet() -> RunOptions {
    RunOptions {
        resume: false,
        show_progress: false,
        stop_after_steps: None,
    }
}

fn halves(path: &Path) -> (RgbImage, RgbImage) {
    let ab = image::open(path).unwrap().to_rgb8();
    let (w, h) = ab.dimensions();
    assert_eq!(w, 2 * h, "{}", path.display());
    let a = image::imageops::crop_imm(&ab, 0, 0, h, h).to_image();
    let b = image::imageops::crop_imm(&ab, h, 0, h, h).to_image();
    (a, b)
}

fn pngs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "png"))
        .collect();
    v.sort();
    v
}

fn step_values(dir: &Path, key: &str) -> Vec<f64> {
    read_records(&dir.join("metrics.jsonl"))
        .unwrap()
        .iter()
        .filter(|r| r["kind"] == "step")
        .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn total_variation(img: &RgbImage) -> u64 {
    let (w, h) = img.dimensions();
    let mut tv = 0u64;
    for y in 0..h {
        for x in 1..w {
            tv +=
                (img.get_pixel(x, y)[1] as i64 - img.get_pixel(x - 1, y)[1] as i64).unsigned_abs();
        }
    }
    tv
}

#[test]
fn make_pairs_writes_deterministic_two_to_one_pairs_for_every_task() {
    let root = fresh_path("pairs");
    let mut splits = Vec::new();
    for task in [
        PairTask::Gray2Color,
        PairTask::Edges2Photo,
        PairTask::Blur2Sharp,
    ] {
        let out = root.join(format!("{task:?}"));
        pairs(task, 32, &out);
        let (train, val) = (pngs(&out.join("train")), pngs(&out.join("val")));
        assert_eq!(
            (train.len(), val.len()),
            (6, 2),
            "{task:?}: 20% of 8 photos in val/"
        );
        splits.push(
            val.iter()
                .map(|p| p.file_name().unwrap().to_owned())
                .collect::<Vec<_>>(),
        );
        for p in train.iter().chain(&val) {
            let (a, b) = halves(p);
            assert_eq!(b.dimensions(), (32, 32));
            match task {
                PairTask::Gray2Color => {
                    for (pa, pb) in a.pixels().zip(b.pixels()) {
                        let l = luma(pb[0], pb[1], pb[2]);
                        assert_eq!(pa.0, [l, l, l], "{}: A is B's luminance", p.display());
                    }
                }
                PairTask::Edges2Photo => {
                    assert_eq!(a, task_input(task, &b));
                    assert!(a.pixels().all(|q| q[0] == q[1] && q[1] == q[2]));
                }
                PairTask::Blur2Sharp => {
                    assert_eq!(a, task_input(task, &b));
                    assert!(total_variation(&a) < total_variation(&b), "{}", p.display());
                }
            }
        }
        // Same inputs, same bytes; an existing output is only replaced with --force.
        let before: Vec<Vec<u8>> = train.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let mut cfg = MakePairsConfig {
            src: photos(),
            src_format: PairSource::Photos,
            limit: 0,
            out: out.clone(),
            task,
            size: 32,
            val_fraction: 0.2,
            seed: 0,
            force: false,
        };
        let e = make_pairs(&cfg).unwrap_err().to_string();
        assert!(e.contains("--force"), "{e}");
        cfg.force = true;
        make_pairs(&cfg).unwrap();
        let after: Vec<Vec<u8>> = pngs(&out.join("train"))
            .iter()
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(before, after, "{task:?} is deterministic");
    }
    assert!(
        splits.windows(2).all(|w| w[0] == w[1]),
        "one seed, one split: {splits:?}"
    );
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn make_pairs_reads_the_fashion_mnist_test_split() {
    let root = fresh_path("pairs-fmnist");
    let data = root.join("idx");
    engine::testing::write_striped_idx(&data, 5, 30);
    let idx = engine::data::idx::load_mnist_style(
        &data,
        "t10k",
        &engine::data::idx::FASHION_MNIST_CLASSES,
    )
    .unwrap();
    let out = root.join("pairs");
    let s = make_pairs(&MakePairsConfig {
        src: data.clone(),
        src_format: PairSource::FashionMnist,
        limit: 12,
        out: out.clone(),
        task: PairTask::Edges2Photo,
        size: 28,
        val_fraction: 0.25,
        seed: 0,
        force: false,
    })
    .unwrap();
    assert_eq!((s.train.len(), s.val.len()), (9, 3));
    let mut names: Vec<String> = s.train.iter().chain(&s.val).cloned().collect();
    names.sort();
    let want: Vec<String> = (0..12).map(|i| format!("t10k_{i:05}")).collect();
    assert_eq!(names, want, "the first 12 test images, named by index");
    // At the images' own size, B is the test image itself, gray in R, G and B.
    for name in &s.train {
        let i: usize = name[5..].parse().unwrap();
        let (_, b) = halves(&out.join("train").join(format!("{name}.png")));
        let src = &idx.images[i * 784..(i + 1) * 784];
        for (p, px) in b.pixels().enumerate() {
            assert_eq!([px[0], px[1], px[2]], [src[p]; 3], "{name} pixel {p}");
        }
    }
    // A missing folder is an error that names it.
    let e = make_pairs(&MakePairsConfig {
        src: root.join("nowhere"),
        src_format: PairSource::FashionMnist,
        limit: 0,
        out: root.join("p2"),
        task: PairTask::Blur2Sharp,
        size: 28,
        val_fraction: 0.2,
        seed: 0,
        force: false,
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("nowhere"), "{e}");
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn psnr_matches_a_hand_computed_value() {
    // [0, 1] images 0.5 and 0.25 apart on half of the pixels each: MSE (0.25 + 0.0625)/4 → 11.0721 dB.
    let target = [1.0f32, 1.0, -1.0, -1.0];
    let output = [0.0f32, 1.0, -0.5, -1.0];
    let want = -10.0 * ((0.25f64 + 0.0625) / 4.0).log10();
    assert!((psnr(&output, &target) - want).abs() < 1e-9);
    assert!((want - 11.0721).abs() < 1e-4);
    assert_eq!(psnr(&target, &target), engine::pix2pix::PSNR_CAP_DB);
}

#[test]
fn training_lowers_l1_and_test_writes_outputs_grids_and_metrics() {
    let data = fresh_path("train-data");
    pairs(PairTask::Gray2Color, 32, &data);
    let out = fresh_path("train-run");
    let mut cfg = tiny(&data, out.clone(), 12);
    cfg.lr = 2e-3; // 36 iterations: fast enough to see learning, still stable
    cfg.sample_every = 12;
    let s = engine::pix2pix::train(&cfg, Device::Cpu, &quiet()).unwrap();
    assert_eq!(
        (s.iterations, s.history.len(), s.interrupted),
        (36, 12, false)
    );
    let l1 = step_values(&out, "G_L1");
    assert_eq!(l1.len(), 36);
    let (first, last) = (
        l1[..5].iter().sum::<f64>() / 5.0,
        l1[31..].iter().sum::<f64>() / 5.0,
    );
    assert!(
        last < 0.8 * first,
        "G_L1 first five {first:.4}, last five {last:.4}"
    );
    for key in ["G_GAN", "D_real", "D_fake"] {
        assert!(
            step_values(&out, key)
                .iter()
                .all(|v| v.is_finite() && *v > 0.0),
            "{key}"
        );
    }
    let last_epoch = s.history.last().unwrap();
    assert!(last_epoch.val_l1 < s.history[0].val_l1, "val L1 improves");
    assert!(last_epoch.val_psnr.is_finite() && last_epoch.val_psnr > 5.0);
    for f in ["loss_g.png", "loss_d.png", "val_l1.png", "val_psnr.png"] {
        let img = image::open(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        assert!(img.width() > 100, "{f}");
    }
    assert_eq!(
        pngs(&out.join("samples")).len(),
        3,
        "a sample grid every 12 iterations"
    );
    let grid = image::open(out.join("samples/iter_0000012.png")).unwrap();
    assert!(
        grid.width() > 3 * 32 && grid.height() > 2 * 32,
        "3 columns × 2 val rows"
    );
    assert!(out.join("checkpoint.safetensors").is_file() && out.join("config.json").is_file());

    // `engine pix2pix test` through the binary: a grid per image, outputs, JSON on stdout and disk.
    let test_out = out.join("test-cli");
    let run = engine()
        .args(["pix2pix", "test", "--rows-per-grid", "1", "--checkpoint"])
        .arg(out.join("checkpoint.safetensors"))
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&test_out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(test_out.join("metrics.json")).unwrap()).unwrap();
    for v in [&printed, &written] {
        assert_eq!(v["images"], 2);
        assert_eq!(v["mode"], "reference");
        // The reference test mode is what validation used: the same L1 and PSNR.
        assert!(
            (v["l1"].as_f64().unwrap() - last_epoch.val_l1).abs() < 1e-9,
            "{v}"
        );
        assert!(
            (v["psnr"].as_f64().unwrap() - last_epoch.val_psnr).abs() < 1e-9,
            "{v}"
        );
    }
    assert_eq!(written["per_image"].as_array().unwrap().len(), 2);
    assert_eq!(pngs(&test_out.join("grids")).len(), 2, "one grid per image");
    assert_eq!(pngs(&test_out.join("images")).len(), 2);

    // --eval (BN running statistics), two images a grid, from the library.
    let r = run_test(
        &TestOptions {
            checkpoint: out.join("checkpoint.safetensors"),
            data: data.clone(),
            out: Some(out.join("test-eval")),
            mode: GenMode::Eval,
            direction: None,
            perceptual: None,
            rows_per_grid: 2,
        },
        Device::Cpu,
    )
    .unwrap();
    assert!(r.l1.is_finite() && r.psnr.is_finite() && r.grids.len() == 1);
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(data).ok();
}

#[test]
fn stopped_and_resumed_run_matches_uninterrupted_run_bit_for_bit() {
    // 64 px with 6 U-Net levels: one dropout level, so the masks must resume exactly too.
    let data = fresh_path("resume-data");
    pairs(PairTask::Gray2Color, 64, &data);
    let cfg_for = |out: PathBuf| {
        let mut c = Pix2PixConfig::new(data.clone(), out, 64);
        (
            c.generator.ngf,
            c.discriminator.ndf,
            c.discriminator.n_layers,
        ) = (4, 4, 2);
        (c.batch_size, c.epochs, c.epochs_decay, c.sample_every) = (2, 2, 1, 2);
        c
    };
    let full_cfg = cfg_for(fresh_path("resume-full"));
    assert_eq!(full_cfg.generator.num_downs, 6);
    let g = engine::models::UnetGenerator::new(
        full_cfg.generator.clone(),
        &mut Init::new(0, DType::F32, Device::Cpu),
    )
    .unwrap();
    assert_eq!(g.dropout_levels(), vec![4]);
    let full = engine::pix2pix::train(&full_cfg, Device::Cpu, &quiet()).unwrap();
    assert_eq!(full.iterations, 9);

    let split_cfg = cfg_for(fresh_path("resume-split"));
    let stop = RunOptions {
        stop_after_steps: Some(4),
        ..quiet()
    };
    let stopped = engine::pix2pix::train(&split_cfg, Device::Cpu, &stop).unwrap();
    assert!(stopped.interrupted && stopped.iterations == 4 && stopped.history.len() == 1);
    let resume = RunOptions {
        resume: true,
        ..quiet()
    };
    let resumed = engine::pix2pix::train(&split_cfg, Device::Cpu, &resume).unwrap();
    assert!(!resumed.interrupted && resumed.iterations == 9);

    let (a, _) = load_tensors(
        &full_cfg.out_dir.join("checkpoint.safetensors"),
        Device::Cpu,
    )
    .unwrap();
    let (b, _) = load_tensors(
        &split_cfg.out_dir.join("checkpoint.safetensors"),
        Device::Cpu,
    )
    .unwrap();
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    assert!(a.keys().any(|k| k.starts_with("g/")) && a.keys().any(|k| k.starts_with("opt_d/")));
    for (name, t) in &a {
        assert_eq!(
            t.to_vec_f64().unwrap(),
            b[name].to_vec_f64().unwrap(),
            "{name} differs after resume"
        );
    }
    for key in ["G_GAN", "G_L1", "D_real", "D_fake"] {
        assert_eq!(
            step_values(&full_cfg.out_dir, key),
            step_values(&split_cfg.out_dir, key),
            "{key} per iteration"
        );
    }
    let val = |s: &engine::pix2pix::TrainSummary| s.history.last().map(|h| (h.val_l1, h.val_psnr));
    assert_eq!(val(&full), val(&resumed));
    for d in [full_cfg.out_dir, split_cfg.out_dir, data] {
        std::fs::remove_dir_all(d).ok();
    }
}

/// An `engine train` checkpoint of a tiny 3-channel ResNet-18 (width 4), and one of a 1-channel one.
fn engine_checkpoint(dir: &Path, in_channels: usize) -> PathBuf {
    let mut cfg = TrainConfig::fashion_mnist(Recipe::Baseline, dir.into(), 18, 4, dir.into());
    cfg.model.in_channels = in_channels;
    cfg.augment.mean = vec![0.5; in_channels];
    cfg.augment.std = vec![0.25; in_channels];
    let net = ResNet::new(
        cfg.model.clone(),
        &mut Init::new(3, DType::F32, Device::Cpu),
    )
    .unwrap();
    let opt = Sgd::new(named_params(&net), SgdConfig::default()).unwrap();
    let run = RunState {
        epoch: 1,
        step: 1,
        scaler: DynamicLossScaler::disabled(),
        ..RunState::start(cfg)
    };
    let path = dir.join(format!("resnet_c{in_channels}.safetensors"));
    checkpoint::save(&path, &net, &opt, &run).unwrap();
    path
}

#[test]
fn perceptual_loss_from_engine_checkpoints_and_torchvision_weights() {
    let data = fresh_path("perc-data");
    pairs(PairTask::Blur2Sharp, 32, &data);
    let nets = fresh_path("perc-nets");
    std::fs::create_dir_all(&nets).unwrap();
    let rgb_ckpt = engine_checkpoint(&nets, 3);
    let tv = fixture("tiny_resnet50_torchvision.safetensors");
    for (i, spec) in [
        PerceptualSpec::Checkpoint(rgb_ckpt.clone()),
        PerceptualSpec::Torchvision(tv.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        let out = fresh_path(&format!("perc-run-{i}"));
        let mut cfg = tiny(&data, out.clone(), 1);
        cfg.perceptual = Some(PerceptualTerm {
            net: spec.clone(),
            weight: 10.0,
            taps: vec![1.0, 1.0, 0.5, 0.0, 0.0],
        });
        engine::pix2pix::train(&cfg, Device::Cpu, &quiet()).unwrap();
        let perc = step_values(&out, "G_perc");
        assert_eq!(perc.len(), 3);
        assert!(
            perc.iter().all(|v| v.is_finite() && *v > 0.0),
            "{spec}: {perc:?}"
        );
        // The test command reports the distance under the other network.
        let other = if i == 0 {
            PerceptualSpec::Torchvision(tv.clone())
        } else {
            PerceptualSpec::Checkpoint(rgb_ckpt.clone())
        };
        let r = run_test(
            &TestOptions {
                checkpoint: out.join("checkpoint.safetensors"),
                data: data.clone(),
                out: None,
                mode: GenMode::Reference,
                direction: None,
                perceptual: Some(other.clone()),
                rows_per_grid: 4,
            },
            Device::Cpu,
        )
        .unwrap();
        assert_eq!(r.out, out.join("test"));
        assert!(
            r.perceptual.is_some_and(|p| p.is_finite() && p > 0.0),
            "{other}"
        );
        assert_eq!(r.perceptual_net, Some(other.to_string()));
        if i == 0 {
            // A pix2pix checkpoint is not a perceptual network.
            let mut bad = tiny(&data, fresh_path("perc-bad"), 1);
            bad.perceptual = Some(PerceptualTerm {
                net: PerceptualSpec::Checkpoint(out.join("checkpoint.safetensors")),
                weight: 10.0,
                taps: vec![1.0; 5],
            });
            let e = engine::pix2pix::train(&bad, Device::Cpu, &quiet())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("pix2pix checkpoint"), "{e}");
        }
        std::fs::remove_dir_all(out).ok();
    }
    let err_for = |net: PerceptualSpec| {
        let mut c = tiny(&data, fresh_path("perc-err"), 1);
        c.perceptual = Some(PerceptualTerm {
            net,
            weight: 10.0,
            taps: vec![1.0; 5],
        });
        engine::pix2pix::train(&c, Device::Cpu, &quiet())
            .err()
            .unwrap()
            .to_string()
    };
    let e = err_for(PerceptualSpec::Checkpoint(tv.clone()));
    assert!(
        e.contains("torchvision:"),
        "torchvision weights without the prefix: {e}"
    );
    let e = err_for(PerceptualSpec::Torchvision(rgb_ckpt.clone()));
    assert!(e.contains("without the torchvision: prefix"), "{e}");
    let e = err_for(PerceptualSpec::Checkpoint(engine_checkpoint(&nets, 1)));
    assert!(e.contains("1-channel") && e.contains("3 channel"), "{e}");
    let e = err_for(PerceptualSpec::Checkpoint(nets.join("missing.safetensors")));
    assert!(e.contains("no such file"), "{e}");
    // A torchvision ResNet's architecture is inferred from the file.
    let shapes = engine::nn::state::read_shapes(&tv).unwrap();
    let inferred: ResNetConfig =
        engine::models::pretrained::infer_resnet_config(&shapes, &tv).unwrap();
    assert_eq!((inferred.depth, inferred.in_channels), (50, 3));
    for d in [data, nets, fresh_path("perc-bad"), fresh_path("perc-err")] {
        std::fs::remove_dir_all(d).ok();
    }
}

#[test]
fn perceptual_loss_from_the_adain_vgg() {
    let root = fresh_path("perc-vgg");
    std::fs::create_dir_all(&root).unwrap();
    // A converted-format VGG file (the reference key names) of width 2.
    let net = VggEncoder::new(&mut Init::new(9, DType::F32, Device::Cpu), 2).unwrap();
    let named: Vec<(String, Tensor)> = named_params(&net)
        .into_iter()
        .map(|(k, p)| (k, p.tensor))
        .collect();
    let vgg_file = root.join("vgg.safetensors");
    save_tensors(&vgg_file, &named, &BTreeMap::new()).unwrap();
    let data = root.join("pairs");
    pairs(PairTask::Blur2Sharp, 32, &data);
    let spec = PerceptualSpec::parse(&format!("vgg:{}", vgg_file.display())).unwrap();
    assert_eq!(spec, PerceptualSpec::Vgg(vgg_file.clone()));
    let mut cfg = tiny(&data, root.join("out"), 1);
    cfg.perceptual = Some(PerceptualTerm {
        net: spec.clone(),
        weight: 10.0,
        taps: vec![1.0; 5],
    });
    let e = engine::pix2pix::train(&cfg, Device::Cpu, &quiet())
        .expect_err("five weights for four taps")
        .to_string();
    assert!(
        e.contains("--perc-taps has 5 weights") && e.contains("4 taps"),
        "{e}"
    );
    let mut small = cfg.clone();
    (small.image_size, small.load_size) = (8, 8);
    small.generator.num_downs = 3;
    small.discriminator.n_layers = 1;
    small.perceptual.as_mut().unwrap().taps = vec![1.0; 4];
    let e = engine::pix2pix::train(&small, Device::Cpu, &quiet())
        .expect_err("8 px is too small for relu4_1")
        .to_string();
    assert!(e.contains("too small for the VGG"), "{e}");
    cfg.perceptual = Some(PerceptualTerm {
        net: spec,
        weight: 10.0,
        taps: vec![1.0, 1.0, 0.5, 0.5],
    });
    engine::pix2pix::train(&cfg, Device::Cpu, &quiet()).unwrap();
    let perc = step_values(&root.join("out"), "G_perc");
    assert_eq!(perc.len(), 3);
    assert!(perc.iter().all(|v| v.is_finite() && *v > 0.0), "{perc:?}");
    // Grey generator outputs (one channel) go through the VGG as grey RGB.
    let mut grey = tiny(&data, root.join("grey"), 1);
    grey.set_channels(1, 1);
    grey.perceptual = cfg.perceptual.clone();
    engine::pix2pix::train(&grey, Device::Cpu, &quiet()).unwrap();
    assert!(step_values(&root.join("grey"), "G_perc")
        .iter()
        .all(|v| v.is_finite() && *v > 0.0));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn bad_data_and_diverging_losses_give_clear_errors() {
    let root = fresh_path("errors");
    let run = |data: &Path| {
        engine::pix2pix::train(&tiny(data, root.join("run"), 1), Device::Cpu, &quiet())
            .expect_err("an error")
            .to_string()
    };
    let e = run(&root.join("missing"));
    assert!(
        e.contains("does not exist") && e.contains("make-pairs"),
        "{e}"
    );
    let data = root.join("data");
    pairs(PairTask::Gray2Color, 32, &data);
    for f in pngs(&data.join("val")) {
        std::fs::remove_file(f).unwrap();
    }
    let e = run(&data);
    assert!(e.contains("val") && e.contains("no images"), "{e}");
    std::fs::remove_dir_all(data.join("val")).unwrap();
    let e = run(&data);
    assert!(e.contains("no val/ folder"), "{e}");
    std::fs::create_dir_all(data.join("val")).unwrap();
    std::fs::copy(photos().join("rocket.jpg"), data.join("val/rocket.jpg")).unwrap();
    let e = run(&data);
    assert!(
        e.contains("rocket.jpg is 240×160") && e.contains("twice as wide"),
        "{e}"
    );

    // A learning rate that blows the weights up: the run saves and stops with advice.
    std::fs::remove_file(data.join("val/rocket.jpg")).unwrap();
    std::fs::copy(
        pngs(&data.join("train"))[0].clone(),
        data.join("val/copy.png"),
    )
    .unwrap();
    let mut cfg = tiny(&data, root.join("nan"), 2);
    cfg.lr = 1e30;
    let e = engine::pix2pix::train(&cfg, Device::Cpu, &quiet())
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("loss became") && e.contains("lower --lr") && e.contains("--resume"),
        "{e}"
    );
    assert!(root.join("nan/checkpoint.safetensors").is_file());
    std::fs::remove_dir_all(root).ok();
}
