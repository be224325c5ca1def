//! torchvision-format weights: tools/convert_torchvision.py turned a `.pth` of a tiny
//! torchvision-layout ResNet-50 (saved DataParallel-style under `state_dict`) into
//! tests/fixtures/tiny_resnet50_torchvision.safetensors; the engine infers its architecture from the
//! shapes, loads it strictly, and reproduces PyTorch's eval-mode logits (tests/fixtures/
//! pretrained.safetensors). Engine-made files of every variant round-trip through the inference, and
//! files that fit no ResNet fail with messages that say what is wrong.

use engine::models::{load_pretrained_resnet, ResNet, ResNetConfig, Variant};
use engine::nn::init::Init;
use engine::nn::state::save_module;
use engine::nn::{Mode, Module};
use engine::testing::{fixtures_dir, test_devices, Fixtures};
use engine::{DType, Device};
use std::path::PathBuf;

fn fixture_dir() -> PathBuf {
    PathBuf::from(fixtures_dir())
}

#[test]
fn converted_torchvision_weights_give_torchvisions_logits() {
    let fx = Fixtures::load("pretrained");
    let path = fixture_dir().join("tiny_resnet50_torchvision.safetensors");
    for dev in test_devices() {
        let p = load_pretrained_resnet(&path, DType::F32, dev).unwrap();
        assert_eq!(
            p.config,
            ResNetConfig {
                width: 4,
                num_classes: 5,
                ..ResNetConfig::resnet50(5)
            }
        );
        assert_eq!(
            p.class_names,
            ["sandal", "shirt", "sneaker", "bag", "ankle boot"]
        );
        let x = fx.tensor("logits_eval/in/x", DType::F32, dev);
        let logits = engine::no_grad(|| p.model.forward(&x, Mode::EVAL)).unwrap();
        let want = &fx.raw("logits_eval/out").1;
        let got = logits.to_vec_f64().unwrap();
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        for (i, (a, b)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - b).abs() <= 1e-4 * scale.max(1.0),
                "{dev} logit {i}: {a} vs {b}"
            );
        }
    }
}

#[test]
fn every_engine_variant_round_trips_through_shape_inference() {
    let dir = std::env::temp_dir().join(format!("engine-pretrained-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (depth, variant, preact, small) in [
        (18, Variant::B, false, true),
        (34, Variant::C, false, false),
        (50, Variant::D, false, false),
        (50, Variant::B, true, false),
    ] {
        let cfg = ResNetConfig {
            depth,
            variant,
            preact,
            zero_gamma: false,
            small_input: small,
            in_channels: 1,
            num_classes: 7,
            width: 8,
        };
        let m = ResNet::new(cfg.clone(), &mut Init::new(3, DType::F32, Device::Cpu)).unwrap();
        let path = dir.join(format!("r{depth}{variant:?}{preact}.safetensors"));
        save_module(&path, &m, &Default::default()).unwrap();
        let p = load_pretrained_resnet(&path, DType::F32, Device::Cpu).unwrap();
        assert_eq!(p.config, cfg);
        assert!(p.class_names.is_empty());
    }
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn weights_that_fit_no_resnet_are_rejected_clearly() {
    let dir = std::env::temp_dir().join(format!("engine-pretrained-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let missing = load_pretrained_resnet(&dir.join("nope.safetensors"), DType::F32, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(missing.contains("convert_torchvision.py"), "{missing}");
    // A module that is no ResNet at all.
    let lin =
        engine::nn::Linear::new(&mut Init::new(0, DType::F32, Device::Cpu), 3, 2, true).unwrap();
    let path = dir.join("linear.safetensors");
    save_module(&path, &lin, &Default::default()).unwrap();
    let e = load_pretrained_resnet(&path, DType::F32, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("match no ResNet"), "{e}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn fine_tuning_starts_from_the_file_and_reinitialises_a_new_head() {
    use engine::nn::named_params;
    use engine::train::checkpoint::init_from;
    let path = fixture_dir().join("tiny_resnet50_torchvision.safetensors");
    let src = load_pretrained_resnet(&path, DType::F32, Device::Cpu).unwrap();
    // Same architecture with 10 classes instead of 5: everything but the head is copied.
    let cfg = ResNetConfig {
        num_classes: 10,
        ..src.config.clone()
    };
    let m = ResNet::new(cfg, &mut Init::new(9, DType::F32, Device::Cpu)).unwrap();
    let fresh = init_from(&path, &m).unwrap();
    assert_eq!(fresh, ["fc.weight", "fc.bias"]);
    let theirs: std::collections::HashMap<String, Vec<f64>> = named_params(&src.model)
        .into_iter()
        .map(|(n, p)| (n, p.tensor.to_vec_f64().unwrap()))
        .collect();
    for (n, p) in named_params(&m) {
        if !n.starts_with("fc.") {
            assert_eq!(p.tensor.to_vec_f64().unwrap(), theirs[&n], "{n}");
        }
    }
    // Another depth does not fit: a clear error naming missing tensors.
    let r18 = ResNet::new(
        ResNetConfig {
            depth: 18,
            ..src.config.clone()
        },
        &mut Init::new(0, DType::F32, Device::Cpu),
    )
    .unwrap();
    let e = init_from(&path, &r18).err().unwrap().to_string();
    assert!(e.contains("same architecture"), "{e}");
}
