//! Workloads shared by the CPU benchmarks (`benches/conv_cpu.rs`, `benches/train_step_cpu.rs`) and
//! the side-by-side comparison binary (`examples/bench_cpu.rs`, driven by
//! `scripts/bench_cpu_vs_torch.sh`): ResNet-50 conv shapes with their FLOP counts, a conv
//! forward + backward runner over the CPU kernels, and one ResNet training step (forward,
//! cross-entropy, backward, SGD). Included with `#[path]`/`mod common;`, not a bench target itself.
#![allow(dead_code)]

use engine::backend::cpu::{run, CpuStorage};
use engine::models::resnet::{ResNet, ResNetConfig, Variant};
use engine::nn::init::Init;
use engine::nn::{named_params, Mode, Module};
use engine::ops::conv::{Conv2dBackwardInput, Conv2dBackwardWeight, Conv2dForward, Conv2dGeometry};
use engine::optim::sgd::{Sgd, SgdConfig};
use engine::{Conv2dParams, DType, Device, Result, Tensor};

/// One convolution shape: `x [n, cin, hw, hw] * w [cout, cin, k, k]`, stride `stride`, padding
/// `k / 2`, one group (every conv of a ResNet).
#[derive(Clone, Copy, Debug)]
pub struct ConvCase {
    pub name: &'static str,
    pub n: usize,
    pub cin: usize,
    pub cout: usize,
    pub hw: usize,
    pub k: usize,
    pub stride: usize,
}

impl ConvCase {
    pub fn pad(&self) -> usize {
        self.k / 2
    }
    pub fn out_hw(&self) -> usize {
        (self.hw + 2 * self.pad() - self.k) / self.stride + 1
    }
    /// Forward FLOPs `2·N·Cout·Ho·Wo·Cin·kh·kw` (groups = 1).
    pub fn fwd_flops(&self) -> f64 {
        let o = self.out_hw();
        2.0 * (self.n * self.cout * o * o * self.cin * self.k * self.k) as f64
    }
    /// Forward + backward-input + backward-weight: three products of the same size.
    pub fn flops(&self) -> f64 {
        3.0 * self.fwd_flops()
    }
    pub fn geometry(&self) -> Conv2dGeometry {
        let o = self.out_hw();
        Conv2dGeometry {
            n: self.n,
            cin: self.cin,
            h: self.hw,
            w: self.hw,
            cout: self.cout,
            kh: self.k,
            kw: self.k,
            ho: o,
            wo: o,
            stride: (self.stride, self.stride),
            padding: (self.pad(), self.pad()),
            dilation: (1, 1),
            groups: 1,
        }
    }
}

const fn case(
    name: &'static str,
    n: usize,
    cin: usize,
    cout: usize,
    hw: usize,
    k: usize,
    stride: usize,
) -> ConvCase {
    ConvCase {
        name,
        n,
        cin,
        cout,
        hw,
        k,
        stride,
    }
}

/// The anchor of `shared/notes/anchors.md`: PyTorch 2.15 does ≈ 150 GFLOP/s fwd+bwd on this shape.
pub const ANCHOR: ConvCase = case("layer3 3x3 256->256 14x14 N=32", 32, 256, 256, 14, 3, 1);

/// ResNet-50 (v1.5) layer shapes at 224² input, batch 8 unless noted.
pub const RESNET50_CONVS: &[ConvCase] = &[
    case("conv1 7x7 s2 3->64 224x224 N=8", 8, 3, 64, 224, 7, 2),
    case("layer1 1x1 64->64 56x56 N=8", 8, 64, 64, 56, 1, 1),
    case("layer1 3x3 64->64 56x56 N=8", 8, 64, 64, 56, 3, 1),
    case("layer1 1x1 64->256 56x56 N=8", 8, 64, 256, 56, 1, 1),
    case("layer2 1x1 s2 256->512 56x56 N=8", 8, 256, 512, 56, 1, 2),
    case("layer2 3x3 128->128 28x28 N=8", 8, 128, 128, 28, 3, 1),
    case("layer2 1x1 128->512 28x28 N=8", 8, 128, 512, 28, 1, 1),
    ANCHOR,
    case("layer3 1x1 256->1024 14x14 N=8", 8, 256, 1024, 14, 1, 1),
    case("layer4 3x3 512->512 7x7 N=8", 8, 512, 512, 7, 3, 1),
    case("layer4 1x1 512->2048 7x7 N=8", 8, 512, 2048, 7, 1, 1),
];

/// The subset the PyTorch comparison runs (the anchor first).
pub const COMPARE_CONVS: &[ConvCase] = &[
    ANCHOR,
    case("conv1 7x7 s2 3->64 224x224 N=8", 8, 3, 64, 224, 7, 2),
    case("layer1 3x3 64->64 56x56 N=8", 8, 64, 64, 56, 3, 1),
    case("layer1 1x1 64->256 56x56 N=8", 8, 64, 256, 56, 1, 1),
    case("layer4 3x3 512->512 7x7 N=8", 8, 512, 512, 7, 3, 1),
];

/// Seeded f32 inputs of one conv case, ready for the CPU kernels.
pub struct ConvRunner {
    pub case: ConvCase,
    geom: Conv2dGeometry,
    x: CpuStorage,
    w: CpuStorage,
    dy: CpuStorage,
}

impl ConvRunner {
    pub fn new(case: ConvCase) -> Result<ConvRunner> {
        let o = case.out_hw();
        let randn = |dims: Vec<usize>, std: f64, seed: u64| -> Result<CpuStorage> {
            let t = Tensor::randn(dims, 0.0, std, seed, DType::F32, Device::Cpu)?;
            Ok(CpuStorage::F32(t.to_vec::<f32>()?))
        };
        Ok(ConvRunner {
            case,
            geom: case.geometry(),
            x: randn(vec![case.n, case.cin, case.hw, case.hw], 1.0, 1)?,
            w: randn(vec![case.cout, case.cin, case.k, case.k], 0.05, 2)?,
            dy: randn(vec![case.n, case.cout, o, o], 1.0, 3)?,
        })
    }

    /// y = conv(x, w), dx = conv_backward_input(dy, w), dw = conv_backward_weight(x, dy): what
    /// PyTorch's `y = F.conv2d(x, w); y.backward(dy)` computes, without the autograd bookkeeping.
    pub fn fwd_bwd(&self) -> Result<()> {
        let f32s = [DType::F32];
        let geom = self.geom;
        let y = run(
            &Conv2dForward {
                geom,
                has_bias: false,
                channels_last: false,
            },
            &[&self.x, &self.w],
            &f32s,
        )?;
        let dx = run(
            &Conv2dBackwardInput {
                geom,
                has_bias: false,
                channels_last: false,
            },
            &[&self.dy, &self.w],
            &f32s,
        )?;
        let dw = run(
            &Conv2dBackwardWeight {
                geom,
                channels_last: false,
            },
            &[&self.x, &self.dy],
            &f32s,
        )?;
        std::hint::black_box((y, dx, dw));
        Ok(())
    }
}

/// The same fwd+bwd through `Tensor::conv2d` and autograd, with the loss `Σ y·dy` (so the gradient
/// reaching `y` is `dy`); adds one elementwise product, a sum and their backward.
pub struct ConvAutograd {
    pub case: ConvCase,
    x: Tensor,
    w: Tensor,
    dy: Tensor,
}

impl ConvAutograd {
    pub fn new(case: ConvCase) -> Result<ConvAutograd> {
        let o = case.out_hw();
        let f = |dims: Vec<usize>, std: f64, seed: u64| {
            Tensor::randn(dims, 0.0, std, seed, DType::F32, Device::Cpu)
        };
        Ok(ConvAutograd {
            case,
            x: f(vec![case.n, case.cin, case.hw, case.hw], 1.0, 1)?.var(),
            w: f(vec![case.cout, case.cin, case.k, case.k], 0.05, 2)?.var(),
            dy: f(vec![case.n, case.cout, o, o], 1.0, 3)?,
        })
    }
    pub fn fwd_bwd(&self) -> Result<()> {
        let p = Conv2dParams::new(self.case.stride, self.case.pad());
        let y = self.x.conv2d(&self.w, None, p)?;
        let g = y.mul(&self.dy)?.sum_all()?.backward()?;
        std::hint::black_box(g);
        Ok(())
    }
}

/// A ResNet training workload: model config, input size and batch.
#[derive(Clone, Debug)]
pub struct TrainCase {
    pub name: &'static str,
    pub config: ResNetConfig,
    pub hw: usize,
    pub batch: usize,
}

/// torchvision ResNet-18 with a 1-channel 28×28 input, 3×3 s1 stem, no max pool, 10 classes, batch
/// 128 (the anchor's Fashion-MNIST-style model: PyTorch ≈ 39.8 images/s here).
pub fn resnet18_fmnist() -> TrainCase {
    TrainCase {
        name: "ResNet-18 1x28x28 small-input stem, batch 128",
        config: ResNetConfig {
            depth: 18,
            variant: Variant::B,
            preact: false,
            zero_gamma: false,
            small_input: true,
            in_channels: 1,
            num_classes: 10,
            width: 64,
        },
        hw: 28,
        batch: 128,
    }
}

/// The Fashion-MNIST timed runs' model (docs/fashion-mnist-30min.md): ResNet-18 B at width 16 with
/// the small-input stem, 1×28×28, batch 128 (0.7 M parameters: its convs have 16–128 channels).
pub fn resnet18_fmnist_width16() -> TrainCase {
    TrainCase {
        name: "ResNet-18 width 16 1x28x28 (timed-run model), batch 128",
        config: ResNetConfig {
            width: 16,
            ..resnet18_fmnist().config
        },
        hw: 28,
        batch: 128,
    }
}

/// torchvision ResNet-50 (v1.5), 3×224×224, 1000 classes, batch 16 (PyTorch ≈ 4.4 images/s here).
pub fn resnet50_imagenet() -> TrainCase {
    TrainCase {
        name: "ResNet-50 3x224x224, batch 16",
        config: ResNetConfig::resnet50(1000),
        hw: 224,
        batch: 16,
    }
}

/// A model, its optimizer (SGD, momentum 0.9, weight decay 1e-4) and one fixed random batch.
pub struct TrainStep {
    pub case: TrainCase,
    model: ResNet,
    opt: Sgd,
    x: Tensor,
    labels: Vec<usize>,
}

impl TrainStep {
    pub fn new(case: TrainCase) -> Result<TrainStep> {
        let model = ResNet::new(
            case.config.clone(),
            &mut Init::new(0, DType::F32, Device::Cpu),
        )?;
        let opt = Sgd::new(
            named_params(&model),
            SgdConfig {
                momentum: 0.9,
                nesterov: false,
                weight_decay: 1e-4,
                no_bias_decay: false,
            },
        )?;
        let c = &case.config;
        let x = Tensor::randn(
            vec![case.batch, c.in_channels, case.hw, case.hw],
            0.0,
            1.0,
            7,
            DType::F32,
            Device::Cpu,
        )?;
        let labels = (0..case.batch).map(|i| i % c.num_classes).collect();
        Ok(TrainStep {
            case,
            model,
            opt,
            x,
            labels,
        })
    }

    /// One step as `train::trainer` does it: forward (training mode), cross-entropy, backward,
    /// SGD update (lr 1e-3). Returns the loss.
    pub fn step(&mut self) -> Result<f32> {
        let logits = self.model.forward(&self.x, Mode::TRAIN)?;
        let loss = logits.cross_entropy(&self.labels, 0.0)?;
        let value = loss.to_scalar()?;
        let grads = loss.backward()?;
        self.opt.step(&grads, 1e-3, 1.0)?;
        Ok(value as f32)
    }
}
