//! `--texture-swap` end to end (src/data/texture_swap.rs): the trainer's datasets (SIN+IN joins each
//! source image plain and re-textured), `engine train` recording the swap, `engine eval` crossing
//! plain and re-textured test images, and the error for a missing texture folder. Data made here
//! (striped IDX files) and the real textures of tests/data/textures.

mod common;
use common::{run_engine, scratch_dir};

use engine::data::Dataset;
use engine::train::{trainer, Recipe, TrainConfig};
use std::path::Path;

/// `--texture-swap`: a SIN+IN-style run trains on the plain and the re-textured images (each source
/// image twice, also under --train-limit), validates on re-textured ones, and `engine eval` crosses
/// the two; a missing texture folder is a clear error.
#[test]
fn texture_swap_training_and_crossed_evaluation() {
    let base = scratch_dir("texture-swap");
    let data = base.join("idx");
    engine::testing::write_striped_idx(&data, 40, 20);
    let textures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/textures");

    let mut cfg = TrainConfig::fashion_mnist(Recipe::Baseline, data.clone(), 18, 4, base.join("x"));
    cfg.train_limit = 10;
    cfg.texture_swap = Some(engine::train::TextureSwapSpec {
        dir: textures.clone(),
        seed: 3,
        join_plain: true,
    });
    let (train, val) = trainer::datasets(&cfg).unwrap();
    assert_eq!((train.len(), val.len()), (20, 20));
    for i in 0..10 {
        assert_eq!(train.label(i), train.label(10 + i));
        let (plain, swapped) = (train.get(i).unwrap(), train.get(10 + i).unwrap());
        assert_ne!(
            plain.data, swapped.data,
            "image {i} is re-textured in the second half"
        );
    }
    let plain_val = {
        let mut c = cfg.clone();
        c.texture_swap = None;
        trainer::val_dataset(&c, train.class_names()).unwrap()
    };
    assert_ne!(plain_val.get(0).unwrap().data, val.get(0).unwrap().data);

    let out = base.join("run");
    let (d, o, t) = (
        data.to_str().unwrap(),
        out.to_str().unwrap(),
        textures.to_str().unwrap(),
    );
    let (ok, stdout, stderr) = run_engine(&[
        "train",
        "--data",
        d,
        "--out",
        o,
        "--texture-swap",
        t,
        "--texture-swap-join",
        "--epochs",
        "1",
        "--width",
        "4",
        "--batch-size",
        "16",
        "--quiet",
        "--recipe",
        "baseline",
    ]);
    assert!(ok && stdout.contains("final: top-1"), "{stdout}{stderr}");
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    let spec = saved
        .texture_swap
        .expect("the run records its texture swap");
    assert!(spec.join_plain && spec.seed == 0 && spec.dir == textures);
    let steps = std::fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"kind\":\"step\""))
        .count();
    assert_eq!(steps, 80 / 16, "40 plain + 40 re-textured images a epoch");

    let ckpt = out.join("checkpoint.safetensors");
    let (ok, swapped, stderr) = run_engine(&["eval", ckpt.to_str().unwrap()]);
    assert!(
        ok && swapped.contains("re-textured from") && swapped.contains("top-1"),
        "{swapped}{stderr}"
    );
    let (ok, plain, stderr) =
        run_engine(&["eval", ckpt.to_str().unwrap(), "--texture-swap", "none"]);
    assert!(
        ok && !plain.contains("re-textured") && plain.contains("top-1"),
        "{plain}{stderr}"
    );

    let (ok, _, stderr) = run_engine(&[
        "train",
        "--data",
        d,
        "--out",
        o,
        "--texture-swap",
        "/no/such/textures",
        "--epochs",
        "1",
        "--quiet",
    ]);
    assert!(
        !ok && stderr.contains("/no/such/textures") && stderr.contains("not a folder"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&base).ok();
}
