//! Whole-network checks of the engine's ResNets against torchvision:
//! - parameter names and shapes equal torchvision's resnet18/34/50/101 state dicts (so checkpoints
//!   map 1:1 and torchvision weights load into variant B);
//! - a tiny-width ResNet-18 (basic blocks, small-input stem) and ResNet-50 (bottlenecks, 7×7 stem,
//!   max pool) in training mode give PyTorch's logits, the gradients of the input and of every
//!   parameter, and the updated BN running statistics (fixture `models`), in f64 and f32, on every
//!   device; f32 is held to 4× PyTorch's own f32 error on the same case.

use engine::models::{ResNet, ResNetConfig, Variant};
use engine::nn::init::Init;
use engine::nn::{named_params, Mode, Module};
use engine::testing::{test_devices, Fixtures};
use engine::{DType, Device, Tensor};

fn config(
    depth: usize,
    width: usize,
    in_channels: usize,
    num_classes: usize,
    small_input: bool,
) -> ResNetConfig {
    ResNetConfig {
        depth,
        variant: Variant::B,
        preact: false,
        zero_gamma: false,
        small_input,
        in_channels,
        num_classes,
        width,
    }
}

#[test]
fn parameter_names_and_shapes_match_torchvision() {
    let path = format!("{}/torchvision_names.json", engine::testing::fixtures_dir());
    let all: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for (arch, depth) in [
        ("resnet18", 18),
        ("resnet34", 34),
        ("resnet50", 50),
        ("resnet101", 101),
    ] {
        let expected: Vec<(String, Vec<usize>)> = all[arch]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e[0].as_str().unwrap().to_string(),
                    e[1].as_array()
                        .unwrap()
                        .iter()
                        .map(|d| d.as_u64().unwrap() as usize)
                        .collect(),
                )
            })
            .collect();
        let model = ResNet::new(
            config(depth, 64, 3, 1000, false),
            &mut Init::new(0, DType::F32, Device::Cpu),
        )
        .unwrap();
        let ours: Vec<(String, Vec<usize>)> = named_params(&model)
            .into_iter()
            .map(|(n, p)| (n, p.tensor.dims().to_vec()))
            .collect();
        assert_eq!(ours.len(), expected.len(), "{arch}: tensor count");
        for (o, e) in ours.iter().zip(&expected) {
            assert_eq!(o, e, "{arch}: first difference");
        }
    }
}

fn check_network(case: &str, cfg: ResNetConfig, dtype: DType, device: Device) {
    let model = ResNet::new(cfg, &mut Init::new(0, dtype, device)).unwrap();
    Fixtures::load("models").check_network(case, &model, dtype, device, |x| {
        model.forward(x, Mode::TRAIN)
    });
}

#[test]
fn tiny_resnet18_matches_pytorch_in_training_mode() {
    for device in test_devices() {
        check_network(
            "resnet18_w4",
            config(18, 4, 1, 10, true),
            DType::F64,
            device,
        );
        check_network(
            "resnet18_w4",
            config(18, 4, 1, 10, true),
            DType::F32,
            device,
        );
    }
}

/// The same ResNet-50 case with channels-last weights (`ResNet::to_channels_last`) and input: on
/// CUDA every conv, batch norm and pool then runs on NHWC storage (f32; f64 convolutions stay NCHW),
/// and the logits and every gradient still match PyTorch's; the weights stay channels-last after the
/// fixture's values are assigned into them.
#[test]
fn tiny_resnet50_channels_last_matches_pytorch() {
    use engine::MemoryFormat::ChannelsLast;
    for device in test_devices() {
        for dtype in [DType::F64, DType::F32] {
            let mut model =
                ResNet::new(config(50, 4, 3, 5, false), &mut Init::new(0, dtype, device)).unwrap();
            model.to_channels_last().unwrap();
            Fixtures::load("models").check_network("resnet50_w4", &model, dtype, device, |x| {
                model.forward(&x.to_format(ChannelsLast)?, Mode::TRAIN)
            });
            for (name, p) in named_params(&model) {
                if p.tensor.rank() == 4 {
                    assert_eq!(p.tensor.format(), ChannelsLast, "{name} on {device}");
                }
            }
        }
    }
}

#[test]
fn tiny_resnet50_matches_pytorch_in_training_mode() {
    for device in test_devices() {
        check_network(
            "resnet50_w4",
            config(50, 4, 3, 5, false),
            DType::F64,
            device,
        );
        check_network(
            "resnet50_w4",
            config(50, 4, 3, 5, false),
            DType::F32,
            device,
        );
    }
}

#[test]
fn variants_build_and_run_with_expected_shapes() {
    let x = Tensor::randn(vec![2, 3, 32, 32], 0.0, 1.0, 3, DType::F32, Device::Cpu).unwrap();
    for variant in [Variant::A, Variant::B, Variant::C, Variant::D] {
        for preact in [false, true] {
            for depth in [18, 50] {
                let cfg = ResNetConfig {
                    depth,
                    variant,
                    preact,
                    zero_gamma: true,
                    small_input: false,
                    in_channels: 3,
                    num_classes: 7,
                    width: 8,
                };
                let m = ResNet::new(cfg, &mut Init::new(1, DType::F32, Device::Cpu)).unwrap();
                let (taps, logits) = m.forward_features(&x, Mode::TRAIN).unwrap();
                assert_eq!(logits.dims(), &[2, 7]);
                assert_eq!(taps.len(), 5);
                let expansion = if depth == 50 { 4 } else { 1 };
                assert_eq!(
                    taps[4].dims()[1],
                    64 * expansion,
                    "{variant:?} preact={preact} depth={depth}"
                );
                let names: Vec<String> = named_params(&m).into_iter().map(|(n, _)| n).collect();
                if matches!(variant, Variant::C | Variant::D) {
                    assert!(
                        names.contains(&"conv1.6.weight".to_string()),
                        "deep stem names"
                    );
                }
                if variant == Variant::D {
                    assert!(
                        names.contains(&"layer2.0.downsample.1.weight".to_string()),
                        "pooled shortcut names"
                    );
                }
            }
        }
    }
}

#[test]
fn zero_gamma_zeroes_the_last_bn_of_each_block_only() {
    let cfg = ResNetConfig {
        depth: 50,
        variant: Variant::B,
        preact: false,
        zero_gamma: true,
        small_input: true,
        in_channels: 1,
        num_classes: 3,
        width: 4,
    };
    let m = ResNet::new(cfg, &mut Init::new(1, DType::F32, Device::Cpu)).unwrap();
    for (name, p) in named_params(&m) {
        if name.ends_with(".weight") && name.contains(".bn") {
            let v = p.tensor.to_vec::<f32>().unwrap();
            let expect = if name.ends_with("bn3.weight") {
                0.0
            } else {
                1.0
            };
            assert!(v.iter().all(|&g| g == expect), "{name}: {:?}", &v[..2]);
        }
    }
}
