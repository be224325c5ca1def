//! cuDNN convolutions (src/backend/cuda/conv/) against the CPU backend: conv2d and conv_transpose2d,
//! forward values and the gradients w.r.t. input, weight and bias from `.backward()`, in f16, f32 and
//! f64, on ResNet-50-style layers (7×7 s2 stem, 1×1 s2 projection, 3×3 bottleneck, 512-channel 3×3),
//! groups, depthwise, dilation, asymmetric stride/padding/kernels, batch 1, pix2pix's k4 s2 p1
//! transposed convolution, output padding (including output_padding ≥ stride, which needs the
//! crop/zero-pad path), plus the plan cache (a repeated shape must hit it) and the exhaustive search.
//! Runs only in `--features cuda` builds on a machine with a usable GPU; otherwise it prints why and
//! passes, unless `ENGINE_REQUIRE_CUDA=1` turns a missing GPU into a failure.
//!
//! Tolerances are relative to the largest magnitude of the expected tensor (`scale`), because
//! convolution outputs and especially weight gradients are sums of hundreds or thousands of terms:
//! `|cuda − cpu| ≤ atol·scale + rtol·|cpu|`.

use engine::{Conv2dParams, ConvTranspose2dParams, DType, Device, Result, Tensor};
use std::sync::Mutex;

/// Serialises the tests of this file: the cache test reads process-wide counters and the search
/// test sets an environment variable.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

use engine::testing::cuda_device as cuda;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (1e-2, 1e-2),
    }
}

fn check(what: &str, dtype: DType, dev: Device, got: &Tensor, want: &Tensor) {
    assert_eq!(got.device(), dev, "{what}: result left the device");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (g, w) = (got.to_vec_f64().unwrap(), want.to_vec_f64().unwrap());
    let scale = w.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    let (atol, rtol) = tol(dtype);
    let mut max = 0.0f64;
    let mut bad = None;
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        let d = (a - b).abs();
        max = max.max(d);
        if (d.is_nan() || d > atol * scale + rtol * b.abs()) && bad.is_none() {
            bad = Some((i, *a, *b));
        }
    }
    if let Some((i, a, b)) = bad {
        panic!(
            "{what} [{dtype}]: element {i}: cuda {a} vs cpu {b}; max |cuda − cpu| = {max:.3e} \
             (scale {scale:.3e})"
        );
    }
}

/// Runs `f` on CPU and CUDA copies of the same inputs (cast to `dtype`) and compares every output.
fn same(
    what: &str,
    dtype: DType,
    dev: Device,
    inputs: &[Tensor],
    f: impl Fn(&[Tensor]) -> Result<Vec<Tensor>>,
) {
    let cpu_in: Vec<Tensor> = inputs.iter().map(|t| t.to_dtype(dtype).unwrap()).collect();
    let gpu_in: Vec<Tensor> = cpu_in.iter().map(|t| t.to_device(dev).unwrap()).collect();
    let want = f(&cpu_in).unwrap_or_else(|e| panic!("{what} [{dtype}] cpu: {e}"));
    let got = f(&gpu_in).unwrap_or_else(|e| panic!("{what} [{dtype}] cuda: {e}"));
    assert_eq!(got.len(), want.len(), "{what}: output count");
    let names = ["y", "dx", "dw", "db"];
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        check(&format!("{what} {}", names[i]), dtype, dev, g, w);
    }
}

fn randn(dims: &[usize], seed: u64, std: f64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, std, seed, DType::F64, Device::Cpu).unwrap()
}

/// `[y, dx, dw, (db)]` for `y = f(x, w, (b))` and the loss `Σ y·r` (r a fixed random tensor, last input).
fn value_and_grads(
    v: &[Tensor],
    f: impl Fn(&Tensor, &Tensor, Option<&Tensor>) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let r = v.last().expect("r");
    let vars: Vec<Tensor> = v[..v.len() - 1].iter().map(|t| t.var()).collect();
    let y = f(&vars[0], &vars[1], vars.get(2))?;
    let grads = y.mul(r)?.sum_all()?.backward()?;
    let mut out = vec![y.detach()];
    for t in &vars {
        out.push(grads.get(t).expect("gradient").clone());
    }
    Ok(out)
}

const DTYPES: [DType; 3] = [DType::F16, DType::F32, DType::F64];

struct Case {
    name: &'static str,
    x: [usize; 4],
    /// conv2d: [Cout, Cin/groups, kh, kw]; conv_transpose2d: [Cin, Cout/groups, kh, kw].
    w: [usize; 4],
    stride: (usize, usize),
    padding: (usize, usize),
    dilation: (usize, usize),
    groups: usize,
    /// conv_transpose2d only.
    output_padding: (usize, usize),
    bias: bool,
}

const fn case(name: &'static str, x: [usize; 4], w: [usize; 4]) -> Case {
    Case {
        name,
        x,
        w,
        stride: (1, 1),
        padding: (0, 0),
        dilation: (1, 1),
        groups: 1,
        output_padding: (0, 0),
        bias: false,
    }
}

impl Case {
    const fn s(self, s: usize) -> Case {
        Case {
            stride: (s, s),
            ..self
        }
    }
    const fn p(self, p: usize) -> Case {
        Case {
            padding: (p, p),
            ..self
        }
    }
    const fn d(self, d: usize) -> Case {
        Case {
            dilation: (d, d),
            ..self
        }
    }
    const fn g(self, g: usize) -> Case {
        Case { groups: g, ..self }
    }
    const fn op(self, o: usize) -> Case {
        Case {
            output_padding: (o, o),
            ..self
        }
    }
    const fn b(self) -> Case {
        Case { bias: true, ..self }
    }

    /// x, w (scaled by 1/√fan-in so outputs stay O(1)), (bias), and the upstream weight r.
    fn inputs(&self, transposed: bool, seed: u64) -> Vec<Tensor> {
        let x = randn(&self.x, seed, 1.0);
        let fan_in = (self.w[1] * self.w[2] * self.w[3]) as f64;
        let w = randn(&self.w, seed + 1, 1.0 / fan_in.sqrt());
        let probe =
            |x: &Tensor, w: &Tensor| -> Tensor { self.run(transposed, x, w, None).unwrap() };
        let y_dims = probe(&x, &w).dims().to_vec();
        let mut v = vec![x, w];
        if self.bias {
            v.push(randn(&[y_dims[1]], seed + 2, 1.0));
        }
        v.push(randn(&y_dims, seed + 3, 1.0));
        v
    }

    fn run(&self, transposed: bool, x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> Result<Tensor> {
        if transposed {
            x.conv_transpose2d(
                w,
                b,
                ConvTranspose2dParams {
                    stride: self.stride,
                    padding: self.padding,
                    output_padding: self.output_padding,
                    dilation: self.dilation,
                    groups: self.groups,
                },
            )
        } else {
            x.conv2d(
                w,
                b,
                Conv2dParams {
                    stride: self.stride,
                    padding: self.padding,
                    dilation: self.dilation,
                    groups: self.groups,
                },
            )
        }
    }
}

fn check_cases(dev: Device, cases: &[Case], transposed: bool) {
    for (i, c) in cases.iter().enumerate() {
        let inputs = c.inputs(transposed, 100 + 10 * i as u64);
        for dtype in DTYPES {
            same(c.name, dtype, dev, &inputs, |v| {
                value_and_grads(v, |x, w, b| c.run(transposed, x, w, b))
            });
        }
    }
}

#[test]
fn conv2d_resnet_layers() {
    let _s = serial();
    let Some(dev) = cuda() else { return };
    let cases = [
        case("7x7 s2 p3 stem", [2, 3, 32, 32], [16, 3, 7, 7])
            .s(2)
            .p(3),
        case("1x1 s2 projection", [2, 64, 16, 16], [128, 64, 1, 1]).s(2),
        case("1x1 reduce", [2, 256, 8, 8], [64, 256, 1, 1]),
        case("3x3 p1 bottleneck + bias", [2, 64, 14, 14], [64, 64, 3, 3])
            .p(1)
            .b(),
        case("3x3 s2 p1 odd input", [2, 32, 15, 15], [48, 32, 3, 3])
            .s(2)
            .p(1),
        case(
            "3x3 p1 512 channels, batch 1",
            [1, 512, 7, 7],
            [512, 512, 3, 3],
        )
        .p(1),
        case("batch 1 + bias", [1, 16, 8, 8], [32, 16, 3, 3])
            .p(1)
            .b(),
    ];
    check_cases(dev, &cases, false);
}

#[test]
fn conv2d_groups_dilation_asymmetric() {
    let _s = serial();
    let Some(dev) = cuda() else { return };
    let cases = [
        case("groups 2 + bias", [2, 8, 10, 10], [12, 4, 3, 3])
            .p(1)
            .g(2)
            .b(),
        case("depthwise 3x3", [2, 16, 12, 12], [16, 1, 3, 3])
            .p(1)
            .g(16),
        case("depthwise s2 multiplier 2", [2, 8, 11, 11], [16, 1, 3, 3])
            .s(2)
            .p(1)
            .g(8),
        case("dilation 2", [2, 8, 13, 13], [8, 8, 3, 3]).p(2).d(2),
        Case {
            stride: (2, 1),
            padding: (1, 0),
            dilation: (1, 2),
            bias: true,
            ..case("asymmetric", [1, 5, 11, 9], [7, 5, 3, 2])
        },
        case("kernel = input", [3, 4, 5, 5], [6, 4, 5, 5]),
    ];
    check_cases(dev, &cases, false);
}

#[test]
fn conv_transpose2d_cases() {
    let _s = serial();
    let Some(dev) = cuda() else { return };
    let cases = [
        case("k4 s2 p1 (pix2pix) + bias", [2, 16, 8, 8], [16, 8, 4, 4])
            .s(2)
            .p(1)
            .b(),
        case(
            "k3 s2 p1 output_padding 1 + bias",
            [2, 8, 7, 7],
            [8, 6, 3, 3],
        )
        .s(2)
        .p(1)
        .op(1)
        .b(),
        case(
            "k4 s2 p1 output_padding 1, batch 1",
            [1, 8, 5, 5],
            [8, 4, 4, 4],
        )
        .s(2)
        .p(1)
        .op(1),
        case("groups 2 s2 output_padding 1", [1, 8, 5, 5], [8, 3, 3, 3])
            .s(2)
            .g(2)
            .op(1)
            .b(),
        // output_padding ≥ stride (allowed because it is < dilation): cuDNN's formula output is larger
        // than the geometry's, which exercises the crop / zero-pad path in all three kernels.
        case("s1 d2 output_padding 1", [1, 4, 6, 6], [4, 5, 3, 3])
            .d(2)
            .op(1)
            .b(),
        Case {
            stride: (3, 1),
            dilation: (1, 3),
            output_padding: (2, 2),
            ..case("asymmetric output_padding", [2, 3, 4, 5], [3, 4, 2, 3])
        },
    ];
    check_cases(dev, &cases, true);
}

#[cfg(feature = "cuda")]
#[test]
fn repeated_shape_hits_the_plan_cache() {
    use engine::backend::cuda::conv_cache_stats;
    let _s = serial();
    let Some(dev) = cuda() else { return };
    // A shape no other test uses.
    let c = case("cache", [3, 5, 9, 9], [7, 5, 3, 3]).p(1);
    let v: Vec<Tensor> = c
        .inputs(false, 7)
        .iter()
        .map(|t| t.to_dtype(DType::F32).unwrap().to_device(dev).unwrap())
        .collect();
    let s0 = conv_cache_stats();
    let y1 = c.run(false, &v[0], &v[1], None).unwrap();
    let s1 = conv_cache_stats();
    assert_eq!(s1.misses, s0.misses + 1, "first call builds one plan");
    assert_eq!(s1.hits, s0.hits, "first call cannot hit");
    let y2 = c.run(false, &v[0], &v[1], None).unwrap();
    let s2 = conv_cache_stats();
    assert_eq!(s2.misses, s1.misses, "second call must not build a plan");
    assert_eq!(s2.hits, s1.hits + 1, "second call must hit the cache");
    assert_eq!(s2.workspace_grows, s1.workspace_grows, "no new workspace");
    assert_eq!(y1.to_vec_f64().unwrap(), y2.to_vec_f64().unwrap());
    // Same geometry in another dtype is another plan.
    let v16: Vec<Tensor> = v.iter().map(|t| t.to_dtype(DType::F16).unwrap()).collect();
    c.run(false, &v16[0], &v16[1], None).unwrap();
    assert_eq!(conv_cache_stats().misses, s2.misses + 1);
}

#[cfg(feature = "cuda")]
#[test]
fn exhaustive_search_matches_cpu() {
    use engine::backend::cuda::conv_cache_stats;
    let _s = serial();
    let Some(dev) = cuda() else { return };
    let before = std::env::var("ENGINE_CUDNN_SEARCH").ok();
    std::env::set_var("ENGINE_CUDNN_SEARCH", "exhaustive");
    let s0 = conv_cache_stats();
    let cases = [
        case("exhaustive 3x3 + bias", [2, 24, 13, 13], [40, 24, 3, 3])
            .p(1)
            .b(),
    ];
    let result = std::panic::catch_unwind(|| check_cases(dev, &cases, false));
    let t = [case("exhaustive transposed", [2, 6, 5, 5], [6, 4, 4, 4])
        .s(2)
        .p(1)];
    let result_t = std::panic::catch_unwind(|| check_cases(dev, &t, true));
    match before {
        Some(v) => std::env::set_var("ENGINE_CUDNN_SEARCH", v),
        None => std::env::remove_var("ENGINE_CUDNN_SEARCH"),
    }
    result.unwrap();
    result_t.unwrap();
    let s1 = conv_cache_stats();
    // 2 shapes × 3 dtypes × (forward, backward-data, backward-filter).
    assert_eq!(s1.exhaustive_searches - s0.exhaustive_searches, 18);
}
