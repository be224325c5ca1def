//! CUDA against the CPU backend for batch norm (plain, fused ReLU, fused residual + ReLU; training and
//! eval), pooling, resizing and dropout: forward values, running statistics updated in place, and
//! gradients from `.backward()` on both devices, in f16, f32 and f64 — and, for batch norm, f16
//! activations with f32 parameters. Shapes the fixtures do not reach: channels split over several
//! blocks, outputs above the launch grid (grid-stride loops), batch 1, odd planes (scalar loads), `[N, C]`
//! inputs (the row-major reductions: partial channel tiles, several splits per tile), ceil-mode and
//! non-square pools. Runs only in `--features cuda` builds on a machine with a
//! usable GPU; otherwise it prints why and passes, unless `ENGINE_REQUIRE_CUDA=1` turns a missing GPU
//! into a failure.

use engine::testing::compare;
use engine::{BatchNormArgs, DType, Device, Pool2dParams, Result, Tensor};

use engine::testing::cuda_device as cuda;

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (2e-2, 1e-2),
    }
}

/// Runs `f` once on the CPU and once on `dev` and compares every output (tolerance of `dtype`, the
/// activations' dtype).
fn both(what: &str, dtype: DType, dev: Device, f: impl Fn(Device) -> Result<Vec<Tensor>>) {
    let want = f(Device::Cpu).unwrap_or_else(|e| panic!("{what} [{dtype}] cpu: {e}"));
    let got = f(dev).unwrap_or_else(|e| panic!("{what} [{dtype}] cuda: {e}"));
    assert_eq!(got.len(), want.len(), "{what}: output count");
    let (atol, rtol) = tol(dtype);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g.device(), dev, "{what} #{i}: result left the device");
        assert_eq!(g.shape(), w.shape(), "{what} #{i}: shape");
        assert_eq!(g.dtype(), w.dtype(), "{what} #{i}: dtype");
        let (max, ok) = compare(
            &g.to_vec_f64().unwrap(),
            &w.to_vec_f64().unwrap(),
            atol,
            rtol,
        );
        assert!(ok, "{what} #{i} [{dtype}]: max |cuda − cpu| = {max:.3e}");
    }
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu).unwrap()
}

/// `t` in `dtype` on `dev`.
fn on(t: &Tensor, dtype: DType, dev: Device) -> Tensor {
    t.to_dtype(dtype).unwrap().to_device(dev).unwrap()
}

/// `[y, d(Σ y·w)/d v for v in vars]`, with a fixed random upstream weight `w` (f64 on the CPU).
fn value_and_grads(y: Tensor, w: &Tensor, vars: &[&Tensor]) -> Result<Vec<Tensor>> {
    let w = w.to_dtype(y.dtype())?.to_device(y.device())?;
    let grads = y.mul(&w)?.sum_all()?.backward()?;
    let mut out = vec![y.detach()];
    for v in vars {
        out.push(grads.get(v).expect("gradient").clone());
    }
    Ok(out)
}

/// `(left, right, top, bottom)`.
type Pad4 = (usize, usize, usize, usize);

const DTYPES: [DType; 3] = [DType::F16, DType::F32, DType::F64];

#[derive(Clone, Copy, Debug, PartialEq)]
enum BnKind {
    Plain,
    Relu,
    AddRelu,
}

/// One batch-norm case on one device: outputs `[y, grads…, running_mean, running_var]`.
#[allow(clippy::too_many_arguments)]
fn bn_run(
    dev: Device,
    dims: &[usize],
    xdt: DType,
    pdt: DType,
    kind: BnKind,
    training: bool,
    affine: bool,
    seed: u64,
) -> Result<Vec<Tensor>> {
    let c = dims[1];
    // An offset mean and a non-unit spread, so the statistics matter.
    let x = on(&randn(dims, seed).scale(2.5)?.add_scalar(1.5)?, xdt, dev).var();
    let res = on(&randn(dims, seed + 1), xdt, dev).var();
    let w = on(&randn(&[c], seed + 2).add_scalar(1.0)?, pdt, dev).var();
    let b = on(&randn(&[c], seed + 3), pdt, dev).var();
    let rm = on(&randn(&[c], seed + 4).scale(0.3)?, pdt, dev);
    let rv = on(&randn(&[c], seed + 5).abs()?.add_scalar(0.5)?, pdt, dev);
    let args = BatchNormArgs {
        weight: affine.then_some(&w),
        bias: affine.then_some(&b),
        running_mean: Some(&rm),
        running_var: Some(&rv),
        training,
        momentum: 0.1,
        eps: 1e-5,
    };
    let y = match kind {
        BnKind::Plain => x.batch_norm(&args)?,
        BnKind::Relu => x.batch_norm_relu(&args)?,
        BnKind::AddRelu => x.batch_norm_add_relu(&res, &args)?,
    };
    let mut vars = vec![&x];
    if affine {
        vars.push(&w);
        vars.push(&b);
    }
    if kind == BnKind::AddRelu {
        vars.push(&res);
    }
    let mut out = value_and_grads(y, &randn(dims, seed + 6), &vars)?;
    out.push(rm);
    out.push(rv);
    Ok(out)
}

#[test]
fn batch_norm_every_variant() {
    let Some(dev) = cuda() else { return };
    // Vector planes, several blocks per channel (65536 values per channel), odd planes (scalar loads),
    // batch 1, `[N, C]` input (hw = 1, strided channels), many channels.
    let shapes: [&[usize]; 6] = [
        &[4, 6, 8, 8],
        &[4, 2, 128, 128],
        &[3, 5, 13, 11],
        &[1, 8, 33, 31],
        &[37, 19],
        &[2, 300, 4, 4],
    ];
    // (x dtype, parameter dtype): every dtype, plus f16 activations with f32 parameters.
    let dtypes = [
        (DType::F16, DType::F16),
        (DType::F16, DType::F32),
        (DType::F32, DType::F32),
        (DType::F64, DType::F64),
    ];
    for (si, dims) in shapes.iter().enumerate() {
        for (xdt, pdt) in dtypes {
            for kind in [BnKind::Plain, BnKind::Relu, BnKind::AddRelu] {
                for training in [true, false] {
                    let affine = !(si == 2 && kind == BnKind::Plain);
                    let what =
                        format!("{kind:?} {dims:?} x {xdt} params {pdt} training {training}");
                    both(&what, xdt, dev, |d| {
                        bn_run(d, dims, xdt, pdt, kind, training, affine, 10 + si as u64)
                    });
                }
            }
        }
    }
}

#[test]
fn batch_norm_rows_inputs() {
    let Some(dev) = cuda() else { return };
    // `[N, C]` inputs (hw = 1: the row-major reduction kernels): a partial last 32-channel tile with
    // many rows (several splits per tile), whole tiles, fewer rows than a split's minimum.
    let shapes: [&[usize]; 3] = [&[2000, 37], &[260, 64], &[5, 70]];
    let dtypes = [
        (DType::F16, DType::F16),
        (DType::F16, DType::F32),
        (DType::F32, DType::F32),
        (DType::F64, DType::F64),
    ];
    for (si, dims) in shapes.iter().enumerate() {
        for (xdt, pdt) in dtypes {
            for kind in [BnKind::Plain, BnKind::Relu, BnKind::AddRelu] {
                for training in [true, false] {
                    let what =
                        format!("rows {kind:?} {dims:?} x {xdt} params {pdt} training {training}");
                    both(&what, xdt, dev, |d| {
                        bn_run(d, dims, xdt, pdt, kind, training, true, 50 + si as u64)
                    });
                }
            }
        }
    }
}

#[test]
fn batch_norm_large_grid() {
    let Some(dev) = cuda() else { return };
    // 1.6M elements: more than the launch grid's threads; 16 channels of 102400 values.
    let dims = [4, 16, 160, 160];
    for (xdt, pdt) in [(DType::F16, DType::F32), (DType::F32, DType::F32)] {
        both("bn add relu large", xdt, dev, |d| {
            bn_run(d, &dims, xdt, pdt, BnKind::AddRelu, true, true, 77)
        });
    }
}

fn pool_cases() -> Vec<(&'static str, Pool2dParams)> {
    vec![
        ("k3 s2 p1", Pool2dParams::new(3, 2, 1)),
        ("k2 s2 p0", Pool2dParams::new(2, 2, 0)),
        ("k2 s2 p0 ceil", Pool2dParams::new(2, 2, 0).ceil()),
        ("k3 s2 p1 ceil", Pool2dParams::new(3, 2, 1).ceil()),
        ("k3 s1 p1", Pool2dParams::new(3, 1, 1)),
        (
            "k3x2 s2x1 p1x0 ceil",
            Pool2dParams {
                kernel: (3, 2),
                stride: (2, 1),
                padding: (1, 0),
                ceil_mode: true,
            },
        ),
    ]
}

#[test]
fn pools_forward_and_backward() {
    let Some(dev) = cuda() else { return };
    let shapes: [&[usize]; 4] = [
        &[2, 3, 17, 15],
        &[1, 1, 5, 5],
        &[3, 8, 9],
        &[2, 16, 200, 180],
    ];
    for dtype in DTYPES {
        for (si, dims) in shapes.iter().enumerate() {
            let big = si == 3;
            let x0 = randn(dims, 300 + si as u64);
            for (name, p) in pool_cases() {
                if big && name != "k3 s2 p1 ceil" && name != "k2 s2 p0" {
                    continue;
                }
                let what = format!("max_pool2d {name} {dims:?}");
                both(&what, dtype, dev, |d| {
                    let x = on(&x0, dtype, d).var();
                    let y = x.max_pool2d(p)?;
                    let w = randn(y.dims(), 400);
                    value_and_grads(y, &w, &[&x])
                });
                for incl in [true, false] {
                    let what = format!("avg_pool2d {name} incl {incl} {dims:?}");
                    both(&what, dtype, dev, |d| {
                        let x = on(&x0, dtype, d).var();
                        let y = x.avg_pool2d(p, incl)?;
                        let w = randn(y.dims(), 401);
                        value_and_grads(y, &w, &[&x])
                    });
                }
            }
            let what = format!("global_avg_pool2d {dims:?}");
            both(&what, dtype, dev, |d| {
                let x = on(&x0, dtype, d).var();
                let y = x.global_avg_pool2d()?;
                let w = randn(y.dims(), 402);
                value_and_grads(y, &w, &[&x])
            });
        }
        // Planes above 1024 elements: one block per plane.
        both("global_avg_pool2d block planes", dtype, dev, |d| {
            let x = on(&randn(&[3, 5, 40, 37], 403), dtype, d).var();
            let y = x.global_avg_pool2d()?;
            value_and_grads(y, &randn(&[3, 5, 1, 1], 404), &[&x])
        });
    }
}

#[test]
fn max_pool_ties_and_constant_planes() {
    let Some(dev) = cuda() else { return };
    // Rounded values make ties: the first maximum in window order must win on both devices.
    let vals: Vec<f64> = (0..660).map(|i| ((i * 7919) % 5) as f64 - 2.0).collect();
    let x0 = Tensor::from_f64s(&vals, vec![2, 3, 11, 10], DType::F64, Device::Cpu).unwrap();
    for dtype in DTYPES {
        for (name, p) in pool_cases() {
            both(&format!("max_pool2d ties {name}"), dtype, dev, |d| {
                let x = on(&x0, dtype, d).var();
                let y = x.max_pool2d(p)?;
                let w = randn(y.dims(), 501);
                value_and_grads(y, &w, &[&x])
            });
        }
    }
}

#[test]
fn resize_forward_and_backward() {
    let Some(dev) = cuda() else { return };
    for dtype in DTYPES {
        for (dims, scale) in [
            (&[2usize, 3, 5, 7][..], 2usize),
            (&[1, 2, 3, 2][..], 3),
            (&[2, 8, 128, 128][..], 2),
            (&[1, 1, 4, 4][..], 1),
        ] {
            both(&format!("upsample x{scale} {dims:?}"), dtype, dev, |d| {
                let x = on(&randn(dims, 600), dtype, d).var();
                let y = x.upsample_nearest2d(scale)?;
                let w = randn(y.dims(), 601);
                value_and_grads(y, &w, &[&x])
            });
        }
        let pads: [(&[usize], Pad4); 5] = [
            (&[2, 3, 5, 6], (1, 2, 3, 1)),
            (&[1, 2, 5, 5], (4, 4, 3, 3)),
            (&[3, 6, 7], (2, 1, 0, 4)),
            (&[2, 1, 2, 2], (1, 1, 1, 1)),
            (&[2, 8, 256, 250], (3, 3, 3, 3)),
        ];
        for (dims, pad) in pads {
            both(
                &format!("reflection_pad2d {pad:?} {dims:?}"),
                dtype,
                dev,
                |d| {
                    let x = on(&randn(dims, 602), dtype, d).var();
                    let y = x.reflection_pad2d(pad)?;
                    let w = randn(y.dims(), 603);
                    value_and_grads(y, &w, &[&x])
                },
            );
            both(&format!("zero_pad2d {pad:?} {dims:?}"), dtype, dev, |d| {
                let x = on(&randn(dims, 604), dtype, d).var();
                let y = x.zero_pad2d(pad)?;
                let w = randn(y.dims(), 605);
                value_and_grads(y, &w, &[&x])
            });
        }
    }
}

#[test]
fn dropout_forward_and_backward() {
    let Some(dev) = cuda() else { return };
    for dtype in DTYPES {
        for (dims, p) in [(&[7usize, 13][..], 0.3), (&[3, 400_009][..], 0.5)] {
            both(&format!("dropout p {p} {dims:?}"), dtype, dev, |d| {
                let x = on(&randn(dims, 700), dtype, d).var();
                let y = x.dropout(p, 42, true)?;
                let w = randn(y.dims(), 701);
                value_and_grads(y, &w, &[&x])
            });
        }
    }
}
