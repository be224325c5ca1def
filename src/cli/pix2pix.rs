//! `engine pix2pix`: image-to-image translation (Isola et al. 2017) with an optional perceptual loss
//! (a ResNet, or AdaIN's VGG-19). Three subcommands; this file only maps flags onto `crate::pix2pix`.
//!
//! ```text
//! # 1. Pairs from any folder of photos (A = input computed from the photo B; PNG, A|B side by side)
//! engine pix2pix make-pairs --src photos/ --out data/p2p --task gray2color --size 256 --val-fraction 0.2
//!        # tasks: gray2color | edges2photo | blur2sharp; --seed S, --force to replace old pairs
//!
//! # 2. Train (paper defaults: unet_256, 70×70 PatchGAN, λ_L1 100, Adam 2e-4 β1 0.5, batch 1,
//! #    100 + 100 epochs, 286 → 256 jitter + flip). Smaller --image-size scales the networks.
//! engine pix2pix train --data data/p2p --out runs/p2p --image-size 256 --device auto
//!        [--direction AtoB|BtoA] [--perceptual none|CHECKPOINT|torchvision:FILE|vgg[:FILE]]
//!        [--lambda-perc 10] [--perc-taps W,… (5 for a ResNet, 4 for vgg)] [--ngf 64 --ndf 64 --n-layers 3]
//!        [--epochs 100 --epochs-decay 100 --batch-size 1 --lr 2e-4 --seed 0]
//!        [--sample-every 200] [--eval] [--stop-after-steps N]
//! engine pix2pix train --out runs/p2p --resume      # exact continuation (Ctrl-C saves first)
//!
//! # 3. Test: every val/ image → images/, grids/ (input | output | target rows), metrics.json
//! engine pix2pix test --checkpoint runs/p2p/checkpoint.safetensors --data data/p2p \
//!        [--out DIR] [--eval] [--perceptual-net CHECKPOINT|torchvision:FILE|vgg[:FILE]]
//!        [--rows-per-grid 4]
//! ```
//!
//! A run folder holds `config.json`, `metrics.jsonl` (per iteration: G_GAN, G_L1, G_perc, D_real,
//! D_fake, unweighted; per epoch: val_l1, val_psnr), `checkpoint.safetensors` (G, D, both Adam
//! states, run state; written every epoch), the charts `loss_g.png`, `loss_d.png`, `val_l1.png`,
//! `val_psnr.png`, and `samples/iter_NNNNNNN.png`.
//!
//! Test-time mode: like the reference's `test.py`, the generator runs in training mode by default
//! (BN with each image's own statistics, dropout on — seeded per image, so results repeat); `--eval`
//! uses BN running statistics and no dropout. `train --eval` applies the same choice to validation
//! and samples. L1 is in [-1, 1] units; PSNR is on [0, 1] images, 100 dB for identical ones.

use super::{device, DeviceArg, RunFlags};
use crate::pix2pix::checkpoint::{checkpoint_path, read_run_state};
use crate::pix2pix::config::{
    default_load_size, default_n_layers, default_num_downs, Direction, PerceptualSpec,
    PerceptualTerm, Pix2PixConfig,
};
use crate::pix2pix::{
    make_pairs, run_test, GenMode, MakePairsConfig, PairSource, PairTask, TestOptions,
};
use crate::{Error, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

#[derive(Args)]
pub struct Pix2pixArgs {
    #[command(subcommand)]
    command: Pix2pixCommand,
}

#[derive(Subcommand)]
enum Pix2pixCommand {
    /// Build A|B training pairs (train/ and val/) from a folder of photos.
    MakePairs(MakePairsArgs),
    /// Train a U-Net generator against a PatchGAN (GAN + L1 [+ perceptual] loss).
    Train(Box<TrainArgs>),
    /// Run a trained generator over a val/ split: images, grids and metrics.json.
    Test(TestArgs),
}

#[derive(Args)]
struct MakePairsArgs {
    /// Folder of photos (searched recursively), or with --src-format fashion-mnist the folder of
    /// the Fashion-MNIST IDX files (its test split is used).
    #[arg(long)]
    src: PathBuf,
    #[arg(long, value_enum, default_value = "photos")]
    src_format: PairSource,
    /// Use only the first N source images (0 = all).
    #[arg(long, default_value_t = 0)]
    limit: usize,
    /// Output folder: train/, val/ and pairs.json.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, value_enum)]
    task: PairTask,
    /// Fraction of the photos for val/.
    #[arg(long, default_value_t = 0.2)]
    val_fraction: f64,
    /// Side of each half (the pairs are 2·size × size).
    #[arg(long, default_value_t = 256)]
    size: usize,
    /// Seed of the train/val split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace pairs already in --out.
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
struct TrainArgs {
    /// Dataset folder with train/ and val/ of A|B images (with --resume: default the run's).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Run folder.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunFlags,
    #[arg(long, value_enum, default_value = "AtoB")]
    direction: Direction,
    /// Side of the training crops (256 in the paper); networks scale to it.
    #[arg(long, default_value_t = 256)]
    image_size: usize,
    /// Resize target before the random crop (default image-size·286/256).
    #[arg(long)]
    load_size: Option<usize>,
    /// No random horizontal flip.
    #[arg(long)]
    no_flip: bool,
    /// Channels of input and output images: 3, or 1 (luminance).
    #[arg(long, default_value_t = 3)]
    input_nc: usize,
    #[arg(long, default_value_t = 3)]
    output_nc: usize,
    /// Generator filters in the outermost level.
    #[arg(long, default_value_t = 64)]
    ngf: usize,
    /// Discriminator filters in the first layer.
    #[arg(long, default_value_t = 64)]
    ndf: usize,
    /// PatchGAN layers (default 3 from 128 px, 2 from 32 px, else 1).
    #[arg(long)]
    n_layers: Option<usize>,
    /// U-Net levels (default 8 from 256 px, else log2 of the size).
    #[arg(long)]
    num_downs: Option<usize>,
    /// No dropout in the generator.
    #[arg(long)]
    no_dropout: bool,
    #[arg(long, default_value_t = 100.0)]
    lambda_l1: f64,
    /// Perceptual loss network: none, an `engine train` CHECKPOINT, torchvision:FILE (a ResNet), or
    /// vgg:FILE (AdaIN's ImageNet-trained normalised VGG-19, converted `vgg_normalised`; plain `vgg`
    /// takes the copy `scripts/setup.sh install_adain_weights` installs).
    #[arg(long, default_value = "none")]
    perceptual: String,
    /// Weight of the perceptual loss (when --perceptual is set).
    #[arg(long, default_value_t = 10.0)]
    lambda_perc: f64,
    /// Weights of the taps: stem,layer1,layer2,layer3,layer4 of a ResNet; relu1_1,relu2_1,relu3_1,
    /// relu4_1 of the VGG (default: 1 each).
    #[arg(long, value_delimiter = ',', num_args = 1..)]
    perc_taps: Option<Vec<f64>>,
    #[arg(long, default_value_t = 2e-4)]
    lr: f64,
    #[arg(long, default_value_t = 0.5)]
    beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    beta2: f64,
    /// Epochs at the initial learning rate.
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Epochs of linear decay to zero after them.
    #[arg(long, default_value_t = 100)]
    epochs_decay: usize,
    #[arg(long, default_value_t = 1)]
    batch_size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Sample grid (input | output | target of 4 val images) every N iterations; 0 = never.
    #[arg(long, default_value_t = 200)]
    sample_every: usize,
    /// Validate with BN running statistics and no dropout (default: the reference's test mode).
    #[arg(long)]
    eval: bool,
}

#[derive(Args)]
struct TestArgs {
    /// A pix2pix checkpoint (RUN_DIR/checkpoint.safetensors).
    #[arg(long)]
    checkpoint: PathBuf,
    /// Dataset folder; every image of its val/ is translated.
    #[arg(long)]
    data: PathBuf,
    /// Output folder (default: test/ beside the checkpoint).
    #[arg(long)]
    out: Option<PathBuf>,
    /// BN running statistics and no dropout (default: the reference's training-mode test).
    #[arg(long)]
    eval: bool,
    /// Direction (default: the training run's).
    #[arg(long, value_enum)]
    direction: Option<Direction>,
    /// Also report the perceptual distance under this network (CHECKPOINT, torchvision:FILE or
    /// vgg[:FILE]).
    #[arg(long)]
    perceptual_net: Option<String>,
    /// Images per grid file.
    #[arg(long, default_value_t = 4)]
    rows_per_grid: usize,
    #[arg(long, value_enum, default_value = "cpu")]
    device: DeviceArg,
}

/// `PerceptualSpec::parse` of the value of `flag`, with plain `vgg` meaning the installed AdaIN VGG
/// weights.
fn perceptual_spec(flag: &str, s: &str) -> Result<Option<PerceptualSpec>> {
    if s == "vgg" {
        let how = format!("{flag} vgg:FILE");
        let path = crate::stylize::weights::resolve(None, "vgg_normalised", &how)?;
        return Ok(Some(PerceptualSpec::Vgg(path)));
    }
    Ok(PerceptualSpec::parse(s))
}

fn build_config(a: &TrainArgs) -> Result<Pix2PixConfig> {
    let data = a.data.clone().ok_or_else(|| {
        Error::Msg("pix2pix train needs --data DIR (with train/ and val/)".into())
    })?;
    let mut c = Pix2PixConfig::new(data, a.out.clone(), a.image_size);
    c.set_channels(a.input_nc, a.output_nc);
    c.direction = a.direction;
    c.load_size = a.load_size.unwrap_or(default_load_size(a.image_size));
    c.flip = !a.no_flip;
    c.generator.ngf = a.ngf;
    c.generator.num_downs = a.num_downs.unwrap_or(default_num_downs(a.image_size));
    c.generator.dropout = !a.no_dropout;
    c.discriminator.ndf = a.ndf;
    c.discriminator.n_layers = a.n_layers.unwrap_or(default_n_layers(a.image_size));
    c.lambda_l1 = a.lambda_l1;
    c.perceptual = perceptual_spec("--perceptual", &a.perceptual)?.map(|net| PerceptualTerm {
        taps: a.perc_taps.clone().unwrap_or_else(|| vec![1.0; net.taps()]),
        net,
        weight: a.lambda_perc,
    });
    (c.lr, c.beta1, c.beta2) = (a.lr, a.beta1, a.beta2);
    (c.epochs, c.epochs_decay, c.batch_size) = (a.epochs, a.epochs_decay, a.batch_size);
    (c.seed, c.sample_every, c.eval_mode) = (a.seed, a.sample_every, a.eval);
    c.validate()?;
    Ok(c)
}

fn run_train(a: TrainArgs) -> Result<()> {
    let cfg = if a.run.resume {
        let mut c = read_run_state(&checkpoint_path(&a.out))
            .map_err(|e| Error::Msg(format!("--resume: {e}")))?
            .config;
        c.out_dir = a.out.clone();
        if let Some(d) = &a.data {
            c.data = d.clone();
        }
        c
    } else {
        build_config(&a)?
    };
    let dev = a.run.device()?;
    let g = &cfg.generator;
    eprintln!(
        "pix2pix {:?} on {}: U-Net {} levels ngf {}{}, PatchGAN {} layers ndf {}, {} px, λ_L1 {}{}, \
         batch {}, {}+{} epochs, lr {:.1e} → {}",
        cfg.direction,
        dev,
        g.num_downs,
        g.ngf,
        if g.dropout && g.num_downs >= 6 { " (dropout)" } else { "" },
        cfg.discriminator.n_layers,
        cfg.discriminator.ndf,
        cfg.image_size,
        cfg.lambda_l1,
        cfg.perceptual
            .as_ref()
            .map(|p| format!(", perceptual {} λ {}", p.net, p.weight))
            .unwrap_or_default(),
        cfg.batch_size,
        cfg.epochs,
        cfg.epochs_decay,
        cfg.lr,
        cfg.out_dir.display()
    );
    let opts = a.run.run_options();
    let s = crate::pix2pix::train(&cfg, dev, &opts)?;
    if let (false, Some(last)) = (s.interrupted, s.history.last()) {
        println!(
            "final: val L1 {:.4}  PSNR {:.2} dB  {} iterations  {:.1} img/s  {:.0}s",
            last.val_l1, last.val_psnr, s.iterations, s.images_per_s, s.wall_seconds
        );
    }
    Ok(())
}

fn run_test_cmd(a: TestArgs) -> Result<()> {
    let opts = TestOptions {
        checkpoint: a.checkpoint,
        data: a.data,
        out: a.out,
        mode: GenMode::from_eval_flag(a.eval),
        direction: a.direction,
        perceptual: match a.perceptual_net.as_deref() {
            Some(s) => perceptual_spec("--perceptual-net", s)?,
            None => None,
        },
        rows_per_grid: a.rows_per_grid,
    };
    let r = run_test(&opts, device(a.device)?)?;
    let mut summary = serde_json::to_value(&r).expect("json");
    summary.as_object_mut().expect("object").remove("per_image");
    println!("{}", serde_json::to_string_pretty(&summary).expect("json"));
    eprintln!("wrote {}", r.out.join("metrics.json").display());
    Ok(())
}

pub fn run_pix2pix(a: Pix2pixArgs) -> Result<()> {
    match a.command {
        Pix2pixCommand::MakePairs(m) => {
            let s = make_pairs(&MakePairsConfig {
                src: m.src,
                src_format: m.src_format,
                limit: m.limit,
                out: m.out.clone(),
                task: m.task,
                size: m.size,
                val_fraction: m.val_fraction,
                seed: m.seed,
                force: m.force,
            })?;
            println!(
                "{} pairs of {} px: {} train, {} val → {}",
                serde_json::to_value(s.task)
                    .expect("json")
                    .as_str()
                    .unwrap_or_default(),
                s.size,
                s.train.len(),
                s.val.len(),
                m.out.display()
            );
            Ok(())
        }
        Pix2pixCommand::Train(t) => run_train(*t),
        Pix2pixCommand::Test(t) => run_test_cmd(t),
    }
}
