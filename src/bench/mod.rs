//! Synthetic-data benchmarks behind `engine bench-step` and `engine bench-ops` (the GPU check,
//! docs/GPU-CHECK.md, runs both on the lent GPU and compares them with PyTorch through
//! tools/torch_gpu_bench.py). They never fail: every result is a JSON object whose `status` is `ok`,
//! `not_implemented` (an op has no kernel on that device yet), `unavailable` (no such device) or
//! `error`, with the message in `error`.
//!
//! Timing: warm-up iterations first (module load, pool growth, handle creation), then the device is
//! synchronised around every timed region and host clocks are read. `bench-step` times each training
//! step separately (one loss read per step, as the trainer does); `bench-ops` times batches of
//! iterations and reports the median per-iteration time of the batches (`ops`). The generative models
//! (`bench-stylize`, `bench-pix2pix`) live in `generative`; the input pipeline (`bench-loader`, CPU
//! only) in `loader`.

pub mod generative;
pub mod loader;
pub mod ops;

pub use generative::{bench_pix2pix, bench_stylize, Pix2pixBenchOptions, StylizeBenchOptions};
pub use ops::{bench_ops, OpsOptions};

use crate::backend::cuda::take_widened_elements;
use crate::backend::{
    cuda_device_report, cuda_reset_peak_memory, cuda_synchronize, take_device_reads,
};
use crate::data::ahead::{ahead_enabled, prepare_ahead, Ahead};
use crate::data::Batch;
use crate::models::{ResNet, ResNetConfig};
use crate::nn::init::Init;
use crate::nn::{named_params, Mode, Module};
use crate::optim::{DynamicLossScaler, Sgd, SgdConfig};
use crate::train::step_inputs::{PreparedBatch, StepInputs};
use crate::{DType, Device, Error, MemoryFormat, Result, Tensor};
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
    /// Feed every step a fresh batch from host memory through the trainer's input path (cast,
    /// pinned upload, channels-last; one step ahead on its own thread unless
    /// `ENGINE_PREPARE_AHEAD=0`) instead of one batch already on the device (the PyTorch
    /// baseline's setup). The ratio of the two runs' images/s is what the input path costs.
    pub host_batches: bool,
}

impl StepOptions {
    /// A few seconds' step on the CPU: ResNet-18 at 32², batch 2, one warm-up and one timed step
    /// (tests and smoke runs; adjust fields with struct update syntax).
    pub fn smoke(device: Device) -> StepOptions {
        StepOptions {
            depth: 18,
            batch: 2,
            image: 32,
            classes: 10,
            fp16: false,
            channels_last: false,
            steps: 1,
            warmup: 1,
            label_smoothing: 0.1,
            device,
            host_batches: false,
        }
    }
}

fn status_of(e: &Error) -> &'static str {
    match e {
        Error::NotImplemented { .. } => "not_implemented",
        Error::CudaUnavailable(_) => "unavailable",
        _ => "error",
    }
}

/// Merges `status`/`error` fields for a failed benchmark into `base`.
pub(super) fn failed(mut base: Value, e: &Error) -> Value {
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

pub(super) fn device_json(device: Device) -> Value {
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
    let mut model = ResNet::new(cfg, &mut Init::new(0, dtype, dev))?;
    if o.channels_last && !dev.is_cpu() {
        // As the PyTorch baseline: channels-last weights and input (on the CPU conv2d computes NCHW,
        // so weights stay contiguous there, as in `engine train`).
        model.to_channels_last()?;
    }
    let params = named_params(&model);
    out["parameters"] = json!(params
        .iter()
        .filter(|(_, p)| p.kind.trainable())
        .map(|(_, p)| p.tensor.numel())
        .sum::<usize>());
    let mut opt = bench_sgd(params)?;
    let mut scaler = if o.fp16 {
        DynamicLossScaler::default()
    } else {
        DynamicLossScaler::disabled()
    };
    let labels: Vec<usize> = (0..o.batch).map(|i| (i * 7919) % o.classes).collect();
    let dims = [o.batch, 3, o.image, o.image];
    let mut inputs = if o.host_batches {
        out["input"] = json!(format!(
            "a fresh host batch every step through the trainer's input path ({})",
            if ahead_enabled() {
                "prepared one step ahead"
            } else {
                "prepared inline: ENGINE_PREPARE_AHEAD=0"
            }
        ));
        StepInput::Host(host_batches(o, dims, &labels, dtype)?)
    } else {
        out["input"] = json!("one batch resident on the device");
        let mut x = Tensor::randn(dims.to_vec(), 0.0, 1.0, 1, dtype, dev)?;
        if o.channels_last {
            x = x.to_format(MemoryFormat::ChannelsLast)?;
        }
        StepInput::Device(x)
    };
    let mut times = Vec::with_capacity(o.steps);
    let mut losses = Vec::with_capacity(o.steps);
    let mut skipped = 0usize;
    let mut forward_live = None;
    let _ = take_widened_elements();
    for step in 0..o.warmup + o.steps {
        sync(dev)?;
        if step == o.warmup {
            take_device_reads();
        }
        if let (Device::Cuda(i), true) = (dev, step == o.warmup) {
            // As the PyTorch baseline: the peak of the timed steps, after the warm-up has done the
            // one-off work (cuDNN's algorithm search and its trial workspaces, momentum buffers).
            cuda_reset_peak_memory(i)?;
        }
        let t = Instant::now();
        let (x, targets) = match &mut inputs {
            StepInput::Device(x) => (x.clone(), None),
            StepInput::Host(batches) => {
                let prepared = batches.next().expect("one host batch per step")?;
                prepared.tensors.expect("host batches have labels")
            }
        };
        let logits = model.forward(&x, Mode::TRAIN)?.to_dtype(DType::F32)?;
        let loss = match &targets {
            // As `engine train`: label-smoothed targets uploaded with the batch.
            Some(t) => logits.cross_entropy_soft(t)?,
            None => logits.cross_entropy(&labels, o.label_smoothing)?,
        };
        if let (Device::Cuda(i), true) = (dev, step + 1 == o.warmup + o.steps) {
            // What the graph holds for backward, plus parameters and optimiser state (the figure
            // tools/torch_memory_estimate.py reports as `live_after_forward_bytes`); read in the last
            // step only, so the other steps' timing has no extra driver call.
            forward_live = Some(cuda_device_report(i)?.pool_used_bytes);
        }
        let grads = if o.fp16 {
            loss.scale(scaler.scale)?.backward_releasing()?
        } else {
            loss.backward_releasing()?
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
    // Counted on this thread only: with --host-batches, the prepare thread's casts and layout
    // changes are not in it.
    out["widened_f16_elements"] = json!(take_widened_elements());
    // Host-blocking device reads per timed step (the loss and the optimiser's flag: 2 expected).
    out["device_reads_per_step"] = json!(take_device_reads() as f64 / o.steps as f64);
    match dev {
        Device::Cuda(i) => {
            let r = cuda_device_report(i)?;
            out["peak_memory_bytes"] = json!(r.pool_used_high_bytes);
            out["forward_live_bytes"] = json!(forward_live);
            out["peak_memory_source"] = json!(
                "CUDA default memory pool, CU_MEMPOOL_ATTR_USED_MEM_HIGH (timed steps, after warm-up)"
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

/// Where `bench-step`'s input comes from.
enum StepInput {
    Device(Tensor),
    Host(Ahead<PreparedBatch>),
}

/// One host batch per step (`o.warmup + o.steps` of them), each a fresh copy of one of two seeded
/// f32 batches (as a loader hands out fresh vectors), turned into the step's device input (images
/// and, with label smoothing, the soft targets) by the trainer's own `StepInputs` one step ahead.
fn host_batches(
    o: &StepOptions,
    dims: [usize; 4],
    labels: &[usize],
    dtype: DType,
) -> Result<Ahead<PreparedBatch>> {
    let sources: Vec<Vec<f32>> = (0..2)
        .map(|k| Tensor::randn(dims.to_vec(), 0.0, 1.0, 1 + k, DType::F32, Device::Cpu)?.to_vec())
        .collect::<Result<_>>()?;
    let prep = StepInputs {
        classes: o.classes,
        label_smoothing: o.label_smoothing,
        soft: o.label_smoothing > 0.0,
        dtype,
        device: o.device,
        channels_last: o.channels_last,
    };
    let labels = labels.to_vec();
    Ok(prepare_ahead(0..o.warmup + o.steps, move |i| {
        prep.prepare(Batch {
            images: sources[i % 2].clone(),
            dims,
            labels: labels.clone(),
            mixup: None,
            skipped: Vec::new(),
            index: i,
        })
    }))
}

/// The SGD every bench steps with: the recipe's Nesterov momentum 0.9, weight decay 5e-5 without
/// decay on biases and BN parameters.
pub(super) fn bench_sgd(params: Vec<(String, crate::nn::Param)>) -> Result<Sgd> {
    Sgd::new(
        params,
        SgdConfig {
            momentum: 0.9,
            nesterov: true,
            weight_decay: 5e-5,
            no_bias_decay: true,
        },
    )
}

/// Times `f` (after 2 warm-up calls) as the median over `repeats` batches of `iters` calls, in ms per
/// call.
pub(super) fn time_op(
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
