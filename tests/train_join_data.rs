//! `engine train --join-data` (SIN+IN for Fashion-MNIST-style IDX folders, e.g. the plain set and
//! its `engine stylize-idx` copy): which images the joined training set holds, `--train-limit` per
//! folder, refusals, the config round trip and `--config` merging. Every file is made here.

mod common;
use common::{run_engine, scratch_dir};

use engine::data::idx::{encode_idx, load_mnist_style};
use engine::data::Dataset;
use engine::train::{trainer, DataSpec, Recipe, TrainConfig};
use std::path::Path;

/// Fashion-MNIST-style IDX files with `join` folders (SIN+IN at Fashion-MNIST size): training
/// reads `dir`'s and every joined folder's train split in order, validation only `dir`'s test
/// split; the field round-trips through config.json, old configs load without it, and
/// `--join-data` is refused for other formats.
#[test]
fn idx_data_joins_training_splits_only() {
    let base = scratch_dir("join");
    let write = |dir: &Path, split: &str, n: usize, seed: usize| {
        std::fs::create_dir_all(dir).unwrap();
        let imgs: Vec<u8> = (0..n * 784)
            .map(|i| ((i * 7 + seed * 31) % 251) as u8)
            .collect();
        let labels: Vec<u8> = (0..n).map(|i| ((i + seed) % 10) as u8).collect();
        std::fs::write(
            dir.join(format!("{split}-images-idx3-ubyte")),
            encode_idx(&[n, 28, 28], &imgs),
        )
        .unwrap();
        std::fs::write(
            dir.join(format!("{split}-labels-idx1-ubyte")),
            encode_idx(&[n], &labels),
        )
        .unwrap();
    };
    let (a, b) = (base.join("plain"), base.join("stylized"));
    write(&a, "train", 10, 1);
    write(&a, "t10k", 4, 2);
    write(&b, "train", 6, 3);
    write(&b, "t10k", 5, 4);
    let mut cfg = TrainConfig::fashion_mnist(Recipe::Baseline, a.clone(), 18, 16, base.join("run"));
    cfg.data = DataSpec::FashionMnist {
        dir: a.clone(),
        join: vec![b.clone()],
    };
    let (train, val) = trainer::datasets(&cfg).unwrap();
    assert_eq!((train.len(), val.len()), (16, 4));
    let joined = load_mnist_style(&b, "train", &engine::data::idx::FASHION_MNIST_CLASSES).unwrap();
    for k in 0..6 {
        assert_eq!(train.label(10 + k), joined.labels[k]);
        assert_eq!(
            train.get(10 + k).unwrap().data,
            joined.images[k * 784..(k + 1) * 784]
        );
    }
    // --train-limit takes the first images of each joined folder, not only the first folder's.
    let mut limited = cfg.clone();
    limited.train_limit = 3;
    let (train3, _) = trainer::datasets(&limited).unwrap();
    assert_eq!(train3.len(), 6);
    assert_eq!(train3.get(4).unwrap().data, joined.images[784..2 * 784]);
    let mut twice = cfg.clone();
    twice.data = DataSpec::FashionMnist {
        dir: a.clone(),
        join: vec![a.clone()],
    };
    let e = trainer::datasets(&twice).err().unwrap().to_string();
    assert!(e.contains("joined twice"), "{e}");
    let json = serde_json::to_string(&cfg).unwrap();
    assert_eq!(serde_json::from_str::<TrainConfig>(&json).unwrap(), cfg);
    let old: DataSpec = serde_json::from_str(r#"{"FashionMnist": {"dir": "/d"}}"#).unwrap();
    assert_eq!(
        old,
        DataSpec::FashionMnist {
            dir: "/d".into(),
            join: vec![]
        }
    );
    let (ok, _, stderr) = run_engine(&[
        "train",
        "--data-format",
        "cifar",
        "--data",
        a.to_str().unwrap(),
        "--join-data",
        b.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("--join-data"), "{stderr}");
    // The CLI: --join-data alone means Fashion-MNIST-style data; the join lands in config.json.
    let out = base.join("run-cli");
    let (ok, stdout, stderr) = run_engine(&[
        "train",
        "--data",
        a.to_str().unwrap(),
        "--join-data",
        b.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--epochs",
        "1",
        "--width",
        "4",
        "--batch-size",
        "8",
        "--quiet",
        "--recipe",
        "baseline",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved.data, cfg.data);
    // Over a --config, --data replaces only the folder: the join stays.
    let (c2, out2) = (base.join("plain2"), base.join("run-cli2"));
    write(&c2, "train", 4, 5);
    write(&c2, "t10k", 2, 6);
    let config = out.join("config.json");
    let (ok, stdout, stderr) = run_engine(&[
        "train",
        "--config",
        config.to_str().unwrap(),
        "--data",
        c2.to_str().unwrap(),
        "--out",
        out2.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(out2.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        saved.data,
        DataSpec::FashionMnist {
            dir: c2.clone(),
            join: vec![b.clone()]
        }
    );
    // Texture swap works by silhouettes, which a joined stylized copy does not have.
    let (ok, _, stderr) = run_engine(&[
        "train",
        "--data",
        a.to_str().unwrap(),
        "--join-data",
        b.to_str().unwrap(),
        "--texture-swap",
        base.to_str().unwrap(),
    ]);
    assert!(!ok && stderr.contains("--texture-swap"), "{stderr}");
    std::fs::remove_dir_all(&base).ok();
}
