//! End-to-end training on a small IDX dataset written by the test (class-dependent stripe patterns
//! plus noise): a stopped-and-resumed run reproduces an uninterrupted one exactly on the CPU (same
//! epoch losses, accuracies and final weights), FP16 training with loss scaling runs and learns, and
//! bad runs fail with clear errors (diverging loss, resuming with another architecture, missing data).

mod common;
use common::fresh_path;

use engine::nn::state::load_tensors;
use engine::testing::write_striped_idx as write_dataset;
use engine::train::{train, Recipe, RunOptions, TrainConfig};
use engine::Device;
use std::path::{Path, PathBuf};

fn tiny_config(data: &Path, out: PathBuf, recipe: Recipe) -> TrainConfig {
    let mut c = TrainConfig::fashion_mnist(recipe, data.to_path_buf(), 18, 4, out);
    c.epochs = 2;
    c.batch_size = 32;
    c
}

fn quiet() -> RunOptions {
    RunOptions {
        resume: false,
        show_progress: false,
        stop_after_steps: None,
    }
}

#[test]
fn resumed_run_matches_uninterrupted_run_exactly() {
    let data = fresh_path("data-resume");
    write_dataset(&data, 160, 60);
    // Mixup + smoothing + jitter: every random stream (shuffle, augmentation, λ) must resume exactly.
    let full_dir = fresh_path("full");
    let full = train(
        &tiny_config(&data, full_dir.clone(), Recipe::Reproduction2019),
        Device::Cpu,
        &quiet(),
    )
    .unwrap();
    assert_eq!(full.history.len(), 2);

    let split_dir = fresh_path("split");
    let cfg = tiny_config(&data, split_dir.clone(), Recipe::Reproduction2019);
    let stopped = train(
        &cfg,
        Device::Cpu,
        &RunOptions {
            stop_after_steps: Some(7),
            ..quiet()
        },
    )
    .unwrap();
    assert!(
        stopped.interrupted,
        "stopping after step 7 (mid epoch 2) checkpoints and returns"
    );
    assert_eq!(stopped.history.len(), 1);
    assert_eq!(stopped.history[0].top1, full.history[0].top1);
    let resumed = train(
        &cfg,
        Device::Cpu,
        &RunOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap();
    assert!(!resumed.interrupted);
    // The resumed run's charts cover both epochs (they are redrawn from the whole metrics log).
    for chart in ["loss.png", "accuracy.png", "lr.png"] {
        let img = image::open(cfg.out_dir.join(chart)).unwrap_or_else(|e| panic!("{chart}: {e}"));
        assert!(img.width() > 100 && img.height() > 100, "{chart}");
    }
    let log = engine::viz::jsonl::read_records(&cfg.out_dir.join("metrics.jsonl")).unwrap();
    let acc = engine::viz::jsonl::series(&log, "epoch", "metrics/epoch", "metrics/top1", "");
    assert_eq!(acc.points.len(), 2);
    let (a, b) = (&full.history[1], &resumed.history[0]);
    assert_eq!((a.epoch, a.top1, a.top5), (b.epoch, b.top1, b.top5));
    // The resumed epoch's figures cover the whole epoch, its steps before the stop included (the
    // loss sum travels through the checkpoint's JSON: equal to a last-place rounding).
    assert!(
        (a.train_loss - b.train_loss).abs() <= 1e-12 * a.train_loss.abs(),
        "the resumed epoch's train_loss {} is not the whole epoch's {}",
        b.train_loss,
        a.train_loss
    );
    assert_eq!(
        (a.skipped_steps, a.skipped_samples),
        (b.skipped_steps, b.skipped_samples)
    );
    // The final checkpoints hold bit-identical weights, momentum buffers and run state.
    let (wa, ma) = load_tensors(&full_dir.join("checkpoint.safetensors"), Device::Cpu).unwrap();
    let (wb, mb) = load_tensors(&split_dir.join("checkpoint.safetensors"), Device::Cpu).unwrap();
    assert_eq!(wa.len(), wb.len());
    for (name, t) in &wa {
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            wb[name].to_vec::<f32>().unwrap(),
            "{name} differs after resume"
        );
    }
    let run = |m: &std::collections::BTreeMap<String, String>| {
        let mut v: serde_json::Value = serde_json::from_str(&m["run"]).unwrap();
        v["config"]["out_dir"] = serde_json::Value::Null;
        v
    };
    assert_eq!(run(&ma), run(&mb));
}

#[test]
fn fp32_and_fp16_training_learn() {
    let data = fresh_path("data-learn");
    write_dataset(&data, 640, 100);
    for fp16 in [false, true] {
        let mut cfg = tiny_config(
            &data,
            fresh_path(&format!("learn-{fp16}")),
            Recipe::LabelSmoothing,
        );
        cfg.fp16 = fp16;
        cfg.epochs = 4;
        cfg.lr_per_256 = 1.6; // lr 0.2 at batch 32
        let s = train(&cfg, Device::Cpu, &quiet()).unwrap();
        let losses: Vec<f64> = s.history.iter().map(|h| h.train_loss).collect();
        let last = s.history.last().unwrap();
        assert!(
            losses.iter().all(|l| l.is_finite()),
            "fp16={fp16}: {losses:?}"
        );
        assert!(
            losses[3] < 0.8 * losses[0],
            "fp16={fp16}: loss falls: {losses:?}"
        );
        assert!(
            last.top1 > 50.0,
            "fp16={fp16}: top-1 {} (chance is 10)",
            last.top1
        );
    }
}

#[test]
fn clear_errors_for_bad_runs() {
    let data = fresh_path("data-errors");
    write_dataset(&data, 64, 20);
    // A diverging run stops with advice and a checkpoint of the last good state.
    let mut cfg = tiny_config(&data, fresh_path("diverge"), Recipe::Baseline);
    cfg.lr_per_256 = 1e12;
    cfg.epochs = 3;
    let err = train(&cfg, Device::Cpu, &quiet()).unwrap_err().to_string();
    assert!(
        err.contains("loss became") && err.contains("lower --lr"),
        "{err}"
    );

    // Resuming into another architecture is refused, naming both.
    let out = fresh_path("arch");
    let cfg = tiny_config(&data, out.clone(), Recipe::Baseline);
    train(
        &cfg,
        Device::Cpu,
        &RunOptions {
            stop_after_steps: Some(1),
            ..quiet()
        },
    )
    .unwrap();
    let mut other = cfg.clone();
    other.model.width = 8;
    let err = train(
        &other,
        Device::Cpu,
        &RunOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("another architecture"), "{err}");

    // Missing data says where Fashion-MNIST comes from.
    let cfg = tiny_config(
        &fresh_path("nowhere"),
        fresh_path("missing"),
        Recipe::Baseline,
    );
    let err = train(&cfg, Device::Cpu, &quiet()).unwrap_err().to_string();
    assert!(err.contains("dataset-fashion-mnist"), "{err}");
    // Resume without a checkpoint.
    let err = train(
        &tiny_config(&data, fresh_path("fresh"), Recipe::Baseline),
        Device::Cpu,
        &RunOptions {
            resume: true,
            ..quiet()
        },
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("no checkpoint"), "{err}");
}
