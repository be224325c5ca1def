//! CUDA against the CPU backend for softmax, the losses, the AdaIN/plane-statistics ops and the SGD
//! kernels: forward values and gradients from `.backward()` on both devices, in f16, f32 and f64, on
//! shapes the fixtures do not reach (rows longer than one block, 1000+ classes, batch 1, style batch 1,
//! strided softmax dims, many pair-loss chunks). Runs only in `--features cuda` builds on a machine with
//! a usable GPU; otherwise it prints why and passes, unless `ENGINE_REQUIRE_CUDA=1` turns a missing GPU
//! into a failure.

use engine::nn::{Param, ParamKind};
use engine::optim::sgd::all_finite;
use engine::optim::{Sgd, SgdConfig};
use engine::testing::compare;
use engine::{DType, Device, GradStore, Result, Tensor};

use engine::testing::cuda_device as cuda;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (2e-2, 1e-2),
    }
}

fn check(what: &str, dtype: DType, dev: Device, got: &Tensor, want: &Tensor) {
    assert_eq!(got.device(), dev, "{what}: result left the device");
    assert_eq!(got.shape(), want.shape(), "{what}: shape");
    assert_eq!(got.dtype(), want.dtype(), "{what}: dtype");
    let (atol, rtol) = tol(dtype);
    let (max, ok) = compare(
        &got.to_vec_f64().unwrap(),
        &want.to_vec_f64().unwrap(),
        atol,
        rtol,
    );
    assert!(ok, "{what} [{dtype}]: max |cuda − cpu| = {max:.3e}");
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
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        check(&format!("{what} #{i}"), dtype, dev, g, w);
    }
}

/// The value of `f(vars)` followed by the gradient of `f(vars) · w` (summed) for every input: `w` is
/// a fixed random weight so that softmax-like outputs get a non-trivial upstream gradient.
fn value_and_grads(
    inputs: &[Tensor],
    w: Option<&Tensor>,
    f: impl Fn(&[Tensor]) -> Result<Tensor>,
) -> Result<Vec<Tensor>> {
    let vars: Vec<Tensor> = inputs.iter().map(|t| t.var()).collect();
    let y = f(&vars)?;
    let scalar = match w {
        Some(w) => y.mul(w)?.sum_all()?,
        None => y.sum_all()?,
    };
    let grads = scalar.backward()?;
    let mut out = vec![y.detach()];
    for v in &vars {
        out.push(grads.get(v).expect("gradient").clone());
    }
    Ok(out)
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu).unwrap()
}

/// Probability rows: softmax of random logits.
fn probs(dims: &[usize], seed: u64) -> Tensor {
    randn(dims, seed).softmax(-1).unwrap()
}

const DTYPES: [DType; 3] = [DType::F16, DType::F32, DType::F64];

#[test]
fn softmax_every_strategy() {
    let Some(dev) = cuda() else { return };
    // (shape, dim): warp rows, block rows (4096 and a non-multiple of 256), batch 1, inner > 1 with
    // one thread per lane (short rows; many rows), inner > 1 with one block per lane (few long rows),
    // dim 0, a single element.
    let cases: [(&[usize], isize); 9] = [
        (&[7, 10], -1),
        (&[3, 4096], -1),
        (&[5, 3000], 1),
        (&[1, 1000], -1),
        (&[4, 6, 5], 1),
        (&[16, 40, 160], 1),
        (&[2, 300, 3], 1),
        (&[300, 4], 0),
        (&[1], 0),
    ];
    for dtype in DTYPES {
        for (i, (shape, dim)) in cases.iter().enumerate() {
            let x = randn(shape, 100 + i as u64).scale(3.0).unwrap();
            let w = randn(shape, 200 + i as u64).to_dtype(dtype).unwrap();
            for log in [false, true] {
                let what = format!(
                    "{} {shape:?} dim {dim}",
                    if log { "log_softmax" } else { "softmax" }
                );
                let (w_cpu, w_gpu) = (w.clone(), w.to_device(dev).unwrap());
                same(&what, dtype, dev, std::slice::from_ref(&x), |v| {
                    let w = if v[0].device() == dev { &w_gpu } else { &w_cpu };
                    value_and_grads(v, Some(w), |t| {
                        if log {
                            t[0].log_softmax(*dim)
                        } else {
                            t[0].softmax(*dim)
                        }
                    })
                });
            }
        }
    }
}

#[test]
fn softmax_extreme_logits_stay_finite() {
    let Some(dev) = cuda() else { return };
    let x = Tensor::from_f64s(
        &[1000.0, 1001.0, 999.0, -1000.0, 0.0, 1000.0],
        [2, 3],
        DType::F64,
        Device::Cpu,
    )
    .unwrap();
    for dtype in [DType::F32, DType::F64] {
        same(
            "extreme softmax",
            dtype,
            dev,
            std::slice::from_ref(&x),
            |v| Ok(vec![v[0].softmax(-1)?, v[0].log_softmax(-1)?]),
        );
    }
}

#[test]
fn cross_entropy_soft_and_hard() {
    let Some(dev) = cuda() else { return };
    // (N, K): warp rows, 1000 classes (warp, 32 per lane), rows longer than a block, batch 1.
    for (i, &(n, k)) in [(37, 10), (16, 1000), (5, 3000), (1, 1000), (1, 7)]
        .iter()
        .enumerate()
    {
        let logits = randn(&[n, k], 300 + i as u64).scale(2.0).unwrap();
        let t = probs(&[n, k], 400 + i as u64);
        // Targets that do not sum to one exercise the Σt factor of the backward.
        let t_unnorm = t.scale(1.7).unwrap();
        let labels: Vec<usize> = (0..n).map(|r| (r * 7 + 3) % k).collect();
        for dtype in DTYPES {
            for (name, targets) in [("probs", &t), ("unnormalised", &t_unnorm)] {
                same(
                    &format!("cross_entropy_soft {name} [{n}, {k}]"),
                    dtype,
                    dev,
                    &[logits.clone(), targets.clone()],
                    |v| value_and_grads(&v[..1], None, |x| x[0].cross_entropy_soft(&v[1])),
                );
            }
            for eps in [0.0, 0.1] {
                same(
                    &format!("cross_entropy eps {eps} [{n}, {k}]"),
                    dtype,
                    dev,
                    std::slice::from_ref(&logits),
                    |v| value_and_grads(v, None, |x| x[0].cross_entropy(&labels, eps)),
                );
            }
        }
    }
}

#[test]
fn cross_entropy_is_deterministic_on_device() {
    let Some(dev) = cuda() else { return };
    let logits = randn(&[513, 1000], 7).to_device(dev).unwrap();
    let t = probs(&[513, 1000], 8).to_device(dev).unwrap();
    let a = logits.cross_entropy_soft(&t).unwrap().to_scalar().unwrap();
    for _ in 0..3 {
        let b = logits.cross_entropy_soft(&t).unwrap().to_scalar().unwrap();
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "batch mean must be bit-for-bit reproducible"
        );
    }
}

#[test]
fn distillation_loss() {
    let Some(dev) = cuda() else { return };
    for (i, &(n, k)) in [(9, 10), (4, 1000), (3, 2500), (1, 5)].iter().enumerate() {
        let s = randn(&[n, k], 500 + i as u64).scale(2.0).unwrap();
        let t = randn(&[n, k], 600 + i as u64).scale(2.0).unwrap();
        for dtype in DTYPES {
            for temp in [1.0, 4.0] {
                same(
                    &format!("distillation T={temp} [{n}, {k}]"),
                    dtype,
                    dev,
                    &[s.clone(), t.clone()],
                    |v| value_and_grads(&v[..1], None, |x| x[0].distillation_loss(&v[1], temp)),
                );
            }
        }
    }
    // A teacher with a probability that underflows to zero (the p == 0 branch).
    let s = Tensor::from_f64s(&[0.0, 1.0, 2.0], [1, 3], DType::F64, Device::Cpu).unwrap();
    let t = Tensor::from_f64s(&[0.0, 500.0, -500.0], [1, 3], DType::F64, Device::Cpu).unwrap();
    for dtype in [DType::F32, DType::F64] {
        same(
            "distillation p = 0",
            dtype,
            dev,
            &[s.clone(), t.clone()],
            |v| value_and_grads(&v[..1], None, |x| x[0].distillation_loss(&v[1], 1.0)),
        );
    }
}

#[test]
fn pair_losses() {
    let Some(dev) = cuda() else { return };
    // One element, one chunk, many chunks (> 8192 elements each).
    for (i, dims) in [&[1usize][..], &[10, 100], &[3, 100_003]]
        .iter()
        .enumerate()
    {
        let a = randn(dims, 700 + i as u64).scale(3.0).unwrap();
        let b = randn(dims, 800 + i as u64);
        let bits = b.gt_zero_f64();
        for dtype in DTYPES {
            let sz = format!("{dims:?}");
            same(
                &format!("mse {sz}"),
                dtype,
                dev,
                &[a.clone(), b.clone()],
                |v| value_and_grads(v, None, |x| x[0].mse_loss(&x[1])),
            );
            same(
                &format!("l1 {sz}"),
                dtype,
                dev,
                &[a.clone(), b.clone()],
                |v| value_and_grads(v, None, |x| x[0].l1_loss(&x[1])),
            );
            same(
                &format!("bce {sz}"),
                dtype,
                dev,
                &[a.clone(), bits.clone()],
                |v| value_and_grads(&v[..1], None, |x| x[0].bce_with_logits(&v[1])),
            );
        }
    }
    // L1 ties (gradient 0) and large |logits| for BCE.
    let a = Tensor::from_f64s(&[1.0, -2.0, 30.0, -30.0], [4], DType::F64, Device::Cpu).unwrap();
    let b = Tensor::from_f64s(&[1.0, -2.0, 1.0, 0.0], [4], DType::F64, Device::Cpu).unwrap();
    for dtype in DTYPES {
        same("l1 ties", dtype, dev, &[a.clone(), b.clone()], |v| {
            value_and_grads(v, None, |x| x[0].l1_loss(&x[1]))
        });
        same("bce saturated", dtype, dev, &[a.clone(), b.clone()], |v| {
            value_and_grads(&v[..1], None, |x| x[0].bce_with_logits(&v[1]))
        });
    }
}

/// 0/1 targets from the sign of a tensor (a helper for BCE).
trait Bits {
    fn gt_zero_f64(&self) -> Tensor;
}
impl Bits for Tensor {
    fn gt_zero_f64(&self) -> Tensor {
        let v: Vec<f64> = self
            .to_vec_f64()
            .unwrap()
            .iter()
            .map(|&x| if x > 0.0 { 1.0 } else { 0.0 })
            .collect();
        Tensor::from_f64s(&v, self.shape().clone(), DType::F64, Device::Cpu).unwrap()
    }
}

#[test]
fn plane_statistics() {
    let Some(dev) = cuda() else { return };
    // Warp planes, block planes (40·40 = 1600 > 1024), batch 1.
    for (i, dims) in [&[2usize, 3, 5, 7][..], &[1, 2, 40, 40], &[1, 1, 1, 2]]
        .iter()
        .enumerate()
    {
        let x = randn(dims, 900 + i as u64)
            .scale(2.0)
            .unwrap()
            .add_scalar(0.5)
            .unwrap();
        let w = randn(&[dims[0], dims[1], 1, 1], 950 + i as u64);
        for dtype in DTYPES {
            let (w_cpu, w_gpu) = (
                w.to_dtype(dtype).unwrap(),
                w.to_dtype(dtype).unwrap().to_device(dev).unwrap(),
            );
            let pick = |t: &Tensor| {
                if t.device() == dev {
                    w_gpu.clone()
                } else {
                    w_cpu.clone()
                }
            };
            same(
                &format!("channel_mean {dims:?}"),
                dtype,
                dev,
                std::slice::from_ref(&x),
                |v| {
                    let w = pick(&v[0]);
                    value_and_grads(v, Some(&w), |t| t[0].channel_mean())
                },
            );
            same(
                &format!("channel_std {dims:?}"),
                dtype,
                dev,
                std::slice::from_ref(&x),
                |v| {
                    let w = pick(&v[0]);
                    value_and_grads(v, Some(&w), |t| t[0].channel_std(1e-5))
                },
            );
        }
    }
}

#[test]
fn adain_forward_and_backward() {
    let Some(dev) = cuda() else { return };
    // (content, style): per-plane style, broadcast style batch 1, style of another size, planes
    // longer than a block, batch 1.
    let cases: [(&[usize], &[usize]); 5] = [
        (&[2, 3, 5, 7], &[2, 3, 4, 4]),
        (&[4, 3, 6, 6], &[1, 3, 5, 3]),
        (&[2, 2, 40, 40], &[1, 2, 33, 35]),
        (&[1, 4, 8, 8], &[1, 4, 8, 8]),
        (&[3, 2, 3, 3], &[3, 2, 50, 30]),
    ];
    for (i, (cs, ss)) in cases.iter().enumerate() {
        let c = randn(cs, 1000 + i as u64)
            .scale(1.5)
            .unwrap()
            .add_scalar(0.3)
            .unwrap();
        let s = randn(ss, 1100 + i as u64)
            .scale(0.7)
            .unwrap()
            .add_scalar(-0.2)
            .unwrap();
        let w = randn(cs, 1200 + i as u64);
        for dtype in DTYPES {
            let (w_cpu, w_gpu) = (
                w.to_dtype(dtype).unwrap(),
                w.to_dtype(dtype).unwrap().to_device(dev).unwrap(),
            );
            same(
                &format!("adain {cs:?} style {ss:?}"),
                dtype,
                dev,
                &[c.clone(), s.clone()],
                |v| {
                    let w = if v[0].device() == dev { &w_gpu } else { &w_cpu };
                    value_and_grads(v, Some(w), |x| x[0].adain(&x[1], 1e-5))
                },
            );
        }
    }
}

#[test]
fn all_finite_every_dtype() {
    let Some(dev) = cuda() else { return };
    let big = randn(&[1_000_003], 13);
    for dtype in DTYPES {
        let ok = big.to_dtype(dtype).unwrap().to_device(dev).unwrap();
        assert!(all_finite(&ok).unwrap(), "finite [{dtype}]");
        for (pos, bad) in [
            (0usize, f64::INFINITY),
            (999_999, f64::NAN),
            (500_000, f64::NEG_INFINITY),
        ] {
            let mut v = big.to_vec_f64().unwrap();
            v[pos] = bad;
            let t = Tensor::from_f64s(&v, [v.len()], dtype, dev).unwrap();
            assert!(!all_finite(&t).unwrap(), "{bad} at {pos} [{dtype}]");
        }
    }
    // f16 overflow: 1e5 is finite in f32 but inf once rounded to f16.
    let t = Tensor::from_f64s(&[1.0, 1e5], [2], DType::F16, dev).unwrap();
    assert!(!all_finite(&t).unwrap());
}

/// Three SGD steps (momentum, Nesterov or not, weight decay skipped for biases, loss scale) on both
/// devices, for f32 and f64 parameters and for f16 parameters with f32 masters; compares parameters
/// and optimiser state.
#[test]
fn sgd_steps_match_cpu() {
    let Some(dev) = cuda() else { return };
    for dtype in DTYPES {
        for nesterov in [false, true] {
            let w0 = randn(&[300, 70], 21);
            let b0 = randn(&[70], 22);
            let grads0: Vec<(Tensor, Tensor)> = (0..3)
                .map(|s| (randn(&[300, 70], 30 + s), randn(&[70], 40 + s)))
                .collect();
            let run = |device: Device| -> Vec<Tensor> {
                // Fresh buffers: `assign` replaces a parameter's storage in place, which a tensor sharing
                // it (e.g. `w0` itself, through a no-op `to_dtype`/`to_device`) would see.
                let fresh = |t: &Tensor| {
                    Tensor::from_f64s(&t.to_vec_f64().unwrap(), t.shape().clone(), dtype, device)
                        .unwrap()
                };
                let w = Param::new(fresh(&w0), ParamKind::Weight);
                let b = Param::new(fresh(&b0), ParamKind::Bias);
                let mut opt = Sgd::new(
                    vec![("w".into(), w.clone()), ("b".into(), b.clone())],
                    SgdConfig {
                        momentum: 0.9,
                        nesterov,
                        weight_decay: 5e-4,
                        no_bias_decay: true,
                    },
                )
                .unwrap();
                for (gw, gb) in &grads0 {
                    let mut gs = GradStore::default();
                    let scale = 128.0;
                    gs.insert(
                        &w.tensor,
                        gw.scale(scale)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap()
                            .to_device(device)
                            .unwrap(),
                    );
                    gs.insert(
                        &b.tensor,
                        gb.scale(scale)
                            .unwrap()
                            .to_dtype(dtype)
                            .unwrap()
                            .to_device(device)
                            .unwrap(),
                    );
                    assert!(opt.step(&gs, 0.1, scale).unwrap());
                }
                let mut out = vec![w.tensor.detach(), b.tensor.detach()];
                out.extend(opt.state_tensors().into_iter().map(|(_, t)| t));
                out
            };
            let want = run(Device::Cpu);
            let got = run(dev);
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                check(
                    &format!("sgd nesterov={nesterov} tensor {i}"),
                    dtype,
                    dev,
                    g,
                    w,
                );
            }
        }
    }
}
