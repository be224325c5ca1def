//! Synthetic-data benchmarks behind `engine bench-step` and `engine bench-ops` (the GPU check,
//! docs/GPU-CHECK.md, runs both on the lent GPU and compares them with PyTorch through
//! tools/torch_gpu_bench.py). They never fail: every result is a JSON object whose `status` is `ok`,
//! `not_implemented` (an op has no kernel on that device yet), `unavailable` (no such device) or
//! `error`, with the message in `error`.
//!
//! Timing: warm-up iterations first (module load, pool growth, handle creation), then the device is
//! synchronised around every timed region and host clocks are read. `bench-step` times each training
//! step separately (one loss read per step, as the trainer does); `bench-ops` times batches of
//! iterations and reports the median per-iteration time of the batches. The generative models
//! (`bench-stylize`, `bench-pix2pix`) live in `generative`; the input pipeline (`bench-loader`, CPU
//! only) in `loader`.

pub mod generative;
pub mod loader;

pub use generative::{bench_pix2pix, bench_stylize, Pix2pixBenchOptions, StylizeBenchOptions};

use crate::backend::{cuda_device_report, cuda_reset_peak_memory, cuda_synchronize};
use crate::models::{ResNet, ResNetConfig};
use crate::nn::init::Init;
use crate::nn::{named_params, Mode, Module, ParamKind};
use crate::optim::{DynamicLossScaler, Sgd, SgdConfig};
use crate::{
    BatchNormArgs, Conv2dParams, DType, Device, Error, GradStore, MemoryFormat, Result, Tensor,
};
use serde_json::{json, Value};
use std::time::Instant;

/// What `engine bench-step` trains.
#[derive(Clone, Debug)]
pub struct StepOptions {
    /// 18, 34, 50 or 101.
    pub depth: usize,
    pub batch: usize,
    /// Square input size; below 64 the small-image stem (3×3 s1, no max pool) is used.
    pub image: usize,
    pub classes: usize,
    pub fp16: bool,
    pub channels_last: bool,
    pub steps: usize,
    pub warmup: usize,
    pub label_smoothing: f64,
    pub device: Device,
}

fn status_of(e: &Error) -> &'static str {
    match e {
        Error::NotImplemented { .. } => "not_implemented",
        Error::CudaUnavailable(_) => "unavailable",
        _ => "error",
    }
}

/// Merges `status`/`error` fields for a failed benchmark into `base`.
fn failed(mut base: Value, e: &Error) -> Value {
    base["status"] = json!(status_of(e));
    base["error"] = json!(e.to_string());
    base
}

fn sync(device: Device) -> Result<()> {
    match device {
        Device::Cpu => Ok(()),
        Device::Cuda(i) => cuda_synchronize(i),
    }
}

/// Peak process RSS in bytes (Linux `VmHWM`), the CPU analogue of the device's peak memory.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn device_json(device: Device) -> Value {
    match device {
        Device::Cpu => json!({"device": "cpu", "threads": rayon::current_num_threads()}),
        Device::Cuda(i) => match cuda_device_report(i) {
            Ok(r) => json!(r),
            Err(e) => json!({"error": e.to_string()}),
        },
    }
}

fn stats_ms(samples: &[f64]) -> Value {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len().max(1) as f64;
    json!({
        "median": s.get(s.len() / 2).copied().unwrap_or(f64::NAN),
        "mean": s.iter().sum::<f64>() / n,
        "min": s.first().copied().unwrap_or(f64::NAN),
        "max": s.last().copied().unwrap_or(f64::NAN),
    })
}

/// `engine bench-step`: times training steps of a ResNet on one synthetic batch.
pub fn bench_step(o: &StepOptions) -> Value {
    let base = json!({
        "kind": "bench-step",
        "model": format!("resnet{}", o.depth),
        "batch": o.batch,
        "image": o.image,
        "classes": o.classes,
        "fp16": o.fp16,
        "channels_last": o.channels_last,
        "steps": o.steps,
        "warmup": o.warmup,
        "label_smoothing": o.label_smoothing,
        "device": o.device.to_string(),
    });
    match bench_step_inner(o, base.clone()) {
        Ok(v) => v,
        Err(e) => {
            let mut v = failed(base, &e);
            v["device_report"] = device_json(o.device);
            v
        }
    }
}

fn bench_step_inner(o: &StepOptions, mut out: Value) -> Result<Value> {
    if o.batch == 0 || o.steps == 0 || o.image < 8 {
        return Err(Error::Msg(
            "bench-step needs --batch ≥ 1, --steps ≥ 1 and --image ≥ 8".into(),
        ));
    }
    let dev = o.device;
    let dtype = if o.fp16 { DType::F16 } else { DType::F32 };
    let mut cfg = ResNetConfig::resnet50(o.classes);
    cfg.depth = o.depth;
    cfg.small_input = o.image < 64;
    let model = ResNet::new(cfg, &mut Init::new(0, dtype, dev))?;
    let params = named_params(&model);
    out["parameters"] = json!(params
        .iter()
        .filter(|(_, p)| p.kind.trainable())
        .map(|(_, p)| p.tensor.numel())
        .sum::<usize>());
    let mut opt = Sgd::new(
        params,
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-5,
            no_bias_decay: true,
        },
    )?;
    let mut scaler = if o.fp16 {
        DynamicLossScaler::default()
    } else {
        DynamicLossScaler::disabled()
    };
    let mut x = Tensor::randn([o.batch, 3, o.image, o.image], 0.0, 1.0, 1, dtype, dev)?;
    if o.channels_last {
        x = x.to_format(MemoryFormat::ChannelsLast)?;
    }
    let labels: Vec<usize> = (0..o.batch).map(|i| (i * 7919) % o.classes).collect();
    if let Device::Cuda(i) = dev {
        cuda_reset_peak_memory(i)?;
    }
    let mut times = Vec::with_capacity(o.steps);
    let mut losses = Vec::with_capacity(o.steps);
    let mut skipped = 0usize;
    for step in 0..o.warmup + o.steps {
        sync(dev)?;
        let t = Instant::now();
        let logits = model.forward(&x, Mode::TRAIN)?.to_dtype(DType::F32)?;
        let loss = logits.cross_entropy(&labels, o.label_smoothing)?;
        let grads = if o.fp16 {
            loss.scale(scaler.scale)?.backward()?
        } else {
            loss.backward()?
        };
        let applied = opt.step(&grads, 0.01, scaler.scale)?;
        if o.fp16 {
            scaler.update(applied);
        }
        let l = loss.to_scalar()?;
        sync(dev)?;
        let ms = t.elapsed().as_secs_f64() * 1e3;
        if step >= o.warmup {
            times.push(ms);
            losses.push(l);
            skipped += usize::from(!applied);
        }
        eprintln!(
            "bench-step: step {}/{} {ms:.1} ms loss {l:.4}{}",
            step + 1,
            o.warmup + o.steps,
            if step < o.warmup { " (warm-up)" } else { "" }
        );
    }
    let total_s: f64 = times.iter().sum::<f64>() / 1e3;
    out["status"] = json!("ok");
    out["step_ms"] = stats_ms(&times);
    out["images_per_s"] = json!((o.batch * o.steps) as f64 / total_s.max(1e-12));
    out["losses"] = json!(losses);
    out["skipped_steps"] = json!(skipped);
    match dev {
        Device::Cuda(i) => {
            let r = cuda_device_report(i)?;
            out["peak_memory_bytes"] = json!(r.pool_used_high_bytes);
            out["peak_memory_source"] = json!(
                "CUDA default memory pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH (since model build)"
            );
            out["device_report"] = json!(r);
        }
        Device::Cpu => {
            out["peak_memory_bytes"] = json!(peak_rss_bytes());
            out["peak_memory_source"] = json!("VmHWM: peak resident set of the process");
            out["device_report"] = device_json(dev);
        }
    }
    Ok(out)
}

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

/// Times `f` (after 2 warm-up calls) as the median over `repeats` batches of `iters` calls, in ms per
/// call.
fn time_op(
    dev: Device,
    repeats: usize,
    iters: usize,
    mut f: impl FnMut() -> Result<()>,
) -> Result<f64> {
    for _ in 0..2 {
        f()?;
    }
    sync(dev)?;
    let mut per = Vec::with_capacity(repeats);
    for _ in 0..repeats.max(1) {
        let t = Instant::now();
        for _ in 0..iters.max(1) {
            f()?;
        }
        sync(dev)?;
        per.push(t.elapsed().as_secs_f64() * 1e3 / iters.max(1) as f64);
    }
    per.sort_by(|a, b| a.total_cmp(b));
    Ok(per[per.len() / 2])
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

    // BN + ReLU and BN + add + ReLU (training mode), f16, at ResNet-50 batch-256 shapes.
    for (fused, c, hw) in [("bn_relu", 64usize, 56usize), ("bn_add_relu", 256, 56)] {
        for layout in ["nchw", "cl"] {
            for pass in ["fwd", "fwd_bwd"] {
                let name = format!("{fused}.{pass}.{layout}");
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
                        let y = if fused == "bn_relu" {
                            x.batch_norm_relu(&args)?
                        } else {
                            x.batch_norm_add_relu(&res, &args)?
                        };
                        if bwd {
                            y.mul(&dy)?.sum_all()?.backward()?;
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
                        y.mul(&dy)?.sum_all()?.backward()?;
                    }
                    Ok(())
                })
            })();
            record(spec, r);
        }
    }

    // SGD (Nesterov momentum, weight decay) over ResNet-50's parameters, f32.
    if want("sgd.resnet50") {
        let mut spec = OpSpec {
            name: "sgd.resnet50".into(),
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
            let mut opt = Sgd::new(
                params,
                SgdConfig {
                    momentum: 0.9,
                    nesterov: true,
                    weight_decay: 5e-5,
                    no_bias_decay: true,
                },
            )?;
            time_op(dev, rep, it, || opt.step(&grads, 0.01, 1.0).map(|_| ()))
        })();
        record(spec, r);
    }

    // Cross-entropy with label smoothing 0.1, forward + backward, f32 logits [256, 1000].
    if want("cross_entropy_ls") {
        let n = b(256);
        let spec = OpSpec {
            name: "cross_entropy_ls.fwd_bwd".into(),
            shape: format!("{n}x1000 f32"),
            bytes: 2.0 * 4.0 * (n * 1000) as f64,
            flops: 0.0,
        };
        let r = (|| -> Result<f64> {
            let logits = Tensor::randn([n, 1000], 0.0, 1.0, 5, DType::F32, dev)?.var();
            let labels: Vec<usize> = (0..n).map(|i| (i * 7919) % 1000).collect();
            time_op(dev, rep, it, || {
                logits.cross_entropy(&labels, 0.1)?.backward()?;
                Ok(())
            })
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
