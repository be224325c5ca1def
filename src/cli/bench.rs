//! `engine bench-step`, `bench-ops`, `bench-stylize`, `bench-pix2pix` (the GPU-check benchmarks,
//! src/bench/, docs/GPU-CHECK.md) and `bench-loader` (the input pipeline on the CPU). Each prints one
//! JSON document; the exit status says whether every part ran.

use super::DeviceArg;
use crate::{Device, Error, Result};
use clap::Args;

#[derive(Args)]
pub struct BenchStepArgs {
    /// resnet18, resnet34, resnet50 or resnet101.
    #[arg(long, default_value = "resnet50")]
    model: String,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Square image size (below 64 the small-image stem is used).
    #[arg(long, default_value_t = 224)]
    image: usize,
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// FP16 weights and activations, f32 master weights, dynamic loss scaling (as `train --fp16`).
    #[arg(long)]
    fp16: bool,
    /// Feed the batch in channels-last (NHWC) memory format.
    #[arg(long)]
    channels_last: bool,
    /// Timed steps.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 0.1)]
    label_smoothing: f64,
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
    /// Feed every step a fresh batch from host memory through `engine train`'s input path (cast,
    /// pinned upload, channels-last, one step ahead on its own thread; `ENGINE_PREPARE_AHEAD=0`
    /// does it inline) instead of one batch resident on the device. Compare the two runs' images/s
    /// to see what feeding the GPU costs.
    #[arg(long)]
    host_batches: bool,
}

#[derive(Args)]
pub struct BenchOpsArgs {
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
    /// Divide every batch size by this (CPU smoke runs).
    #[arg(long, default_value_t = 1)]
    shrink: usize,
    /// Timed batches (the median is reported).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Calls per timed batch.
    #[arg(long, default_value_t = 10)]
    iters: usize,
    /// Only ops whose name contains this.
    #[arg(long)]
    filter: Option<String>,
}

/// Runs a benchmark; prints its JSON on stdout. Exit status: 0 when every part ran, 2 when some op
/// is not implemented on the device (or the device is missing), 1 on other errors.
fn run_bench(v: serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    let mut statuses: Vec<&str> = v["status"].as_str().into_iter().collect();
    if let Some(ops) = v.get("ops").and_then(|o| o.as_array()) {
        statuses.extend(ops.iter().filter_map(|o| o["status"].as_str()));
    }
    if statuses.contains(&"error") {
        std::process::exit(1);
    }
    if statuses.iter().any(|s| *s != "ok") {
        std::process::exit(2);
    }
    Ok(())
}

fn bench_device(d: DeviceArg) -> Device {
    match d {
        DeviceArg::Cpu => Device::Cpu,
        // A missing GPU is reported in the JSON (status `unavailable`), not as a CLI error.
        DeviceArg::Cuda => Device::Cuda(0),
        DeviceArg::Auto => Device::cuda_if_available(),
    }
}

pub fn run_bench_step(a: BenchStepArgs) -> Result<()> {
    let depth = a
        .model
        .trim_start_matches("resnet")
        .parse::<usize>()
        .map_err(|_| Error::Msg(format!("--model {}: expected resnet18/34/50/101", a.model)))?;
    let device = bench_device(a.device);
    if let Some(mut v) = unavailable("bench-step", device) {
        v["model"] = serde_json::json!(a.model);
        return run_bench(v);
    }
    run_bench(crate::bench::bench_step(&crate::bench::StepOptions {
        depth,
        batch: a.batch,
        image: a.image,
        classes: a.classes,
        fp16: a.fp16,
        channels_last: a.channels_last,
        steps: a.steps,
        warmup: a.warmup,
        label_smoothing: a.label_smoothing,
        device,
        host_batches: a.host_batches,
    }))
}

pub fn run_bench_ops(a: BenchOpsArgs) -> Result<()> {
    let device = bench_device(a.device);
    if let Some(mut v) = unavailable("bench-ops", device) {
        v["ops"] = serde_json::json!([]);
        return run_bench(v);
    }
    run_bench(crate::bench::bench_ops(&crate::bench::OpsOptions {
        device,
        shrink: a.shrink,
        repeats: a.repeats,
        iters: a.iters,
        filter: a.filter,
    }))
}

#[derive(Args)]
pub struct BenchStylizeArgs {
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Square image size (a multiple of 8): 512 and 224 in the GPU check.
    #[arg(long, default_value_t = 512)]
    image: usize,
    /// VGG width (64 for the real network).
    #[arg(long, default_value_t = 64)]
    width: usize,
    #[arg(long)]
    fp16: bool,
    #[arg(long, default_value_t = 10)]
    iters: usize,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
}

#[derive(Args)]
pub struct BenchPix2pixArgs {
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Square image size (a power of two; 256 gives unet_256).
    #[arg(long, default_value_t = 256)]
    image: usize,
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, value_enum, default_value = "cuda")]
    device: DeviceArg,
}

#[derive(Args)]
pub struct BenchLoaderArgs {
    /// Recipe whose training augmentation (and mixup) the batches get; the default has all of the
    /// paper's: random resized crop (pad-and-crop for small images), flip, colour jitter, lighting.
    #[arg(long, value_enum, default_value = "reproduction-2019")]
    recipe: crate::train::Recipe,
    /// Images per batch (default: the recipe's).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Timed batches per thread count, at least (timing goes on for 2 s at least; one untimed
    /// batch first).
    #[arg(long, default_value_t = 20)]
    batches: usize,
    /// Thread counts to time, e.g. `--threads 1 --threads 2` (default: 1 and every core).
    #[arg(long)]
    threads: Vec<usize>,
    #[command(flatten)]
    data: super::train::DataArgs,
}

pub fn run_bench_loader(a: BenchLoaderArgs) -> Result<()> {
    let mut cfg = super::train::preset_for_data(a.recipe, &a.data)?;
    if let Some(b) = a.batch_size {
        cfg.batch_size = b;
    }
    if cfg.batch_size == 0 || a.batches == 0 {
        return Err(Error::Msg(
            "--batch-size and --batches must be at least 1".into(),
        ));
    }
    let mut threads = a.threads;
    if threads.is_empty() {
        let all = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        threads = if all > 1 { vec![1, all] } else { vec![1] };
    }
    if threads.contains(&0) {
        return Err(Error::Msg("--threads must be at least 1".into()));
    }
    run_bench(crate::bench::loader::bench_loader(
        &cfg, a.batches, 2.0, &threads,
    )?)
}

/// A benchmark's JSON when its CUDA device is missing, else None.
fn unavailable(kind: &str, device: Device) -> Option<serde_json::Value> {
    match device {
        Device::Cuda(i) => crate::backend::cuda::ensure_device(i).err().map(|e| {
            serde_json::json!({"kind": kind, "device": format!("cuda:{i}"),
                "status": "unavailable", "error": e.to_string()})
        }),
        Device::Cpu => None,
    }
}

pub fn run_bench_stylize(a: BenchStylizeArgs) -> Result<()> {
    let device = bench_device(a.device);
    if let Some(v) = unavailable("bench-stylize", device) {
        return run_bench(v);
    }
    run_bench(crate::bench::bench_stylize(
        &crate::bench::StylizeBenchOptions {
            batch: a.batch,
            image: a.image,
            width: a.width,
            fp16: a.fp16,
            iters: a.iters,
            warmup: a.warmup,
            device,
        },
    ))
}

pub fn run_bench_pix2pix(a: BenchPix2pixArgs) -> Result<()> {
    let device = bench_device(a.device);
    if let Some(v) = unavailable("bench-pix2pix", device) {
        return run_bench(v);
    }
    run_bench(crate::bench::bench_pix2pix(
        &crate::bench::Pix2pixBenchOptions {
            batch: a.batch,
            image: a.image,
            ngf: a.ngf,
            ndf: a.ndf,
            steps: a.steps,
            warmup: a.warmup,
            device,
        },
    ))
}
