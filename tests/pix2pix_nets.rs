//! The pix2pix building blocks against PyTorch references (fixture `pix2pix`, written by
//! tools/fixtures/gen_pix2pix.py) and their own invariants:
//! - U-Net (num_downs 6, ngf 2) and PatchGAN (n_layers 2, ndf 8, through `forward_pair`) in training
//!   mode: output, input gradient, every parameter gradient and the updated BN statistics, in f64
//!   and f32 on every device; the engine's names cover the reference's state dict one to one;
//! - the full-size networks have the reference's parameter counts (unet_256: 54 413 955; the 70×70
//!   PatchGAN on 6 channels: 2 768 705), dropout levels and receptive field;
//! - the perceptual loss (L1 and MSE, non-uniform tap weights) and its input gradient; zero for
//!   identical images, growing with noise; the network frozen; an f64 finite-difference check;
//!   constructors from torchvision-named safetensors and from an engine checkpoint;
//! - wrong input channels are errors that say what was expected;
//! - on a CUDA device, an iteration of the pix2pix objective reads device memory four times.

use engine::models::perceptual::{IMAGENET_MEAN, IMAGENET_STD};
use engine::models::{
    FeatureDistance, InputRange, PatchGan, PatchGanConfig, PerceptualConfig, PerceptualLoss,
    ResNet, ResNetConfig, UnetConfig, UnetGenerator, Variant,
};
use engine::nn::init::Init;
use engine::nn::{count_trainable, named_params, state, Mode, Module, ParamKind};
use engine::optim::{DynamicLossScaler, Sgd, SgdConfig};
use engine::testing::{check_gradients, test_devices, Fixtures};
use engine::train::checkpoint::{self, RunState};
use engine::train::{Recipe, TrainConfig};
use engine::{DType, Device, Tensor};
use std::collections::BTreeSet;

fn fixtures() -> Fixtures {
    Fixtures::load("pix2pix")
}

/// The engine names a fixture case's `reference_names` maps onto equal the module's names.
fn assert_names_cover_reference(case: &str, model: &dyn Module) {
    let mapped: BTreeSet<String> = fixtures().params(case)["reference_names"]
        .as_object()
        .expect("reference_names")
        .values()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let ours: BTreeSet<String> = named_params(model).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        ours, mapped,
        "{case}: engine names vs mapped reference names"
    );
}

fn small_unet(dropout: bool) -> UnetConfig {
    UnetConfig {
        in_channels: 2,
        out_channels: 1,
        num_downs: 6,
        ngf: 2,
        dropout,
    }
}

#[test]
fn unet_matches_pytorch_reference_in_training_mode() {
    let fx = fixtures();
    let case = "unet_d6_ngf2";
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            let g =
                UnetGenerator::new(small_unet(false), &mut Init::new(0, dtype, device)).unwrap();
            assert_names_cover_reference(case, &g);
            fx.check_network(case, &g, dtype, device, |x| g.forward(x, Mode::TRAIN));
        }
    }
}

#[test]
fn patchgan_matches_pytorch_reference_through_forward_pair() {
    let fx = fixtures();
    let case = "patchgan_n2_ndf8";
    let cfg = PatchGanConfig {
        in_channels: 6,
        ndf: 8,
        n_layers: 2,
    };
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            let d = PatchGan::new(cfg.clone(), &mut Init::new(0, dtype, device)).unwrap();
            assert_names_cover_reference(case, &d);
            fx.check_network(case, &d, dtype, device, |x| {
                d.forward_pair(&x.narrow(1, 0, 3)?, &x.narrow(1, 3, 3)?, Mode::TRAIN)
            });
        }
    }
}

#[test]
fn full_size_networks_have_the_reference_structure() {
    let init = &mut Init::new(0, DType::F32, Device::Cpu);
    let g = UnetGenerator::new(UnetConfig::unet_256(3, 3), init).unwrap();
    assert_eq!(
        count_trainable(&g),
        54_413_955,
        "pix2pix prints 54.414 M for unet_256"
    );
    assert_eq!(g.dropout_levels(), vec![4, 5, 6]);
    let biases: Vec<String> = named_params(&g)
        .into_iter()
        .filter(|(_, p)| p.kind == ParamKind::Bias)
        .map(|(n, _)| n)
        .collect();
    assert_eq!(biases, vec!["up.0.conv.bias".to_string()]);
    // pix2pix's normal init: conv weights N(0, 0.02), BN γ N(1, 0.02).
    let w = named_params(&g)[0].1.tensor.to_vec_f64().unwrap();
    let std = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std - 0.02).abs() < 0.003, "down.0 weight std {std}");

    let d = PatchGan::new(PatchGanConfig::pix2pix(6), init).unwrap();
    assert_eq!(
        count_trainable(&d),
        2_768_705,
        "pix2pix prints 2.769 M for basic D"
    );
    assert_eq!(d.receptive_field(), 70);
    let thin = PatchGan::new(
        PatchGanConfig {
            ndf: 4,
            ..PatchGanConfig::pix2pix(6)
        },
        init,
    )
    .unwrap();
    let x = Tensor::zeros([1, 6, 256, 256], DType::F32, Device::Cpu).unwrap();
    assert_eq!(
        thin.forward(&x, Mode::EVAL).unwrap().dims(),
        &[1, 1, 30, 30]
    );
}

#[test]
fn unet_dropout_is_in_the_intermediate_levels_and_only_in_training() {
    let x = Tensor::randn(vec![1, 2, 128, 128], 0.0, 1.0, 5, DType::F32, Device::Cpu).unwrap();
    for dropout in [false, true] {
        let cfg = UnetConfig {
            num_downs: 7,
            ..small_unet(dropout)
        };
        let g = UnetGenerator::new(cfg, &mut Init::new(1, DType::F32, Device::Cpu)).unwrap();
        assert_eq!(
            g.dropout_levels(),
            if dropout { vec![4, 5] } else { vec![] }
        );
        let run = |mode| g.forward(&x, mode).unwrap().to_vec::<f32>().unwrap();
        let (a, b) = (run(Mode::TRAIN), run(Mode::TRAIN));
        assert_eq!(a.len(), 128 * 128);
        assert!(a.iter().all(|v| v.abs() <= 1.0), "tanh output");
        assert_eq!(
            a != b,
            dropout,
            "training outputs differ only through dropout"
        );
        assert_eq!(run(Mode::EVAL), run(Mode::EVAL));
    }
}

#[test]
fn wrong_inputs_are_clear_errors() {
    let init = &mut Init::new(0, DType::F32, Device::Cpu);
    let g = UnetGenerator::new(small_unet(false), init).unwrap();
    let err = |r: engine::Result<Tensor>| r.unwrap_err().to_string();
    let x3 = Tensor::zeros([1, 3, 64, 64], DType::F32, Device::Cpu).unwrap();
    let e = err(g.forward(&x3, Mode::TRAIN));
    assert!(e.contains("3 channels") && e.contains("takes 2"), "{e}");
    let odd = Tensor::zeros([1, 2, 48, 64], DType::F32, Device::Cpu).unwrap();
    let e = err(g.forward(&odd, Mode::TRAIN));
    assert!(e.contains("multiples of 64"), "{e}");

    let d = PatchGan::new(PatchGanConfig::pix2pix(6), init).unwrap();
    let e = err(d.forward(&x3, Mode::TRAIN));
    assert!(e.contains("[N, 6, H, W]"), "{e}");
    let e = err(d.forward_pair(&x3, &odd, Mode::TRAIN));
    assert!(e.contains("add up to 6"), "{e}");

    let p = PerceptualLoss::new(
        tiny_resnet(DType::F32, 0),
        &[0.5],
        &[0.25],
        Default::default(),
    )
    .unwrap();
    let one = Tensor::zeros([1, 1, 16, 16], DType::F32, Device::Cpu).unwrap();
    let e = err(p.loss(&one, &one));
    assert!(e.contains("takes 3 input channels"), "{e}");
    let three = Tensor::zeros([1, 3, 16, 16], DType::F32, Device::Cpu).unwrap();
    let e = err(p.loss(
        &three,
        &Tensor::zeros([1, 3, 8, 8], DType::F32, Device::Cpu).unwrap(),
    ));
    assert!(e.contains("same shape"), "{e}");
    let bad = PerceptualConfig {
        tap_weights: vec![0.0; 5],
        ..Default::default()
    };
    assert!(PerceptualLoss::new(tiny_resnet(DType::F32, 0), &[0.5], &[0.25], bad).is_err());
}

/// ResNet-18 of width 4 with the 7×7 stem (the fixture's network), 3 channels, 10 classes.
fn perceptual_resnet_config() -> ResNetConfig {
    ResNetConfig {
        depth: 18,
        variant: Variant::B,
        preact: false,
        zero_gamma: false,
        small_input: false,
        in_channels: 3,
        num_classes: 10,
        width: 4,
    }
}

fn tiny_resnet(dtype: DType, seed: u64) -> ResNet {
    ResNet::new(
        perceptual_resnet_config(),
        &mut Init::new(seed, dtype, Device::Cpu),
    )
    .unwrap()
}

/// The perceptual loss over `tiny_resnet(dtype, seed)` with ImageNet normalisation.
fn tiny_perceptual(dtype: DType, seed: u64, cfg: PerceptualConfig) -> PerceptualLoss {
    PerceptualLoss::new(tiny_resnet(dtype, seed), &IMAGENET_MEAN, &IMAGENET_STD, cfg).unwrap()
}

#[test]
fn perceptual_loss_matches_pytorch() {
    let fx = fixtures();
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            for (case, distance) in [
                ("perceptual_l1", FeatureDistance::L1),
                ("perceptual_mse", FeatureDistance::Mse),
            ] {
                let p = fx.params(case);
                assert_eq!(p["range"], "minus_one_to_one");
                let w: Vec<f64> = p["tap_weights"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_f64().unwrap())
                    .collect();
                let cfg = PerceptualConfig {
                    range: InputRange::MinusOneToOne,
                    distance,
                    tap_weights: w,
                };
                // The network is stored once, with the first case.
                let net = ResNet::new(perceptual_resnet_config(), &mut Init::new(0, dtype, device))
                    .unwrap();
                fx.load_params("perceptual_l1", &net, device);
                let loss = PerceptualLoss::new(net, &IMAGENET_MEAN, &IMAGENET_STD, cfg).unwrap();
                let tol = fx.network_tolerance(case, dtype);
                let what = format!("{case} [{dtype} on {device}]");
                let output = fx.tensor(&format!("{case}/in/output"), dtype, device).var();
                let target = fx.tensor(&format!("{case}/in/target"), dtype, device).var();
                let l = loss.loss(&output, &target).unwrap();
                assert_eq!(l.dims(), &[] as &[usize], "{what}: scalar");
                let close = |name: &str, t: &Tensor, key: &str| {
                    fx.assert_matches(&format!("{what} {name}"), t, key, dtype, tol)
                };
                close("loss", &l, &format!("{case}/out"));
                let gout = fx.tensor(&format!("{case}/grad_out"), dtype, device);
                let grads = l.mul(&gout).unwrap().backward().unwrap();
                close(
                    "grad output",
                    grads.get(&output).unwrap(),
                    &format!("{case}/grad/output"),
                );
                assert!(
                    grads.get(&target).is_none(),
                    "{what}: the target gets no gradient"
                );
                assert_eq!(grads.len(), 1, "{what}: only the output has a gradient");
            }
        }
    }
}

/// Images in (−1, 1) and a fixed noise pattern.
fn image_and_noise(dtype: DType, n: usize, size: usize) -> (Tensor, Tensor) {
    let dims = vec![n, 3, size, size];
    let img = Tensor::randn(dims.clone(), 0.0, 1.0, 21, dtype, Device::Cpu)
        .unwrap()
        .tanh()
        .unwrap();
    let noise = Tensor::randn(dims, 0.0, 1.0, 22, dtype, Device::Cpu).unwrap();
    (img, noise)
}

#[test]
fn perceptual_loss_is_zero_for_identical_images_and_grows_with_noise() {
    for distance in [FeatureDistance::L1, FeatureDistance::Mse] {
        let cfg = PerceptualConfig {
            distance,
            tap_weights: vec![1.0, 0.5, 0.25, 2.0, 1.0],
            ..Default::default()
        };
        let p = tiny_perceptual(DType::F32, 2, cfg);
        let (img, noise) = image_and_noise(DType::F32, 2, 32);
        assert_eq!(p.loss(&img, &img).unwrap().to_scalar().unwrap(), 0.0);
        let at = |sigma: f64| {
            let distorted = img.add(&noise.scale(sigma).unwrap()).unwrap();
            p.loss(&distorted, &img).unwrap().to_scalar().unwrap()
        };
        let losses: Vec<f64> = [0.05, 0.1, 0.2].iter().map(|&s| at(s)).collect();
        assert!(
            0.0 < losses[0] && losses[0] < losses[1] && losses[1] < losses[2],
            "{distance:?}: {losses:?} must grow with the noise"
        );
    }
}

#[test]
fn perceptual_network_is_frozen() {
    let p = tiny_perceptual(DType::F32, 3, PerceptualConfig::default());
    let params = named_params(p.network());
    assert_eq!(
        params.len(),
        named_params(&tiny_resnet(DType::F32, 3)).len()
    );
    assert_eq!(count_trainable(p.network()), 0, "nothing to train");
    assert!(params.iter().all(|(_, q)| q.kind == ParamKind::Buffer));
    assert!(params.iter().all(|(_, q)| !q.tensor.requires_grad()));
    let before: Vec<Vec<f64>> = params
        .iter()
        .map(|(_, q)| q.tensor.to_vec_f64().unwrap())
        .collect();
    let (img, noise) = image_and_noise(DType::F32, 2, 32);
    let x = img.add(&noise.scale(0.1).unwrap()).unwrap().var();
    let grads = p.loss(&x, &img).unwrap().backward().unwrap();
    assert_eq!(grads.len(), 1, "a gradient for the input only");
    let g = grads.get(&x).expect("the input gets a gradient");
    assert!(g.to_vec_f64().unwrap().iter().any(|v| *v != 0.0));
    for ((name, q), b) in params.iter().zip(&before) {
        assert_eq!(&q.tensor.to_vec_f64().unwrap(), b, "{name} changed");
    }
}

#[test]
fn perceptual_input_gradient_matches_finite_differences() {
    for (distance, range) in [
        (FeatureDistance::Mse, InputRange::MinusOneToOne),
        (FeatureDistance::L1, InputRange::ZeroToOne),
    ] {
        let cfg = PerceptualConfig {
            range,
            distance,
            tap_weights: vec![1.0, 0.5, 2.0, 0.0, 1.5],
        };
        let p = tiny_perceptual(DType::F64, 4, cfg);
        let (img, noise) = image_and_noise(DType::F64, 1, 16);
        let x = img.add(&noise.scale(0.3).unwrap()).unwrap();
        check_gradients(
            &format!("perceptual {distance:?}"),
            &[x],
            |xs| p.loss(&xs[0], &img),
            24,
            1e-7,
            1e-5,
        )
        .unwrap();
    }
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("engine-pix2pix-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d.join(name)
}

#[test]
fn perceptual_loss_loads_torchvision_files_and_engine_checkpoints() {
    let cfg = PerceptualConfig::default();
    let (img, noise) = image_and_noise(DType::F64, 1, 32);
    let distorted = img.add(&noise.scale(0.2).unwrap()).unwrap();

    // torchvision names (variant B) in a safetensors file: the same loss as from the network itself.
    let net = tiny_resnet(DType::F64, 5);
    let path = temp_path("resnet18_w4.safetensors");
    state::save_module(&path, &net, &Default::default()).unwrap();
    let direct = PerceptualLoss::new(net, &IMAGENET_MEAN, &IMAGENET_STD, cfg.clone()).unwrap();
    let loaded = PerceptualLoss::from_torchvision(
        &path,
        perceptual_resnet_config(),
        cfg.clone(),
        DType::F64,
        Device::Cpu,
    )
    .unwrap();
    let want = direct.loss(&distorted, &img).unwrap().to_scalar().unwrap();
    assert_eq!(
        loaded.loss(&distorted, &img).unwrap().to_scalar().unwrap(),
        want
    );
    assert_eq!(count_trainable(loaded.network()), 0);
    let wrong = ResNetConfig {
        width: 8,
        ..perceptual_resnet_config()
    };
    let e = PerceptualLoss::from_torchvision(&path, wrong, cfg.clone(), DType::F64, Device::Cpu)
        .err()
        .expect("a file of another width is refused")
        .to_string();
    assert!(e.contains("shape"), "{e}");

    // An engine training checkpoint (1-channel Fashion-MNIST run): its own normalisation.
    let train_cfg = TrainConfig::fashion_mnist(
        Recipe::Baseline,
        Default::default(),
        18,
        4,
        Default::default(),
    );
    let net = ResNet::new(
        train_cfg.model.clone(),
        &mut Init::new(6, DType::F32, Device::Cpu),
    )
    .unwrap();
    let opt = Sgd::new(named_params(&net), SgdConfig::default()).unwrap();
    let run = RunState {
        epoch: 1,
        step: 10,
        scaler: DynamicLossScaler::disabled(),
        ..RunState::start(train_cfg.clone())
    };
    let path = temp_path("checkpoint.safetensors");
    checkpoint::save(&path, &net, &opt, &run).unwrap();
    let (mean, std) = (
        train_cfg.augment.mean[0] as f64,
        train_cfg.augment.std[0] as f64,
    );
    let direct = PerceptualLoss::new(net, &[mean], &[std], cfg.clone()).unwrap();
    let loaded =
        engine::train::checkpoint::perceptual_loss(&path, cfg, DType::F32, Device::Cpu).unwrap();
    let (gray, gray_noise) = (
        img.narrow(1, 0, 1).unwrap().to_dtype(DType::F32).unwrap(),
        noise.narrow(1, 0, 1).unwrap().to_dtype(DType::F32).unwrap(),
    );
    let distorted = gray.add(&gray_noise.scale(0.2).unwrap()).unwrap();
    let want = direct.loss(&distorted, &gray).unwrap().to_scalar().unwrap();
    assert!(want > 0.0);
    assert_eq!(
        loaded.loss(&distorted, &gray).unwrap().to_scalar().unwrap(),
        want
    );
    std::fs::remove_dir_all(path.parent().unwrap()).ok();
}

/// A pix2pix iteration (the trainer's objective and two Adam steps, through `bench-pix2pix`) reads
/// the device four times: each loss with its terms in one read, each optimiser's finiteness check
/// in one. One read per term or per gradient (about 60 for unet_256 and its PatchGAN) would drain
/// a GPU's queue each time.
#[test]
fn a_pix2pix_iteration_reads_the_device_four_times() {
    use engine::bench::{bench_pix2pix, Pix2pixBenchOptions};
    let Some(device) = engine::testing::cuda_device() else {
        return;
    };
    let v = bench_pix2pix(&Pix2pixBenchOptions::smoke(device));
    assert_eq!(v["status"], "ok", "{v}");
    assert_eq!(v["device_reads_per_iter"], 4.0, "{v}");
}
