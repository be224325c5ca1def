//! Command-line interface (clap): `engine train`, `engine eval`, `engine predict`, `engine info`. Every option of a
//! training run can come from a recipe preset, a JSON config file (`--config`, the same format as the
//! `config.json` a run writes), and individual flags, applied in that order.

use crate::data::idx::FASHION_MNIST_DIR;
use crate::models::{ResNet, Variant};
use crate::nn::init::Init;
use crate::train::config::DistillConfig;
use crate::train::{checkpoint, trainer, DataSpec, Recipe, TrainConfig};
use crate::{DType, Device, Error, Result};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "A Rust deep-learning research engine: ResNets with the Bag of Tricks recipe, on CPU or CUDA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a ResNet classifier (Fashion-MNIST by default) with a Bag of Tricks recipe.
    Train(TrainArgs),
    /// Score a training checkpoint on the validation split: top-1 and top-5 accuracy.
    Eval(EvalArgs),
    /// Classify image files with a training checkpoint: the top classes with probabilities.
    Predict(PredictArgs),
    /// Print the build's features and the devices it can use.
    Info,
    // ---- GPU-check benchmarks (src/bench.rs, docs/GPU-CHECK.md): one self-contained block. ----
    /// Time training steps of a ResNet on one synthetic batch (warm-up excluded); prints JSON.
    BenchStep(BenchStepArgs),
    /// Time single ops (BN+ReLU, SGD, cross-entropy, AdaIN, copy, GEMM) at ResNet-50 shapes; prints JSON.
    BenchOps(BenchOpsArgs),
}

#[derive(Args)]
struct BenchStepArgs {
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
}

#[derive(Args)]
struct BenchOpsArgs {
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

fn run_bench_step(a: BenchStepArgs) -> Result<()> {
    let depth = a
        .model
        .trim_start_matches("resnet")
        .parse::<usize>()
        .map_err(|_| Error::Msg(format!("--model {}: expected resnet18/34/50/101", a.model)))?;
    let device = bench_device(a.device);
    if let Device::Cuda(i) = device {
        if let Err(e) = crate::backend::cuda::ensure_device(i) {
            return run_bench(serde_json::json!({"kind": "bench-step", "model": a.model,
                "device": "cuda:0", "status": "unavailable", "error": e.to_string()}));
        }
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
    }))
}

fn run_bench_ops(a: BenchOpsArgs) -> Result<()> {
    let device = bench_device(a.device);
    if let Device::Cuda(i) = device {
        if let Err(e) = crate::backend::cuda::ensure_device(i) {
            return run_bench(serde_json::json!({"kind": "bench-ops", "device": "cuda:0",
                "status": "unavailable", "error": e.to_string(), "ops": []}));
        }
    }
    run_bench(crate::bench::bench_ops(&crate::bench::OpsOptions {
        device,
        shrink: a.shrink,
        repeats: a.repeats,
        iters: a.iters,
        filter: a.filter,
    }))
}
// ---- end of the GPU-check benchmark block ----

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
    /// CUDA when available, else the CPU.
    Auto,
}

fn device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::cuda(0),
        DeviceArg::Auto => Ok(Device::cuda_if_available()),
    }
}

#[derive(Args)]
struct TrainArgs {
    /// Recipe preset: the rows of Bag of Tricks' Tables 4 and 6 (cumulative), or the 2019 reproduction's.
    #[arg(long, value_enum, default_value = "reproduction-2019")]
    recipe: Recipe,
    /// JSON config file (as written to <out>/config.json); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Run folder: config.json, metrics.jsonl, checkpoint.safetensors (default runs/fashion-mnist,
    /// runs/imagenet for folder data, runs/cifar for CIFAR).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue from <out>/checkpoint.safetensors exactly where it stopped.
    #[arg(long)]
    resume: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
    /// FP16 weights and activations with f32 master weights and dynamic loss scaling.
    #[arg(long)]
    fp16: bool,
    /// ResNet depth: 18, 34, 50 or 101.
    #[arg(long)]
    depth: Option<usize>,
    /// Channels of the first stage (64 for the paper's models).
    #[arg(long)]
    width: Option<usize>,
    /// Architecture variant: a, b, c or d.
    #[arg(long)]
    variant: Option<char>,
    /// Pre-activation blocks.
    #[arg(long)]
    preact: bool,
    /// Epochs to train (recipe default: 8).
    #[arg(long)]
    epochs: Option<usize>,
    /// Images per step (recipe default: 128).
    #[arg(long)]
    batch_size: Option<usize>,
    /// Learning rate per 256 images (scaled linearly with the batch size).
    #[arg(long)]
    lr: Option<f64>,
    /// Linear learning-rate warmup, in epochs (fractions allowed).
    #[arg(long)]
    warmup_epochs: Option<f64>,
    /// L2 weight decay (biases and BN γ/β are exempt from `no-bias-decay` on).
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Label smoothing ε (0 = off; 0.1 in the paper).
    #[arg(long)]
    label_smoothing: Option<f64>,
    /// Mixup α (0 = off).
    #[arg(long)]
    mixup: Option<f64>,
    /// Brightness/contrast/saturation jitter strength (0 = off).
    #[arg(long)]
    jitter: Option<f32>,
    /// Distil from this teacher checkpoint (its architecture is read from it).
    #[arg(long)]
    teacher: Option<PathBuf>,
    /// Distillation temperature T.
    #[arg(long, default_value_t = 4.0)]
    temperature: f64,
    /// Weight of the distillation loss.
    #[arg(long, default_value_t = 0.5)]
    distill_weight: f64,
    /// Train on the first N training images only (0 = all).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on the first N test images only (0 = all).
    #[arg(long)]
    val_limit: Option<usize>,
    /// Seed for initialisation, shuffling and augmentation.
    #[arg(long)]
    seed: Option<u64>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// Stop (with a checkpoint, as Ctrl-C does) after this many optimiser steps in total.
    #[arg(long)]
    stop_after_steps: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
}

// --- Data-format options of `engine train` (folder trees, CIFAR, Fashion-MNIST). ---

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum DataFormat {
    /// IDX files as Debian's dataset-fashion-mnist ships them (--data DIR).
    FashionMnist,
    /// ImageNet-style trees <root>/<class>/<images> (--train-dir DIR… --val-dir DIR…).
    Folder,
    /// CIFAR-10 or CIFAR-100 binary batches (--data DIR).
    Cifar,
}

#[derive(Args)]
struct DataArgs {
    /// Dataset format (default: fashion-mnist, or folder when --train-dir is given). Each format
    /// starts from its own preset: folder uses the ImageNet one (ResNet-50 B, 224 px).
    #[arg(long, value_enum)]
    data_format: Option<DataFormat>,
    /// Folder with the Fashion-MNIST IDX files (default /usr/share/datasets/fashion-mnist, where
    /// Debian's dataset-fashion-mnist installs them) or with the CIFAR binary batches.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Training folder <root>/<class>/<images>; repeat to join several roots (e.g. ImageNet and
    /// Stylized-ImageNet) into one training set with the same classes.
    #[arg(long)]
    train_dir: Vec<PathBuf>,
    /// Validation folder <root>/<class>/<images> (classes must be among the training ones); repeatable.
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    /// Folder data: images whose shorter side is below this many pixels are skipped and reported
    /// (default 16; 0 turns the check off).
    #[arg(long)]
    min_image_side: Option<usize>,
}

/// The data the flags name, or None when no data flag was given.
fn data_spec(d: &DataArgs) -> Result<Option<DataSpec>> {
    let format = match d.data_format {
        Some(f) => f,
        None if !d.train_dir.is_empty() || !d.val_dir.is_empty() => DataFormat::Folder,
        None if d.data.is_some() => DataFormat::FashionMnist,
        None => return Ok(None),
    };
    Ok(Some(match format {
        DataFormat::FashionMnist => DataSpec::FashionMnist {
            dir: d
                .data
                .clone()
                .unwrap_or_else(|| PathBuf::from(FASHION_MNIST_DIR)),
        },
        DataFormat::Cifar => DataSpec::Cifar {
            dir: d.data.clone().ok_or_else(|| {
                Error::Msg(
                    "--data-format cifar needs --data DIR (the folder with the .bin batches)"
                        .into(),
                )
            })?,
        },
        DataFormat::Folder => {
            if d.train_dir.is_empty() || d.val_dir.is_empty() {
                return Err(Error::Msg(
                    "--data-format folder needs --train-dir DIR (repeatable) and --val-dir DIR"
                        .into(),
                ));
            }
            if d.data.is_some() {
                return Err(Error::Msg(
                    "--data is for fashion-mnist and cifar; folder data takes --train-dir and --val-dir".into(),
                ));
            }
            DataSpec::ImageFolder {
                train: d.train_dir.clone(),
                val: d.val_dir.clone(),
                min_side: d.min_image_side.unwrap_or(16),
            }
        }
    }))
}

/// The run folder: --out, else one named after the data format.
fn out_dir(a: &TrainArgs) -> PathBuf {
    if let Some(o) = &a.out {
        return o.clone();
    }
    PathBuf::from(match data_spec(&a.data) {
        Ok(Some(DataSpec::ImageFolder { .. })) => "runs/imagenet",
        Ok(Some(DataSpec::Cifar { .. })) => "runs/cifar",
        _ => "runs/fashion-mnist",
    })
}

/// The preset for `spec`'s kind of data.
fn preset(recipe: Recipe, spec: DataSpec, out: PathBuf) -> TrainConfig {
    match spec {
        DataSpec::FashionMnist { dir } => TrainConfig::fashion_mnist(recipe, dir, 18, 16, out),
        DataSpec::Cifar { dir } => TrainConfig::cifar(recipe, dir, 18, 16, out),
        DataSpec::ImageFolder {
            train,
            val,
            min_side,
        } => {
            let mut c = TrainConfig::imagenet(recipe, train.clone(), val.clone(), 50, out);
            c.data = DataSpec::ImageFolder {
                train,
                val,
                min_side,
            };
            c
        }
    }
}

/// The class names of a run: those saved in its config, else those of its data.
fn run_classes(cfg: &TrainConfig) -> Result<Vec<String>> {
    if !cfg.class_names.is_empty() {
        return Ok(cfg.class_names.clone());
    }
    Ok(match &cfg.data {
        DataSpec::FashionMnist { .. } => crate::data::idx::FASHION_MNIST_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect(),
        DataSpec::Cifar { dir } => crate::data::cifar::class_names(dir)?,
        DataSpec::ImageFolder { train, .. } => match train.first() {
            Some(root) => crate::data::folder::folder_classes(root)?,
            None => Vec::new(),
        },
    })
}

#[derive(Args)]
struct EvalArgs {
    /// A checkpoint written by `engine train`.
    checkpoint: PathBuf,
    /// Data folder for Fashion-MNIST or CIFAR runs (default: the one the checkpoint was trained on).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation folder(s) for folder runs (default: the ones the checkpoint was trained with).
    #[arg(long)]
    val_dir: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

fn build_config(a: &TrainArgs) -> Result<TrainConfig> {
    let mut c = match &a.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
            serde_json::from_str(&text).map_err(|e| {
                Error::Msg(format!(
                    "{}: not a valid training config: {e}",
                    path.display()
                ))
            })?
        }
        None => preset(
            a.recipe,
            data_spec(&a.data)?.unwrap_or(DataSpec::FashionMnist {
                dir: FASHION_MNIST_DIR.into(),
            }),
            out_dir(a),
        ),
    };
    if let Some(spec) = data_spec(&a.data)? {
        c.data = spec;
    }
    c.out_dir = out_dir(a);
    c.fp16 |= a.fp16;
    c.model.preact |= a.preact;
    if let Some(v) = a.depth {
        c.model.depth = v;
    }
    if let Some(v) = a.width {
        c.model.width = v;
    }
    if let Some(v) = a.variant {
        c.model.variant = match v.to_ascii_lowercase() {
            'a' => Variant::A,
            'b' => Variant::B,
            'c' => Variant::C,
            'd' => Variant::D,
            other => {
                return Err(Error::Msg(format!(
                    "--variant {other}: expected a, b, c or d"
                )))
            }
        };
    }
    macro_rules! set {
        ($field:expr, $arg:expr) => {
            if let Some(v) = $arg {
                $field = v;
            }
        };
    }
    set!(c.epochs, a.epochs);
    set!(c.batch_size, a.batch_size);
    set!(c.lr_per_256, a.lr);
    set!(c.warmup_epochs, a.warmup_epochs);
    set!(c.weight_decay, a.weight_decay);
    set!(c.label_smoothing, a.label_smoothing);
    set!(c.mixup_alpha, a.mixup);
    set!(c.augment.jitter, a.jitter);
    set!(c.train_limit, a.train_limit);
    set!(c.val_limit, a.val_limit);
    set!(c.seed, a.seed);
    if let Some(t) = &a.teacher {
        let teacher_cfg = checkpoint::read_run_state(t)?.config.model;
        c.distill = Some(DistillConfig {
            teacher: t.clone(),
            teacher_model: teacher_cfg,
            temperature: a.temperature,
            weight: a.distill_weight,
        });
    }
    if c.recipe == Recipe::Distill && c.distill.is_none() {
        return Err(Error::Msg(
            "--recipe distill needs --teacher CHECKPOINT (e.g. a run of the mixup recipe)".into(),
        ));
    }
    if c.epochs == 0 || c.batch_size == 0 {
        return Err(Error::Msg(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    Ok(c)
}

fn run_train(a: TrainArgs) -> Result<()> {
    let cfg = if a.resume {
        let ckpt = trainer::checkpoint_path(&out_dir(&a));
        let mut c = checkpoint::read_run_state(&ckpt)
            .map_err(|e| Error::Msg(format!("--resume: {e}")))?
            .config;
        c.out_dir = out_dir(&a);
        if let Some(e) = a.epochs {
            c.epochs = e;
        }
        c
    } else {
        build_config(&a)?
    };
    let dev = device(a.device)?;
    eprintln!(
        "training ResNet-{}{:?} (width {}{}) on {} with recipe {} for {} epochs, batch {}, lr {:.4}{} → {}",
        cfg.model.depth,
        cfg.model.variant,
        cfg.model.width,
        if cfg.model.preact { ", pre-activation" } else { "" },
        dev,
        cfg.recipe.name(),
        cfg.epochs,
        cfg.batch_size,
        cfg.lr(),
        if cfg.fp16 { ", fp16" } else { "" },
        cfg.out_dir.display()
    );
    eprintln!("data: {}", cfg.data.describe());
    let opts = trainer::RunOptions {
        resume: a.resume,
        show_progress: !a.quiet,
        stop_after_steps: a.stop_after_steps,
    };
    let summary = trainer::train(&cfg, dev, &opts)?;
    if summary.interrupted {
        return Ok(());
    }
    if let Some(last) = summary.history.last() {
        println!(
            "final: top-1 {:.2}%  top-5 {:.2}%  best top-1 {:.2}%  {:.0} img/s  {:.0}s",
            last.top1, last.top5, summary.best_top1, summary.images_per_s, summary.wall_seconds
        );
    }
    Ok(())
}

fn run_eval(a: EvalArgs) -> Result<()> {
    let run = checkpoint::read_run_state(&a.checkpoint)?;
    let mut cfg = run.config;
    match (&mut cfg.data, a.data, a.val_dir.is_empty()) {
        (_, None, true) => {}
        (DataSpec::FashionMnist { dir } | DataSpec::Cifar { dir }, Some(d), true) => *dir = d,
        (DataSpec::ImageFolder { val, .. }, None, false) => *val = a.val_dir,
        (spec, _, _) => {
            return Err(Error::Msg(format!(
                "the checkpoint was trained on {}: override its data with {}",
                spec.describe(),
                if matches!(spec, DataSpec::ImageFolder { .. }) {
                    "--val-dir DIR"
                } else {
                    "--data DIR"
                }
            )))
        }
    }
    let dev = device(a.device)?;
    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let model = ResNet::new(cfg.model.clone(), &mut Init::new(0, dtype, dev))?;
    checkpoint::load(&a.checkpoint, &model, None, &cfg.model)?;
    let val = trainer::val_dataset(&cfg, &run_classes(&cfg)?)?;
    let loader = std::sync::Arc::new(crate::data::Loader::new(
        val,
        crate::data::LoaderConfig {
            batch_size: 256,
            shuffle: false,
            drop_last: false,
            seed: 0,
            augment: cfg.augment.eval(cfg.eval_resize),
            mixup_alpha: 0.0,
            prefetch: 2,
        },
    )?);
    let (top1, top5) = trainer::evaluate(&model, &loader, dtype, dev)?;
    println!(
        "{}: top-1 {top1:.2}%  top-5 {top5:.2}%  (trained {} epochs)",
        a.checkpoint.display(),
        run.epoch
    );
    Ok(())
}

// --- `engine predict`: classify image files with a checkpoint. ---

#[derive(Args)]
struct PredictArgs {
    /// A checkpoint written by `engine train`.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Image files (JPEG, PNG, BMP, WebP); converted to grayscale for 1-channel models.
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

fn run_predict(a: PredictArgs) -> Result<()> {
    use crate::nn::{Mode, Module};
    let run = checkpoint::read_run_state(&a.checkpoint)?;
    let cfg = run.config;
    let dev = device(a.device)?;
    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let model = ResNet::new(cfg.model.clone(), &mut Init::new(0, dtype, dev))?;
    checkpoint::load(&a.checkpoint, &model, None, &cfg.model)?;
    let k = cfg.model.num_classes;
    let names = match run_classes(&cfg) {
        Ok(n) if n.len() == k => n,
        _ => (0..k).map(|i| format!("class {i}")).collect(),
    };
    let eval = cfg.augment.eval(cfg.eval_resize);
    let channels = cfg.model.in_channels;
    let s = eval.size;
    let _g = crate::NoGradGuard::new();
    let mut failed = 0usize;
    for path in &a.images {
        let img = match crate::data::folder::decode_image(path, channels) {
            Ok(img) => img,
            Err(e) => {
                eprintln!("error: {e}");
                failed += 1;
                continue;
            }
        };
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
        let x = crate::data::augment::apply(&img, &eval, &mut rng);
        let x = crate::Tensor::from_vec(x, [1, channels, s, s], Device::Cpu)?
            .to_dtype(dtype)?
            .to_device(dev)?;
        let probs: Vec<f32> = model
            .forward(&x, Mode::EVAL)?
            .to_dtype(DType::F32)?
            .softmax(-1)?
            .to_vec()?;
        let mut order: Vec<usize> = (0..probs.len()).collect();
        order.sort_by(|&i, &j| probs[j].total_cmp(&probs[i]));
        println!("{}", path.display());
        for (rank, &c) in order.iter().take(a.top.max(1)).enumerate() {
            println!("  {}. {:<24} {:6.2}%", rank + 1, names[c], 100.0 * probs[c]);
        }
    }
    if failed > 0 {
        return Err(Error::Msg(format!(
            "{failed} of {} image(s) could not be read",
            a.images.len()
        )));
    }
    Ok(())
}

fn run_info() -> Result<()> {
    println!("engine {}", env!("CARGO_PKG_VERSION"));
    println!("cuda feature: {}", cfg!(feature = "cuda"));
    println!("cpu threads: {}", rayon::current_num_threads());
    match Device::cuda(0) {
        Ok(d) => println!("cuda: {d} available"),
        Err(e) => println!("cuda: unavailable ({e})"),
    }
    Ok(())
}

pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train(a) => run_train(a),
        Command::Eval(a) => run_eval(a),
        Command::Predict(a) => run_predict(a),
        Command::Info => run_info(),
        Command::BenchStep(a) => run_bench_step(a),
        Command::BenchOps(a) => run_bench_ops(a),
    }
}
