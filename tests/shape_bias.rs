//! `engine shape-bias` (src/shape_bias.rs): the tally is checked against a classifier whose answer
//! is known (always one class, so every decision's category follows from the drawn pairs), pairs
//! are reproducible and never same-class, and the command runs end to end on a briefly trained
//! checkpoint with a random stylizer, writing its report and grid.

mod common;
use common::{engine, scratch_dir};

use engine::data::idx::LabelledImages;
use engine::data::idx::{load_mnist_style, FASHION_MNIST_CLASSES};
use engine::data::{ArrayDataset, Dataset};
use engine::models::Stylizer;
use engine::nn::init::Init;
use engine::shape_bias::{draw_pairs, shape_bias, Classifier, CueMaker, ShapeBiasConfig};
use engine::testing::write_striped_idx;
use engine::train::{train, Recipe, RunOptions, TrainConfig};
use engine::{DType, Device, Result, Tensor};

fn dataset(dir: &std::path::Path) -> ArrayDataset {
    write_striped_idx(dir, 10, 40);
    ArrayDataset {
        data: load_mnist_style(dir, "t10k", &FASHION_MNIST_CLASSES).unwrap(),
    }
}

#[test]
fn decisions_are_tallied_by_shape_and_texture_class() {
    let dir = scratch_dir("tally");
    let ds = dataset(&dir);
    let stylizer = Stylizer::new(&mut Init::new(1, DType::F32, Device::Cpu), 4).unwrap();
    let maker = CueMaker::Stylizer {
        stylizer: &stylizer,
        dtype: DType::F32,
    };
    let always_three = |x: &Tensor| -> Result<Vec<usize>> { Ok(vec![3; x.dims()[0]]) };
    let eval = TrainConfig::fashion_mnist(Recipe::Baseline, dir.clone(), 18, 4, dir.clone());
    let classifier = Classifier {
        channels: 1,
        eval: eval.augment.eval(28),
        dtype: DType::F32,
        predict: &always_three,
    };
    let cfg = ShapeBiasConfig {
        pairs: 30,
        seed: 5,
        alpha: 1.0,
        stylize_size: 32,
        batch_size: 7,
        grid: Some(dir.join("grid.png")),
    };
    let r = shape_bias(&ds, &maker, &classifier, Device::Cpu, &cfg).unwrap();
    let pairs = draw_pairs(&ds, 30, 5).unwrap();
    assert_eq!(
        r.trials
            .iter()
            .map(|t| (t.shape_index, t.texture_index))
            .collect::<Vec<_>>(),
        pairs
    );
    let shape = pairs.iter().filter(|&&(a, _)| ds.label(a) == 3).count();
    let texture = pairs.iter().filter(|&&(_, b)| ds.label(b) == 3).count();
    assert!(
        shape > 0 && texture > 0,
        "the draw should hit class 3 both ways"
    );
    assert_eq!((r.shape_decisions, r.texture_decisions), (shape, texture));
    assert_eq!(r.other_decisions, 30 - shape - texture);
    assert!((r.shape_bias - shape as f64 / (shape + texture) as f64).abs() < 1e-12);
    assert!(pairs.iter().all(|&(a, b)| ds.label(a) != ds.label(b)));
    let grid = image::open(dir.join("grid.png")).unwrap();
    // 32 px cells are enlarged 3× (to at least 96 px) for the grid.
    assert_eq!(grid.width() as usize, 3 * 96 + 4 * 4);
    // Sizes the stylizer cannot take are refused.
    let bad = ShapeBiasConfig {
        stylize_size: 30,
        ..cfg
    };
    assert!(shape_bias(&ds, &maker, &classifier, Device::Cpu, &bad).is_err());
    // The texture-swap maker works at the images' own size and tallies the same way.
    let swap = CueMaker::TextureSwap {
        content_weight: 0.5,
    };
    let r = shape_bias(&ds, &swap, &classifier, Device::Cpu, &bad).unwrap();
    assert_eq!((r.shape_decisions, r.texture_decisions), (shape, texture));
    let grid = image::open(dir.join("grid.png")).unwrap();
    // 28 px cells are enlarged 3× (nearest) for the grid.
    assert_eq!(grid.width() as usize, 3 * 84 + 4 * 4);
    std::fs::remove_dir_all(dir).ok();
}

/// Class k: a bright disc of radius 8 + k (the shape) with stripes of period 2 + k (the texture).
fn discs() -> ArrayDataset {
    let (n_classes, per_class, side) = (5, 6, 28);
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for k in 0..n_classes {
        for j in 0..per_class {
            for y in 0..side {
                for x in 0..side {
                    let (dx, dy) = (x as f32 - 13.5, y as f32 - 13.5 + (j % 2) as f32);
                    let inside = dx * dx + dy * dy < ((8 + k) * (8 + k)) as f32;
                    let stripe = (x / (2 + k)) % 2 == 0;
                    images.push(match (inside, stripe) {
                        (false, _) => 0u8,
                        (true, true) => 230,
                        (true, false) => 110,
                    });
                }
            }
            labels.push(k);
        }
    }
    ArrayDataset {
        data: LabelledImages {
            images,
            labels,
            height: side,
            width: side,
            classes: (0..n_classes).map(|k| format!("disc{k}")).collect(),
        },
    }
}

#[test]
fn a_silhouette_classifier_follows_shape_on_texture_swap_cue_conflicts() {
    let dir = scratch_dir("discs");
    let ds = discs();
    // Classifies by the object's area (pixels above black, in the normalised input), the nearest
    // disc area: a pure shape classifier, blind to the stripes.
    let eval = TrainConfig::fashion_mnist(Recipe::Baseline, dir.clone(), 18, 4, dir.clone())
        .augment
        .eval(28);
    let black = (0.0 - eval.mean[0]) / eval.std[0];
    let by_area = move |x: &Tensor| -> Result<Vec<usize>> {
        let v: Vec<f32> = x.to_vec()?;
        Ok(v.chunks(28 * 28)
            .map(|img| {
                let area = img.iter().filter(|&&p| p > black + 0.1).count() as f32;
                (0..5)
                    .min_by(|&a, &b| {
                        let d = |k: usize| {
                            (area - std::f32::consts::PI * ((8 + k) * (8 + k)) as f32).abs()
                        };
                        d(a).total_cmp(&d(b))
                    })
                    .unwrap()
            })
            .collect())
    };
    let classifier = Classifier {
        channels: 1,
        eval,
        dtype: DType::F32,
        predict: &by_area,
    };
    let cfg = ShapeBiasConfig {
        pairs: 40,
        seed: 2,
        alpha: 1.0,
        stylize_size: 32,
        batch_size: 16,
        grid: None,
    };
    let swap = CueMaker::TextureSwap {
        content_weight: 0.0,
    };
    let r = shape_bias(&ds, &swap, &classifier, Device::Cpu, &cfg).unwrap();
    assert!(
        r.trials
            .iter()
            .all(|t| t.shape_source_correct && t.texture_source_correct),
        "the area classifier must get the plain discs right"
    );
    assert_eq!(
        r.shape_decisions,
        40,
        "{:?}",
        (r.texture_decisions, r.other_decisions)
    );
    assert_eq!(r.shape_bias, 1.0);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn shape_bias_command_reports_every_trial() {
    let dir = scratch_dir("cli");
    write_striped_idx(&dir.join("data"), 64, 20);
    let mut cfg =
        TrainConfig::fashion_mnist(Recipe::Baseline, dir.join("data"), 18, 4, dir.join("run"));
    cfg.batch_size = 32;
    cfg.epochs = 1;
    train(
        &cfg,
        Device::Cpu,
        &RunOptions {
            resume: false,
            show_progress: false,
            stop_after_steps: None,
        },
    )
    .unwrap();
    let out = engine()
        .args(["shape-bias", "--checkpoint"])
        .arg(dir.join("run/checkpoint.safetensors"))
        .args([
            "--random-stylizer",
            "4",
            "--pairs",
            "6",
            "--stylize-size",
            "32",
            "--out",
        ])
        .arg(dir.join("sb"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("shape bias"), "{stdout}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("sb/report.json")).unwrap()).unwrap();
    let n = |k: &str| report[k].as_u64().unwrap();
    assert_eq!(report["trials"].as_array().unwrap().len(), 6);
    assert_eq!(
        n("shape_decisions") + n("texture_decisions") + n("other_decisions") + n("skipped"),
        6
    );
    assert!(dir.join("sb/cue_conflict.png").exists());
    // Neither a model nor stylizer weights: clap says what is missing.
    let out = engine().args(["shape-bias"]).output().unwrap();
    assert!(!out.status.success());
    std::fs::remove_dir_all(dir).ok();
}
