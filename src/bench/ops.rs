//! `engine bench-ops` (and `cargo bench --bench kernels_cuda`): single ops at ResNet-50 / ImageNet
//! shapes, each timed on its own, with the bytes it must move and the FLOPs it must do, so a report
//! can give GB/s against the measured copy bandwidth (`copy_d2d`) and TFLOP/s against the measured
//! GEMM rate (`gemm_f16`). Rows named `<op>.unfused` run the same computation as the fused kernel of
//! `<op>` through separate engine ops (the fusion's gain); `tools/torch_gpu_bench.py` times the same
//! graphs in PyTorch (cuDNN batch norm, then a separate ReLU) under the same names.
//!
//! Invariants: every row has a `status` (`ok` or why not) and never aborts the others; a row's
//! `bytes` is the minimum its op must read and write (each input once, each output once).

use super::{bench_sgd, device_json, failed, time_op};
use crate::models::{ResNet, ResNetConfig};
use crate::nn::init::Init;
use crate::nn::{named_params, ParamKind};
use crate::{BatchNormArgs, Conv2dParams, DType, Device, GradStore, MemoryFormat, Result, Tensor};
use serde_json::{json, Value};

/// What `engine bench-ops` measures.
#[derive(Clone, Debug)]
pub struct OpsOptions {
    pub device: Device,
    /// Shrinks every shape (CPU smoke runs): batch dims ÷ `shrink`, at least 1.
    pub shrink: usize,
    /// Timed batches, and iterations per batch.
    pub repeats: usize,
    pub iters: usize,
    /// Only ops whose name contains this.
    pub filter: Option<String>,
}

/// One row of `bench-ops`: name, shape, minimal bytes moved and FLOPs per call.
struct OpSpec {
    name: String,
    shape: String,
    bytes: f64,
    flops: f64,
}

/// `engine bench-ops`: our kernels at ResNet-50 / AdaIN shapes, named as tools/torch_gpu_bench.py
/// names its PyTorch baselines (the GPU check joins the two on `op`).
/// `t` in a bench-ops layout: "cl" (channels-last) or "nchw" (as it is).
fn in_layout(t: Tensor, layout: &str) -> Result<Tensor> {
    if layout == "cl" {
        t.to_format(MemoryFormat::ChannelsLast)
    } else {
        Ok(t)
    }
}

pub fn bench_ops(o: &OpsOptions) -> Value {
    let dev = o.device;
    let s = o.shrink.max(1);
    let b = |n: usize| (n / s).max(1);
    let mut rows: Vec<Value> = Vec::new();
    let want = |name: &str| o.filter.as_deref().is_none_or(|f| name.contains(f));
    let mut record = |spec: OpSpec, r: Result<f64>| {
        let mut v =
            json!({"op": spec.name, "shape": spec.shape, "bytes": spec.bytes, "flops": spec.flops});
        match r {
            Ok(ms) => {
                v["status"] = json!("ok");
                v["ms"] = json!(ms);
            }
            Err(e) => v = failed(v, &e),
        }
        eprintln!(
            "bench-ops: {} {} → {}",
            v["op"],
            v["shape"],
            v.get("ms").or(v.get("error")).unwrap_or(&Value::Null)
        );
        rows.push(v);
    };
    let (rep, it) = (o.repeats, o.iters);

    // BN + ReLU and BN + add + ReLU (training mode), f16, at ResNet-50 batch-256 shapes: our fused
    // kernels, and (`.unfused`) the same graph as separate ops (batch norm, add, ReLU). `bytes` is
    // the fused minimum in both.
    for (fused, c, hw) in [("bn_relu", 64usize, 56usize), ("bn_add_relu", 256, 56)] {
        for layout in ["nchw", "cl"] {
            for (pass, split) in [
                ("fwd", false),
                ("fwd_bwd", false),
                ("fwd", true),
                ("fwd_bwd", true),
            ] {
                let name = format!(
                    "{fused}.{pass}.{layout}{}",
                    if split { ".unfused" } else { "" }
                );
                if !want(&name) {
                    continue;
                }
                let n = b(256);
                let numel = (n * c * hw * hw) as f64;
                let tensors = match (fused, pass) {
                    ("bn_relu", "fwd") => 2.0,
                    ("bn_relu", _) => 2.0 + 4.0,
                    (_, "fwd") => 3.0,
                    _ => 3.0 + 5.0,
                };
                let spec = OpSpec {
                    name,
                    shape: format!("{n}x{c}x{hw}x{hw} f16"),
                    bytes: tensors * numel * 2.0,
                    flops: 0.0,
                };
                let r = (|| -> Result<f64> {
                    let fmt = |t: Tensor| in_layout(t, layout);
                    let x = fmt(Tensor::randn([n, c, hw, hw], 0.0, 1.0, 1, DType::F16, dev)?)?;
                    let res = fmt(Tensor::randn([n, c, hw, hw], 0.0, 1.0, 2, DType::F16, dev)?)?;
                    let dy = fmt(Tensor::randn([n, c, hw, hw], 0.0, 1.0, 3, DType::F16, dev)?)?;
                    let gamma = Tensor::ones([c], DType::F32, dev)?.var();
                    let beta = Tensor::zeros([c], DType::F32, dev)?.var();
                    let rm = Tensor::zeros([c], DType::F32, dev)?;
                    let rv = Tensor::ones([c], DType::F32, dev)?;
                    let bwd = pass == "fwd_bwd";
                    let x = if bwd { x.var() } else { x };
                    let args = BatchNormArgs {
                        weight: Some(&gamma),
                        bias: Some(&beta),
                        running_mean: Some(&rm),
                        running_var: Some(&rv),
                        training: true,
                        momentum: 0.1,
                        eps: 1e-5,
                    };
                    time_op(dev, rep, it, || {
                        let y = match (fused == "bn_relu", split) {
                            (true, false) => x.batch_norm_relu(&args)?,
                            (false, false) => x.batch_norm_add_relu(&res, &args)?,
                            (true, true) => x.batch_norm(&args)?.relu()?,
                            (false, true) => x.batch_norm(&args)?.add(&res)?.relu()?,
                        };
                        if bwd {
                            y.mul(&dy)?.sum_all()?.backward_releasing()?;
                        }
                        Ok(())
                    })
                })();
                record(spec, r);
            }
        }
    }

    // ResNet-50's stage-1 3×3 conv (64 → 64 channels, 56², no bias), f16, NCHW and channels-last
    // (cuDNN's NHWC path; the weight is channels-last too, as in a channels-last model): forward, and
    // forward + backward (data and filter gradients, 3× the forward's FLOPs).
    for layout in ["nchw", "cl"] {
        for pass in ["fwd", "fwd_bwd"] {
            let name = format!("conv3x3.{pass}.{layout}");
            if !want(&name) {
                continue;
            }
            let (n, c, hw) = (b(256), 64usize, 56usize);
            let passes = if pass == "fwd" { 1.0 } else { 3.0 };
            let spec = OpSpec {
                name,
                shape: format!("{n}x{c}x{hw}x{hw} k3 f16"),
                bytes: passes * 2.0 * (2 * n * c * hw * hw + c * c * 9) as f64,
                flops: passes * 2.0 * (n * c * hw * hw * c * 9) as f64,
            };
            let r = (|| -> Result<f64> {
                let fmt = |t: Tensor| in_layout(t, layout);
                let bwd = pass == "fwd_bwd";
                let x = fmt(Tensor::randn([n, c, hw, hw], 0.0, 1.0, 1, DType::F16, dev)?)?;
                let w = fmt(Tensor::randn([c, c, 3, 3], 0.0, 0.05, 2, DType::F16, dev)?)?;
                let dy = fmt(Tensor::randn([n, c, hw, hw], 0.0, 1.0, 3, DType::F16, dev)?)?;
                let (x, w) = if bwd { (x.var(), w.var()) } else { (x, w) };
                time_op(dev, rep, it, || {
                    let y = x.conv2d(&w, None, Conv2dParams::new(1, 1))?;
                    if bwd {
                        y.mul(&dy)?.sum_all()?.backward_releasing()?;
                    }
                    Ok(())
                })
            })();
            record(spec, r);
        }
    }

    // SGD (Nesterov momentum, weight decay) over ResNet-50's parameters, f32: the multi-tensor
    // kernels (one finiteness pass and one update launch per dtype group), and (`.unfused`) one
    // update launch and one finiteness read-back per tensor.
    for multi in [true, false] {
        let name = if multi {
            "sgd.resnet50"
        } else {
            "sgd.resnet50.unfused"
        };
        if !want(name) {
            continue;
        }
        let mut spec = OpSpec {
            name: name.into(),
            shape: "25.6M params f32".into(),
            bytes: 0.0,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let model = ResNet::new(
                ResNetConfig::resnet50(1000),
                &mut Init::new(0, DType::F32, dev),
            )?;
            let params = named_params(&model);
            let mut grads = GradStore::default();
            let mut numel = 0usize;
            for (i, (_, p)) in params.iter().enumerate() {
                if p.kind != ParamKind::Buffer {
                    numel += p.tensor.numel();
                    grads.insert(
                        &p.tensor,
                        Tensor::randn(
                            p.tensor.shape().clone(),
                            0.0,
                            1e-3,
                            i as u64,
                            DType::F32,
                            dev,
                        )?,
                    );
                }
            }
            // read p, g, m; write p, m.
            spec.bytes = 5.0 * 4.0 * numel as f64;
            spec.shape = format!("{:.1}M params f32", numel as f64 / 1e6);
            let mut opt = bench_sgd(params)?;
            opt.set_multi_tensor(multi);
            time_op(dev, rep, it, || opt.step(&grads, 0.01, 1.0).map(|_| ()))
        })();
        record(spec, r);
    }

    // Cross-entropy with label smoothing 0.1, forward + backward, f32 logits [256, 1000]: the fused
    // kernels, and (`.unfused`) −mean(Σ log_softmax(logits) · smoothed one-hot) as separate ops.
    for split in [false, true] {
        let name = format!(
            "cross_entropy_ls.fwd_bwd{}",
            if split { ".unfused" } else { "" }
        );
        if !want(&name) {
            continue;
        }
        let n = b(256);
        let spec = OpSpec {
            name,
            shape: format!("{n}x1000 f32"),
            bytes: 2.0 * 4.0 * (n * 1000) as f64,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let logits = Tensor::randn([n, 1000], 0.0, 1.0, 5, DType::F32, dev)?.var();
            let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % 1000).collect();
            let mut smoothed = vec![0.1f32 / 1000.0; n * 1000];
            for (row, &l) in smoothed.chunks_mut(1000).zip(&labels) {
                row[l] += 0.9;
            }
            let targets = Tensor::from_vec(smoothed, [n, 1000], Device::Cpu)?.to_device(dev)?;
            time_op(dev, rep, it, || {
                let loss = if split {
                    logits
                        .log_softmax(-1)?
                        .mul(&targets)?
                        .sum_all()?
                        .scale(-1.0 / n as f64)?
                } else {
                    logits.cross_entropy(&labels, 0.1)?
                };
                loss.backward_releasing()?;
                Ok(())
            })
        })();
        record(spec, r);
    }

    // Mixup of an ImageNet batch (f32 images [256, 3, 224, 224] and soft targets [256, 1000]) in one
    // kernel: two reads and one write per element.
    if want("mixup") {
        let n = b(256);
        let (per, k) = (3 * 224 * 224, 1000);
        let spec = OpSpec {
            name: "mixup.fwd".into(),
            shape: format!("{n}x3x224² + {n}x{k} f32"),
            bytes: 3.0 * 4.0 * (n * (per + k)) as f64,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let x = Tensor::randn([n, 3, 224, 224], 0.0, 1.0, 11, DType::F32, dev)?;
            let t = Tensor::randn([n, k], 0.0, 1.0, 12, DType::F32, dev)?;
            let perm: Vec<usize> = (0..n).map(|i| (i * 7 + 3) % n).collect();
            let perm = if n % 7 == 0 {
                (0..n).rev().collect()
            } else {
                perm
            };
            time_op(dev, rep, it, || x.mixup(&t, 0.3, &perm).map(|_| ()))
        })();
        record(spec, r);
    }

    // AdaIN forward on VGG relu4_1 features (512 channels) of 512² and 224² images, f32.
    for (px, n, hw) in [(512usize, 8usize, 64usize), (224, 32, 28)] {
        let name = format!("adain.fwd.{px}px");
        if !want(&name) {
            continue;
        }
        let n = b(n);
        let numel = (n * 512 * hw * hw) as f64;
        let spec = OpSpec {
            name,
            shape: format!("{n}x512x{hw}x{hw} f32"),
            bytes: 3.0 * 4.0 * numel,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let c = Tensor::randn([n, 512, hw, hw], 0.0, 1.0, 6, DType::F32, dev)?;
            let st = Tensor::randn([n, 512, hw, hw], 0.5, 2.0, 7, DType::F32, dev)?;
            time_op(dev, rep, it, || c.adain(&st, 1e-5).map(|_| ()))
        })();
        record(spec, r);
    }

    // Device-to-device copy (the bandwidth ceiling) and a large f16 GEMM (the arithmetic ceiling).
    if want("copy_d2d") {
        let bytes = (1usize << 30) / s;
        let spec = OpSpec {
            name: "copy_d2d".into(),
            shape: format!("{} MiB", bytes >> 20),
            bytes: 2.0 * bytes as f64,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let t = Tensor::zeros([bytes / 4], DType::F32, dev)?;
            // `Tensor::to_device` to the same device is a no-op; the storage copy is a real one.
            time_op(dev, rep, it, || t.storage().to_device(dev).map(|_| ()))
        })();
        record(spec, r);
    }
    if want("gemm_f16") {
        let m = (8192 / s).max(64);
        let spec = OpSpec {
            name: "gemm_f16".into(),
            shape: format!("{m}x{m}x{m} f16"),
            bytes: 3.0 * 2.0 * (m * m) as f64,
            flops: 2.0 * (m as f64).powi(3),
        };
        let r = (|| -> Result<f64> {
            let a = Tensor::randn([m, m], 0.0, 1.0, 8, DType::F16, dev)?;
            let bm = Tensor::randn([m, m], 0.0, 1.0, 9, DType::F16, dev)?;
            time_op(dev, rep, it, || a.matmul(&bm).map(|_| ()))
        })();
        record(spec, r);
    }

    json!({
        "kind": "bench-ops",
        "device": dev.to_string(),
        "device_report": device_json(dev),
        "shrink": s,
        "repeats": rep,
        "iters": it,
        "ops": rows,
    })
}
