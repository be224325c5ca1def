//! Command-line interface (clap): one subcommand a file. `engine train` (train.rs), `eval` and
//! `predict` (eval.rs), `stylize` (stylize.rs), `stylize-idx` (stylize_idx.rs; the stylizer flags
//! both share are in stylizer_args.rs), `train-decoder` (train_decoder.rs), `pix2pix`
//! (pix2pix.rs), `shape-bias` (shape_bias.rs), the benchmarks `bench-step`, `bench-ops`,
//! `bench-stylize`, `bench-pix2pix` (bench.rs), `info` (here). This file holds the
//! command list, the device option every command shares, and the dispatch.

mod bench;
mod eval;
mod pix2pix;
mod shape_bias;
mod stylize;
mod stylize_idx;
mod stylizer_args;
mod train;
mod train_decoder;

use crate::{Device, Result};
use bench::{BenchLoaderArgs, BenchOpsArgs, BenchPix2pixArgs, BenchStepArgs, BenchStylizeArgs};
use clap::{Parser, Subcommand};
use eval::{EvalArgs, PredictArgs};
use train::TrainArgs;
use train_decoder::TrainDecoderArgs;

#[derive(Parser)]
#[command(
    name = "engine",
    version,
    about = "A Rust deep-learning research engine: ResNets with the Bag of Tricks recipe, Stylized-ImageNet with AdaIN, pix2pix with a perceptual loss; on CPU or CUDA"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a ResNet classifier (Fashion-MNIST by default) with a Bag of Tricks recipe.
    Train(Box<TrainArgs>),
    /// Train the AdaIN style-transfer decoder (Huang & Belongie 2017) on content and style folders.
    TrainDecoder(Box<TrainDecoderArgs>),
    /// Score a training checkpoint on the validation split: top-1 and top-5 accuracy.
    Eval(EvalArgs),
    /// Classify image files with a training checkpoint: the top classes with probabilities.
    Predict(PredictArgs),
    /// Re-paint every image of a folder tree in a random style with AdaIN (Stylized-ImageNet).
    Stylize(Box<stylize::StylizeArgs>),
    /// Re-paint an IDX dataset (Fashion-MNIST) with AdaIN into new IDX files that `engine train
    /// --data` reads: Stylized-ImageNet at the size of this data.
    StylizeIdx(Box<stylize_idx::StylizeIdxArgs>),
    /// pix2pix image-to-image translation: make-pairs, train, test.
    Pix2pix(pix2pix::Pix2pixArgs),
    /// Shape bias of a classifier: how often it follows shape over texture on AdaIN cue-conflict images.
    ShapeBias(shape_bias::ShapeBiasArgs),
    /// Print the build's features and the devices it can use.
    Info,
    /// Time training steps of a ResNet on one synthetic batch (warm-up excluded); prints JSON.
    BenchStep(BenchStepArgs),
    /// Time single ops (BN+ReLU, SGD, cross-entropy, AdaIN, copy, GEMM) at ResNet-50 shapes; prints JSON.
    BenchOps(BenchOpsArgs),
    /// Time AdaIN stylization (VGG-19 encoder + decoder, random weights) on synthetic images; prints JSON.
    BenchStylize(BenchStylizeArgs),
    /// Time pix2pix training iterations (U-Net + PatchGAN, Adam) on a synthetic batch; prints JSON.
    BenchPix2pix(BenchPix2pixArgs),
    /// Time the training input pipeline (decode + augmentation + batching) on the CPU: images/s per
    /// thread count and per core; prints JSON.
    BenchLoader(BenchLoaderArgs),
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub(crate) enum DeviceArg {
    Cpu,
    Cuda,
    /// CUDA when available, else the CPU.
    Auto,
}

/// The flags every training command shares (`train`, `train-decoder`, `pix2pix train`): where it
/// runs, whether it continues a stopped run, progress bars, and an early stop.
#[derive(clap::Args)]
pub(crate) struct RunFlags {
    /// Continue from <out>/checkpoint.safetensors exactly where it stopped, with the config saved in it.
    #[arg(long)]
    pub resume: bool,
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: DeviceArg,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// Stop (with a checkpoint, as Ctrl-C does) after this many optimiser steps in total.
    #[arg(long, alias = "stop-after")]
    pub stop_after_steps: Option<usize>,
}

impl RunFlags {
    /// The trainer-facing options these flags ask for.
    pub fn run_options(&self) -> crate::train::RunOptions {
        crate::train::RunOptions {
            resume: self.resume,
            show_progress: !self.quiet,
            stop_after_steps: self.stop_after_steps,
        }
    }

    /// The device `--device` names (an error if CUDA was asked for and is not there).
    pub fn device(&self) -> Result<Device> {
        device(self.device)
    }
}

pub(crate) fn device(d: DeviceArg) -> Result<Device> {
    match d {
        DeviceArg::Cpu => Ok(Device::Cpu),
        DeviceArg::Cuda => Device::cuda(0),
        DeviceArg::Auto => Ok(Device::cuda_if_available()),
    }
}

fn run_info() -> Result<()> {
    println!("engine {}", env!("CARGO_PKG_VERSION"));
    println!("cuda feature: {}", cfg!(feature = "cuda"));
    if cfg!(all(feature = "cuda-sim", not(feature = "cuda"))) {
        println!(
            "cuda-sim feature: true (cuda:0 is a simulated device: kernels run in the emulator)"
        );
    }
    println!("cpu threads: {}", rayon::current_num_threads());
    match Device::cuda(0) {
        Ok(d) => match crate::backend::cuda_device_report(0) {
            Ok(r) => println!("cuda: {d} available: {} ({})", r.name, r.compute_capability),
            Err(_) => println!("cuda: {d} available"),
        },
        Err(e) => println!("cuda: unavailable ({e})"),
    }
    Ok(())
}

pub fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Train(a) => train::run_train(*a),
        Command::TrainDecoder(a) => train_decoder::run_train_decoder(*a),
        Command::Eval(a) => eval::run_eval(a),
        Command::Predict(a) => eval::run_predict(a),
        Command::ShapeBias(a) => shape_bias::run_shape_bias(a),
        Command::Info => run_info(),
        Command::BenchStep(a) => bench::run_bench_step(a),
        Command::BenchOps(a) => bench::run_bench_ops(a),
        Command::BenchStylize(a) => bench::run_bench_stylize(a),
        Command::BenchPix2pix(a) => bench::run_bench_pix2pix(a),
        Command::BenchLoader(a) => bench::run_bench_loader(a),
        Command::Stylize(a) => stylize::run_stylize_cmd(*a),
        Command::StylizeIdx(a) => stylize_idx::run_stylize_idx(*a),
        Command::Pix2pix(a) => pix2pix::run_pix2pix(a),
    }
}
