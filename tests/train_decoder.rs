//! AdaIN decoder training end to end on the real photographs (content) and textures (style) of
//! tests/data, with a tiny seeded random VGG encoder (width 8) and small images (48 px, 32 px
//! crops, batch 2): the loss falls, the run folder gets its sample grids, chart, metrics and
//! weights (the exported decoder loads with `Decoder::load` and `Stylizer::load`), a stopped and
//! resumed run reproduces an uninterrupted one bit for bit, FP16 with loss scaling learns, files
//! that cannot be used are skipped and counted, and bad inputs fail with clear errors. Also the
//! `engine train-decoder` command.

mod common;
use common::{engine, fresh_path};

use engine::models::stylizer::{Decoder, Stylizer};
use engine::nn::state::load_tensors;
use engine::train::RunOptions;
use engine::train_decoder::checkpoint::{checkpoint_path, decoder_path, read_run_state};
use engine::train_decoder::{train_decoder, DecoderTrainConfig, EncoderSource};
use engine::viz::jsonl;
use engine::{DType, Device, Tensor};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

fn data(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(sub)
}

/// 48 px images cropped to 32, batch 2, a width-8 random encoder; lr 1e-3 (10× the paper's) so
/// that 40 iterations show learning.
fn tiny(out: PathBuf, iterations: usize) -> DecoderTrainConfig {
    let mut c = DecoderTrainConfig::paper(
        data("photos"),
        data("textures"),
        EncoderSource::Random { width: 8 },
        out,
    );
    c.image_size = 48;
    c.crop = 32;
    c.min_side = 32;
    c.batch_size = 2;
    c.lr = 1e-3;
    c.iterations = iterations;
    c.save_every = 10;
    c.sample_every = 20;
    c.log_every = 1;
    c.sample_pairs = 2;
    c
}

/// No progress bar, no resume, no early stop.
fn quiet() -> RunOptions {
    RunOptions::default()
}

/// The error of resuming `cfg`'s run.
fn resume_error(cfg: &DecoderTrainConfig) -> String {
    let resume = RunOptions {
        resume: true,
        ..quiet()
    };
    train_decoder(cfg, Device::Cpu, &resume)
        .err()
        .unwrap()
        .to_string()
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    load_tensors(path, Device::Cpu).unwrap().0
}

/// (iteration, loss_c, loss_s, total, lr) of every iteration line of a run's metrics.jsonl.
fn logged(out: &Path) -> Vec<[f64; 5]> {
    let recs = jsonl::read_records(&out.join("metrics.jsonl")).unwrap();
    recs.iter()
        .filter(|r| r["kind"] == "iteration")
        .map(|r| ["iteration", "loss_c", "loss_s", "total", "lr"].map(|k| r[k].as_f64().unwrap()))
        .collect()
}

#[test]
fn loss_falls_and_the_run_folder_has_samples_chart_and_loadable_weights() {
    let out = fresh_path("learn");
    let cfg = tiny(out.clone(), 40);
    let s = train_decoder(&cfg, Device::Cpu, &quiet()).unwrap();
    assert!(!s.interrupted);
    assert_eq!((s.iterations, s.history.len()), (40, 40));
    assert_eq!(
        (s.skipped_files, s.skipped_samples, s.skipped_steps),
        (0, 0, 0)
    );
    let total: Vec<f64> = s.history.iter().map(|m| m.total).collect();
    let (first, last) = (
        total[..5].iter().sum::<f64>() / 5.0,
        total[35..].iter().sum::<f64>() / 5.0,
    );
    assert!(
        last < 0.5 * first,
        "loss did not fall: first 5 {first:.4}, last 5 {last:.4}; {total:?}"
    );
    for m in &s.history {
        let expect = cfg.lr / (1.0 + 5e-5 * (m.iteration - 1) as f64);
        assert_eq!(m.lr, expect, "iteration {}", m.iteration);
        let sum = m.loss_c + 10.0 * m.loss_s;
        assert!((m.total - sum).abs() <= 1e-6 * sum, "{} vs {sum}", m.total);
    }
    assert_eq!(logged(&out).len(), 40);

    // Sample grids at 20 and 40: two rows of (content, style, result), 32 px cells, 4 px gaps.
    for it in ["iter_000020.png", "iter_000040.png"] {
        let img = image::open(out.join("samples").join(it)).unwrap_or_else(|e| panic!("{it}: {e}"));
        assert_eq!(
            (img.width(), img.height()),
            (3 * 32 + 4 * 4, 2 * 32 + 3 * 4),
            "{it}"
        );
    }
    let chart = image::open(out.join("loss.png")).unwrap();
    assert!(chart.width() > 100 && chart.height() > 100);
    let config: DecoderTrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config, cfg);
    assert_eq!(
        read_run_state(&checkpoint_path(&out)).unwrap().iteration,
        40
    );

    // The exported decoder is the checkpoint's, under the reference key names, and loads alone
    // and with the encoder it was trained against.
    let exported = tensors(&decoder_path(&out));
    let ckpt = tensors(&checkpoint_path(&out));
    assert!(exported.contains_key("1.weight") && exported.contains_key("28.bias"));
    for (k, t) in &exported {
        let saved = &ckpt[&format!("model/{k}")];
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            saved.to_vec::<f32>().unwrap(),
            "{k}"
        );
    }
    let dec = Decoder::load(&decoder_path(&out), DType::F32, Device::Cpu).unwrap();
    assert_eq!(dec.width(), 8);
    let st = Stylizer::load(
        out.join("random_vgg.safetensors"),
        decoder_path(&out),
        DType::F32,
        Device::Cpu,
    )
    .unwrap();
    let x = Tensor::rand_uniform(vec![1, 3, 16, 16], 0.0, 1.0, 7, DType::F32, Device::Cpu).unwrap();
    let y = engine::no_grad(|| st.stylize(&x, &[(x.clone(), 1.0)], 1.0, false)).unwrap();
    assert_eq!(y.dims(), &[1, 3, 16, 16]);

    // Training continues from the exported weights with --decoder.
    let cont = fresh_path("continue");
    let mut c2 = tiny(cont.clone(), 1);
    c2.decoder_init = Some(decoder_path(&out));
    let s2 = train_decoder(&c2, Device::Cpu, &quiet()).unwrap();
    // Same seed, so the same first batch as the first run: a lower loss from the trained weights.
    assert!(
        s2.history[0].total < 0.7 * total[0],
        "started from the trained decoder"
    );
    std::fs::remove_dir_all(out).ok();
    std::fs::remove_dir_all(cont).ok();
}

#[test]
fn fp16_with_dynamic_loss_scaling_learns() {
    let out = fresh_path("fp16");
    let mut cfg = tiny(out.clone(), 30);
    cfg.fp16 = true;
    let s = train_decoder(&cfg, Device::Cpu, &quiet()).unwrap();
    assert_eq!(s.iterations, 30);
    // The initial scale 2^16 overflows f16 gradients: those steps are skipped and the scale halves.
    let scales: Vec<f64> = s.history.iter().map(|m| m.loss_scale).collect();
    assert_eq!(scales[0], 65536.0);
    assert!(s.skipped_steps > 0 && scales[29] < scales[0], "{scales:?}");
    let total: Vec<f64> = s.history.iter().map(|m| m.total).collect();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(mean(&total[25..]) < 0.5 * mean(&total[..5]), "{total:?}");
    let dec = Decoder::load(&decoder_path(&out), DType::F32, Device::Cpu).unwrap();
    assert_eq!(dec.width(), 8, "exported as f32 weights");
    std::fs::remove_dir_all(out).ok();
}

#[test]
fn stopped_and_resumed_run_matches_an_uninterrupted_one_bit_for_bit() {
    // 12 iterations of 2 pairs: both streams cross pass boundaries (8 photos, 5 textures).
    let full_dir = fresh_path("full");
    let full = train_decoder(&tiny(full_dir.clone(), 12), Device::Cpu, &quiet()).unwrap();
    let split_dir = fresh_path("split");
    let cfg = tiny(split_dir.clone(), 12);
    let stop_at_7 = RunOptions {
        stop_after_steps: Some(7),
        ..quiet()
    };
    let stopped = train_decoder(&cfg, Device::Cpu, &stop_at_7).unwrap();
    assert!(stopped.interrupted);
    assert_eq!(stopped.iterations, 7);
    let state = read_run_state(&checkpoint_path(&split_dir)).unwrap();
    assert_eq!(
        (
            state.iteration,
            state.content_position,
            state.style_position
        ),
        (7, 14, 14)
    );
    let resume = RunOptions {
        resume: true,
        ..quiet()
    };
    let resumed = train_decoder(&cfg, Device::Cpu, &resume).unwrap();
    assert!(!resumed.interrupted);
    assert_eq!(resumed.iterations, 12);
    assert_eq!(
        logged(&full_dir),
        logged(&split_dir),
        "same losses and lr, iteration by iteration"
    );
    assert_eq!(logged(&split_dir).len(), 12);
    for (file, what) in [
        (decoder_path(&full_dir), "decoder"),
        (checkpoint_path(&full_dir), "checkpoint"),
    ] {
        let a = tensors(&file);
        let b = tensors(&split_dir.join(file.file_name().unwrap()));
        assert_eq!(
            a.keys().collect::<Vec<_>>(),
            b.keys().collect::<Vec<_>>(),
            "{what}"
        );
        for (k, t) in &a {
            assert_eq!(
                t.to_vec_f64().unwrap(),
                b[k].to_vec_f64().unwrap(),
                "{what} {k}"
            );
        }
    }
    let l = |h: &[engine::train_decoder::IterationMetrics]| -> Vec<f64> {
        h.iter().map(|m| m.total).collect()
    };
    let joined: Vec<f64> = l(&stopped.history)
        .into_iter()
        .chain(l(&resumed.history))
        .collect();
    assert_eq!(joined, l(&full.history));
    // Resuming with other data settings is refused.
    let other = DecoderTrainConfig { seed: 9, ..cfg };
    let e = resume_error(&other);
    assert!(e.contains("other settings"), "{e}");
    std::fs::remove_dir_all(full_dir).ok();
    std::fs::remove_dir_all(split_dir).ok();
}

#[test]
fn unusable_files_are_skipped_and_counted_and_bad_inputs_fail_clearly() {
    let root = fresh_path("errors");
    // A style folder (with a sub-folder) holding the textures, a tiny image and a corrupt file.
    let styles = root.join("styles");
    std::fs::create_dir_all(styles.join("more")).unwrap();
    for f in std::fs::read_dir(data("textures")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, styles.join("more").join(f.file_name().unwrap())).unwrap();
    }
    image::RgbImage::from_pixel(8, 8, image::Rgb([9, 9, 9]))
        .save(styles.join("tiny.png"))
        .unwrap();
    std::fs::write(styles.join("corrupt.jpg"), b"not a jpeg").unwrap();
    let mut cfg = tiny(root.join("run"), 1);
    cfg.style_dir = styles.clone();
    let s = train_decoder(&cfg, Device::Cpu, &quiet()).unwrap();
    assert_eq!((s.iterations, s.skipped_files), (1, 2));
    let recs = jsonl::read_records(&cfg.out_dir.join("metrics.jsonl")).unwrap();
    let skipped: Vec<String> = recs
        .iter()
        .filter(|r| r["kind"] == "skipped_file")
        .map(|r| r["file"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(skipped.len(), 2, "{skipped:?}");
    assert!(skipped
        .iter()
        .any(|f| f.contains("tiny.png") && f.contains("too small")));
    assert!(skipped
        .iter()
        .any(|f| f.contains("corrupt.jpg") && f.contains("unreadable")));

    let err = |c: &DecoderTrainConfig| {
        train_decoder(c, Device::Cpu, &quiet())
            .err()
            .unwrap()
            .to_string()
    };
    let missing = DecoderTrainConfig {
        content_dir: root.join("no-such-dir"),
        ..cfg.clone()
    };
    let e = err(&missing);
    assert!(
        e.contains("content folder") && e.contains("no-such-dir") && e.contains("does not exist"),
        "{e}"
    );
    std::fs::create_dir_all(root.join("empty")).unwrap();
    let e = err(&DecoderTrainConfig {
        content_dir: root.join("empty"),
        ..cfg.clone()
    });
    assert!(e.contains("has no images"), "{e}");
    let bad = root.join("bad");
    std::fs::create_dir_all(&bad).unwrap();
    std::fs::copy(styles.join("tiny.png"), bad.join("tiny.png")).unwrap();
    let e = err(&DecoderTrainConfig {
        style_dir: bad,
        ..cfg.clone()
    });
    assert!(
        e.contains("style folder") && e.contains("no usable images") && e.contains("too small"),
        "{e}"
    );
    let e = err(&DecoderTrainConfig {
        encoder: EncoderSource::Weights(root.join("vgg_normalised.safetensors")),
        ..cfg.clone()
    });
    assert!(
        e.contains("vgg_normalised.safetensors") && e.contains("convert_adain_weights.py"),
        "{e}"
    );
    let e = err(&DecoderTrainConfig {
        decoder_init: Some(root.join("decoder.safetensors")),
        ..cfg.clone()
    });
    assert!(e.contains("convert_adain_weights.py decoder.pth"), "{e}");
    let e = resume_error(&DecoderTrainConfig {
        out_dir: root.join("fresh"),
        ..cfg.clone()
    });
    assert!(e.contains("no checkpoint"), "{e}");
    std::fs::remove_dir_all(root).ok();
}

#[test]
fn command_line_trains_resumes_and_explains_missing_weights() {
    let help = engine().args(["train-decoder", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("--random-vgg") && help.contains("TESTING ONLY"),
        "{help}"
    );
    let out = fresh_path("cli");
    // No installed weights either: ENGINE_ADAIN_DIR names a folder without them.
    let no_install = fresh_path("cli-no-weights");
    let run = |extra: &[&str]| {
        let o = engine()
            .env("ENGINE_ADAIN_DIR", &no_install)
            .arg("train-decoder")
            .args(extra)
            .arg("--out")
            .arg(&out)
            .arg("--quiet")
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr),
        )
    };
    let photos = data("photos");
    let textures = data("textures");
    let base = [
        "--content",
        photos.to_str().unwrap(),
        "--styles",
        textures.to_str().unwrap(),
        "--image-size",
        "48",
        "--crop",
        "32",
        "--batch-size",
        "2",
    ];
    let (ok, text) = run(&base);
    assert!(
        !ok && text.contains("no vgg_normalised weights given")
            && text.contains("--vgg FILE")
            && text.contains("install_adain_weights")
            && text.contains("convert_adain_weights.py"),
        "{text}"
    );
    let (ok, text) = run(&[
        &base[..],
        &[
            "--random-vgg",
            "4",
            "--iterations",
            "3",
            "--stop-after",
            "2",
        ],
    ]
    .concat());
    assert!(ok, "{text}");
    assert_eq!(read_run_state(&checkpoint_path(&out)).unwrap().iteration, 2);
    let (ok, text) = run(&["--resume"]);
    assert!(ok && text.contains("final: iteration 3"), "{text}");
    assert!(decoder_path(&out).is_file() && out.join("samples/iter_000003.png").is_file());
    std::fs::remove_dir_all(out).ok();
}
