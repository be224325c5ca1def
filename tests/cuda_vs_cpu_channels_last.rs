//! Channels-last (NHWC) execution against the contiguous CPU reference, on every test device.
//!
//! On CUDA, `conv2d` with a channels-last input or weight runs cuDNN's NHWC path and returns a
//! channels-last output; batch norm (plain, + ReLU, + residual + ReLU), elementwise ops of one shape
//! and pooling keep the format, so a channels-last ResNet stays channels-last from its stem to its
//! global pool. On the CPU, conv2d converts once and computes in NCHW; the other ops behave as on CUDA.
//! Each test computes the same function from contiguous f64 tensors on the CPU (the reference, which
//! never touches a channels-last code path) and compares values and gradients, read in logical order.
//! The CUDA half runs on a GPU or on the simulated device (`--features cuda-sim`); without either it
//! prints "skipped CUDA" (a failure under `ENGINE_REQUIRE_CUDA=1`).
//!
//! Invariants checked: output formats (channels-last where the op keeps it, contiguous where it
//! cannot), values and gradients within the dtype's tolerance, and that a channels-last ResNet step
//! converts formats only at its NCHW-only ops (`format_conversions`).

use engine::models::resnet::{ResNet, ResNetConfig, Variant};
use engine::nn::init::Init;
use engine::nn::{named_params, Mode, Module};
use engine::ops::conv::conv2d_layout_counts;
use engine::ops::layout::format_conversions;
use engine::tensor::MemoryFormat::{self, ChannelsLast, Contiguous};
use engine::testing::{compare, test_devices};
use engine::{BatchNormArgs, Conv2dParams, DType, Device, Pool2dParams, Result, Tensor};

fn tol(dtype: DType) -> (f64, f64) {
    match dtype {
        DType::F64 => (1e-10, 1e-9),
        DType::F32 => (1e-4, 1e-4),
        DType::F16 => (2e-2, 2e-2),
    }
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    Tensor::randn(dims.to_vec(), 0.0, 1.0, seed, DType::F64, Device::Cpu).unwrap()
}

/// `t` rounded to `dtype` and back to f64 on the CPU: the reference sees exactly the device's inputs.
fn rounded(t: &Tensor, dtype: DType) -> Tensor {
    t.to_dtype(dtype).unwrap().to_dtype(DType::F64).unwrap()
}

/// `t` in `dtype` and `format` on `dev`, as a leaf that collects gradients.
fn leaf(t: &Tensor, dtype: DType, format: MemoryFormat, dev: Device) -> Tensor {
    let t = t.to_dtype(dtype).unwrap().to_device(dev).unwrap();
    let t = if t.rank() == 4 {
        t.to_format(format).unwrap()
    } else {
        t
    };
    t.detach().var()
}

/// `[y, d(Σ y·u)/d v for v in vars]` for a fixed random upstream `u`.
fn value_and_grads(y: &Tensor, u: &Tensor, vars: &[&Tensor]) -> Result<Vec<Tensor>> {
    let u = u.to_dtype(y.dtype())?.to_device(y.device())?;
    let grads = y.mul(&u)?.sum_all()?.backward()?;
    let mut out = vec![y.detach()];
    for v in vars {
        out.push(grads.get(v).expect("gradient").clone());
    }
    Ok(out)
}

fn assert_all_close(what: &str, dtype: DType, got: &[Tensor], want: &[Tensor]) {
    let (atol, rtol) = tol(dtype);
    assert_eq!(got.len(), want.len(), "{what}: output count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.shape(), w.shape(), "{what} #{i}: shape");
        let (max, ok) = compare(
            &g.to_vec_f64().unwrap(),
            &w.to_vec_f64().unwrap(),
            atol,
            rtol,
        );
        assert!(ok, "{what} #{i} [{dtype}]: max |got − want| = {max:.3e}");
    }
}

/// The format conv2d/batch norm return on `dev` for channels-last operands.
fn conv_format(dev: Device, dtype: DType) -> MemoryFormat {
    if dev.is_cpu() || dtype == DType::F64 {
        Contiguous
    } else {
        ChannelsLast
    }
}

#[test]
fn conv2d_channels_last_matches_nchw() {
    // (x dims, w dims, params, bias, weight channels-last too)
    let cases = [
        (
            [2, 8, 9, 7],
            [6, 8, 3, 3],
            Conv2dParams::new(1, 1),
            true,
            false,
        ),
        (
            [2, 8, 10, 10],
            [12, 4, 3, 3],
            Conv2dParams::new(2, 1).with_groups(2),
            false,
            true,
        ),
        (
            [3, 6, 8, 8],
            [5, 6, 1, 1],
            Conv2dParams::new(1, 0),
            true,
            true,
        ),
        (
            [1, 4, 11, 9],
            [4, 4, 3, 3],
            Conv2dParams::new(1, 2).with_dilation(2),
            false,
            false,
        ),
        (
            [2, 3, 15, 15],
            [8, 3, 7, 7],
            Conv2dParams::new(2, 3),
            false,
            true,
        ),
    ];
    for dev in test_devices() {
        for dtype in [DType::F32, DType::F16] {
            for (k, &(xd, wd, p, has_bias, w_cl)) in cases.iter().enumerate() {
                let what = format!("conv2d case {k} on {dev}");
                let seed = 10 * k as u64;
                let (x0, w0, b0) = (
                    randn(&xd, seed),
                    randn(&wd, seed + 1).scale(0.3).unwrap(),
                    randn(&[wd[0]], seed + 2),
                );
                let run = |x: &Tensor, w: &Tensor, b: &Tensor| -> Result<Vec<Tensor>> {
                    let y = x.conv2d(w, has_bias.then_some(b), p)?;
                    let u = randn(y.dims(), seed + 3);
                    let mut vars = vec![x, w];
                    if has_bias {
                        vars.push(b);
                    }
                    value_and_grads(&y, &u, &vars)
                };
                let want = {
                    let f = |t: &Tensor| rounded(t, dtype).var();
                    run(&f(&x0), &f(&w0), &f(&b0)).unwrap()
                };
                let x = leaf(&x0, dtype, ChannelsLast, dev);
                let w_format = if w_cl { ChannelsLast } else { Contiguous };
                let w = leaf(&w0, dtype, w_format, dev);
                let b = leaf(&b0, dtype, Contiguous, dev);
                let got = run(&x, &w, &b).unwrap_or_else(|e| panic!("{what} [{dtype}]: {e}"));
                assert_eq!(got[0].format(), conv_format(dev, dtype), "{what}: y format");
                assert_eq!(got[0].device(), dev, "{what}: y left the device");
                assert_all_close(&what, dtype, &got, &want);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum BnKind {
    Plain,
    Relu,
    AddRelu,
}

/// One batch-norm case: `[y, dx, dγ, dβ, (dresidual), running_mean, running_var]`.
#[allow(clippy::too_many_arguments)]
fn bn_case(
    dev: Device,
    dims: &[usize],
    xdt: DType,
    kind: BnKind,
    training: bool,
    x_format: MemoryFormat,
    res_format: MemoryFormat,
    seed: u64,
) -> Result<Vec<Tensor>> {
    let c = dims[1];
    // f64 activations need f64 parameters; f16/f32 ones take f32 (mixed precision for f16).
    let pdt = if xdt == DType::F64 {
        DType::F64
    } else {
        DType::F32
    };
    let x0 = randn(dims, seed).scale(2.5)?.add_scalar(1.5)?;
    let x = leaf(&rounded(&x0, xdt), xdt, x_format, dev);
    let res = leaf(&rounded(&randn(dims, seed + 1), xdt), xdt, res_format, dev);
    let w = leaf(
        &randn(&[c], seed + 2).add_scalar(1.0)?,
        pdt,
        Contiguous,
        dev,
    );
    let b = leaf(&randn(&[c], seed + 3), pdt, Contiguous, dev);
    let rm = randn(&[c], seed + 4)
        .scale(0.3)?
        .to_dtype(pdt)?
        .to_device(dev)?;
    let rv = randn(&[c], seed + 5)
        .abs()?
        .add_scalar(0.5)?
        .to_dtype(pdt)?
        .to_device(dev)?;
    let args = BatchNormArgs {
        weight: Some(&w),
        bias: Some(&b),
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
    assert_eq!(y.format(), x_format, "batch norm keeps its input's format");
    let mut vars = vec![&x, &w, &b];
    if kind == BnKind::AddRelu {
        vars.push(&res);
    }
    let mut out = value_and_grads(&y, &randn(dims, seed + 6), &vars)?;
    out.push(rm);
    out.push(rv);
    Ok(out)
}

#[test]
fn batch_norm_channels_last_matches_nchw() {
    // C = 37 is not a multiple of a warp; [2, 64, 6, 6] has whole tiles of channels.
    for dev in test_devices() {
        for dims in [[4usize, 37, 5, 3], [2, 64, 6, 6]] {
            for xdt in [DType::F32, DType::F16, DType::F64] {
                for kind in [BnKind::Plain, BnKind::Relu, BnKind::AddRelu] {
                    for training in [true, false] {
                        let what = format!("{kind:?} training {training} {dims:?} on {dev}");
                        // The reference: the same dtypes, contiguous, on the CPU (an f64 one would
                        // flag f16's own rounding: a ReLU mask flips where f16 y rounds to 0).
                        let want = bn_case(
                            Device::Cpu,
                            &dims,
                            xdt,
                            kind,
                            training,
                            Contiguous,
                            Contiguous,
                            7,
                        )
                        .unwrap();
                        // The residual in the other format: the op converts it.
                        let got =
                            bn_case(dev, &dims, xdt, kind, training, ChannelsLast, Contiguous, 7)
                                .unwrap_or_else(|e| panic!("{what} [{xdt}]: {e}"));
                        assert_all_close(&what, xdt, &got, &want);
                    }
                }
            }
        }
    }
}

#[test]
fn pooling_and_elementwise_keep_channels_last() {
    for dev in test_devices() {
        let x0 = randn(&[2, 5, 9, 8], 40);
        let x = x0.to_device(dev).unwrap();
        let xc = x.to_format(ChannelsLast).unwrap();
        let other = randn(&[2, 5, 9, 8], 41).to_device(dev).unwrap();
        let per_channel = randn(&[1, 5, 1, 1], 42).to_device(dev).unwrap();
        let p = Pool2dParams::new(3, 2, 1);
        let cases: Vec<(&str, Tensor, Tensor, MemoryFormat)> = vec![
            (
                "max_pool2d",
                xc.max_pool2d(p).unwrap(),
                x.max_pool2d(p).unwrap(),
                ChannelsLast,
            ),
            (
                "avg_pool2d",
                xc.avg_pool2d(p, false).unwrap(),
                x.avg_pool2d(p, false).unwrap(),
                ChannelsLast,
            ),
            // [N, C, 1, 1]: one layout in both formats, returned contiguous. The channels-last
            // kernel sums in the CPU's order (the NCHW CUDA kernel does not), so: the CPU's result.
            (
                "global_avg_pool2d",
                xc.global_avg_pool2d().unwrap(),
                x0.global_avg_pool2d().unwrap(),
                Contiguous,
            ),
            ("relu", xc.relu().unwrap(), x.relu().unwrap(), ChannelsLast),
            (
                "to_dtype",
                xc.to_dtype(DType::F32).unwrap(),
                x.to_dtype(DType::F32).unwrap(),
                ChannelsLast,
            ),
            (
                "channels-last + contiguous",
                xc.add(&other).unwrap(),
                x.add(&other).unwrap(),
                ChannelsLast,
            ),
            (
                "contiguous · channels-last",
                other.mul(&xc).unwrap(),
                other.mul(&x).unwrap(),
                Contiguous,
            ),
            (
                "broadcast",
                xc.mul(&per_channel).unwrap(),
                x.mul(&per_channel).unwrap(),
                Contiguous,
            ),
        ];
        for (what, got, want, format) in cases {
            assert_eq!(got.format(), format, "{what} on {dev}: format");
            assert_eq!(
                got.to_vec_f64().unwrap(),
                want.to_vec_f64().unwrap(),
                "{what} on {dev}: values"
            );
        }
        // The pools' backward kernels run channels-last too (on CUDA; the CPU converts, except for
        // the global pool): the same gather in the same order as on NCHW storage, so input
        // gradients are identical as well.
        type Pool<'a> = &'a dyn Fn(&Tensor) -> Result<Tensor>;
        let pools: [(&str, Pool); 4] = [
            ("max_pool2d", &|t| t.max_pool2d(p)),
            ("global_avg_pool2d", &|t| t.global_avg_pool2d()),
            ("avg_pool2d", &|t| t.avg_pool2d(p, false)),
            ("avg_pool2d count_include_pad ceil", &|t| {
                t.avg_pool2d(p.ceil(), true)
            }),
        ];
        for (what, pool) in pools {
            let input_grad = |format: MemoryFormat| {
                let x = leaf(&x0, DType::F64, format, dev);
                let y = pool(&x).unwrap();
                let u = randn(y.dims(), 43);
                value_and_grads(&y, &u, &[&x]).unwrap().pop().unwrap()
            };
            let (got, want) = (input_grad(ChannelsLast), input_grad(Contiguous));
            assert_eq!(
                got.to_vec_f64().unwrap(),
                want.to_vec_f64().unwrap(),
                "{what} on {dev}: input gradient"
            );
        }
    }
}

/// Relative L2 distance between two tensors' values.
fn rel_l2(a: &Tensor, b: &Tensor) -> f64 {
    let (a, b) = (a.to_vec_f64().unwrap(), b.to_vec_f64().unwrap());
    let num: f64 = a.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = b.iter().map(|y| y * y).sum();
    (num / den.max(1e-300)).sqrt()
}

#[test]
fn resnet_step_channels_last_matches_cpu() {
    let cfg = ResNetConfig {
        depth: 18,
        variant: Variant::D,
        preact: false,
        zero_gamma: false,
        small_input: false,
        in_channels: 3,
        num_classes: 10,
        width: 8,
    };
    let convs = 3 + 8 * 2 + 3; // the deep (C/D) stem, two per basic block, three shortcuts
    let x0 = randn(&[4, 3, 40, 40], 50);
    let labels = [3usize, 1, 4, 1];
    let step = |dev: Device, format: MemoryFormat| -> (Tensor, Vec<Tensor>, u64, (u64, u64)) {
        let model = ResNet::new(cfg.clone(), &mut Init::new(5, DType::F32, dev)).unwrap();
        let x = x0
            .to_dtype(DType::F32)
            .unwrap()
            .to_device(dev)
            .unwrap()
            .to_format(format)
            .unwrap();
        let (before, (nchw0, nhwc0)) = (format_conversions(), conv2d_layout_counts());
        let logits = model.forward(&x, Mode::TRAIN).unwrap();
        let loss = logits.cross_entropy(&labels, 0.1).unwrap();
        let grads = loss.backward().unwrap();
        let conversions = format_conversions() - before;
        let (nchw, nhwc) = conv2d_layout_counts();
        let layouts = (nchw - nchw0, nhwc - nhwc0);
        // Every parameter that takes a gradient (the running statistics do not).
        let g = named_params(&model)
            .iter()
            .filter_map(|(_, p)| grads.get(&p.tensor).cloned())
            .collect();
        (logits, g, conversions, layouts)
    };
    let (want_logits, want_grads, _, _) = step(Device::Cpu, Contiguous);
    assert_eq!(
        want_grads.len(),
        convs + 2 * convs + 2,
        "conv, batch-norm and fc gradients"
    );
    for dev in test_devices() {
        let (logits, grads, conversions, (nchw, nhwc)) = step(dev, ChannelsLast);
        // Every convolution channels-last on CUDA; all in NCHW on the CPU.
        let want_layouts = if dev.is_cpu() { (convs, 0) } else { (0, convs) };
        assert_eq!(
            (nchw as usize, nhwc as usize),
            want_layouts,
            "{dev}: (NCHW, channels-last) conv2d calls in the channels-last step"
        );
        assert_eq!(grads.len(), want_grads.len(), "{dev}: gradient count");
        // Per step on CUDA, 22: each conv's weight once (the parameters are contiguous; 22 convs).
        // The max pool, the three variant-D average pools and the global pool run channels-last
        // kernels and convert nothing. On the CPU, 1: the
        // stem conv converts its channels-last input and computes in NCHW, so everything after it is
        // contiguous. A format dropped anywhere else converts the following convs' inputs and
        // gradients.
        println!("channels-last ResNet-18-D step on {dev}: {conversions} format conversions");
        let want_conversions = if dev.is_cpu() { 1 } else { convs as u64 };
        assert_eq!(
            conversions, want_conversions,
            "{dev}: format conversions in one channels-last step"
        );
        let e = rel_l2(&logits, &want_logits);
        assert!(e < 1e-4, "{dev}: logits differ from the CPU's by {e:.2e}");
        for (i, (g, w)) in grads.iter().zip(&want_grads).enumerate() {
            let e = rel_l2(g, w);
            assert!(
                e < 1e-3,
                "{dev}: parameter {i}'s gradient differs by {e:.2e}"
            );
        }
    }
}
