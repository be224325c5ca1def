//! The pix2pix training loop (`engine pix2pix train`): per batch, one discriminator step then one
//! generator step (the reference's `optimize_parameters`), Adam for both with the epoch's learning
//! rate (`Pix2PixConfig::lr_at`); per epoch, validation L1/PSNR, a checkpoint and the charts; a sample
//! grid every `sample_every` iterations; metrics as JSON lines; a progress bar with img/s and ETA.
//!
//! Invariants:
//! - exact resume on the CPU: everything random is a pure function of the seed and counters (data
//!   order and jitter: `PairLoader`; dropout: `set_dropout_step(iteration)` before each training
//!   forward; evaluation restores what it touches), and a checkpoint holds both networks (with BN
//!   statistics), both Adam states and (epoch, batch, iteration) — so a run stopped (Ctrl-C,
//!   `stop_after_steps`) and resumed computes the same losses and weights as an uninterrupted one;
//! - checkpoints are atomic and written every epoch, on Ctrl-C and when a loss turns NaN (then the
//!   run stops with advice);
//! - `metrics.jsonl` is appended: `{"kind":"step", iteration, epoch, G_GAN, G_L1, G_perc, D_real,
//!   D_fake, lr, images_per_s}` every iteration (loss terms unweighted) and `{"kind":"epoch", epoch,
//!   iteration, val_l1, val_psnr, lr, seconds, images_per_s, skipped_steps}` every epoch.

use super::checkpoint::{self, checkpoint_path, RunState};
use super::config::Pix2PixConfig;
use super::dataset::{PairLoader, PairTransform, PairedFolder};
use super::eval::{evaluate, grid_row, EvalOptions, GenMode};
use super::losses::{discriminator_loss, generator_loss, load_perceptual};
use crate::data::ahead::prepare_ahead;
use crate::interrupt::StopPoint;
use crate::models::{PatchGan, PerceptualLoss, UnetGenerator};
use crate::nn::init::Init;
use crate::nn::state::write_atomic;
use crate::nn::{named_params, Mode, Module};
use crate::optim::{Adam, AdamConfig};
use crate::train::metrics::JsonLog;
use crate::train::RunOptions;
use crate::viz::ImageGrid;
use crate::{DType, Device, Error, Result};
use serde::Serialize;
use serde_json::json;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub iteration: usize,
    pub val_l1: f64,
    pub val_psnr: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_s: f64,
    /// Optimiser steps skipped because a gradient was inf/NaN (either network).
    pub skipped_steps: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    pub history: Vec<EpochMetrics>,
    /// Training iterations done in total (including before a resume).
    pub iterations: usize,
    pub wall_seconds: f64,
    pub images_per_s: f64,
    /// True when the run stopped early (Ctrl-C or `stop_after_steps`) with a checkpoint.
    pub interrupted: bool,
}

/// The networks and optimisers of a run.
struct Nets {
    g: UnetGenerator,
    d: PatchGan,
    opt_g: Adam,
    opt_d: Adam,
    perceptual: Option<PerceptualLoss>,
}

fn build(cfg: &Pix2PixConfig, device: Device) -> Result<Nets> {
    let mut init = Init::new(cfg.seed, DType::F32, device);
    let g = UnetGenerator::new(cfg.generator.clone(), &mut init)?;
    let d = PatchGan::new(cfg.discriminator.clone(), &mut init)?;
    let adam = AdamConfig {
        beta1: cfg.beta1,
        beta2: cfg.beta2,
        ..AdamConfig::default()
    };
    let perceptual = match &cfg.perceptual {
        Some(p) => Some(load_perceptual(&p.net, &p.taps, cfg.output_nc, device)?),
        None => None,
    };
    Ok(Nets {
        opt_g: Adam::new(named_params(&g), adam.clone())?,
        opt_d: Adam::new(named_params(&d), adam)?,
        g,
        d,
        perceptual,
    })
}

/// The preprocessing of training (`jitter`) and evaluation samples.
pub fn transform(cfg: &Pix2PixConfig, jitter: bool) -> PairTransform {
    PairTransform {
        input_nc: cfg.input_nc,
        output_nc: cfg.output_nc,
        size: cfg.image_size,
        jitter: jitter.then_some(cfg.load_size),
        flip: cfg.flip,
    }
}

/// A grid of the first four validation images (rows: input, output, target) as `path`.
fn write_samples(
    nets: &Nets,
    cfg: &Pix2PixConfig,
    val: &PairedFolder,
    device: Device,
    path: &Path,
) -> Result<()> {
    let mut grid = ImageGrid::with_min_cell(crate::viz::GRID_MIN_CELL);
    let opts = EvalOptions {
        mode: GenMode::from_eval_flag(cfg.eval_mode),
        limit: Some(4),
        perceptual: None,
    };
    evaluate(&nets.g, val, &transform(cfg, false), opts, device, |img| {
        grid.push_row(grid_row(img)?);
        Ok(())
    })?;
    grid.save(path)
}

fn progress_bar(show: bool, total: usize, done: usize) -> indicatif::ProgressBar {
    let pb = crate::progress::bar(show, total as u64, "", "it {pos}/{len}");
    pb.set_position(done as u64);
    pb.reset_eta();
    pb
}

/// Trains (or, with `opts.resume`, continues) the run `cfg` describes; see the module comment.
pub fn train(cfg: &Pix2PixConfig, device: Device, opts: &RunOptions) -> Result<TrainSummary> {
    let t_start = Instant::now();
    cfg.validate()?;
    let train_data = PairedFolder::open(&cfg.data, "train", cfg.direction)?;
    let val_data = PairedFolder::open(&cfg.data, "val", cfg.direction)?;
    let mut nets = build(cfg, device)?;
    let io = |e: std::io::Error| Error::Io {
        path: cfg.out_dir.display().to_string(),
        source: e,
    };
    std::fs::create_dir_all(cfg.out_dir.join("samples")).map_err(io)?;
    write_atomic(
        &cfg.out_dir.join("config.json"),
        serde_json::to_string_pretty(cfg).expect("json").as_bytes(),
    )?;
    let stop = StopPoint::new(opts.stop_after_steps);
    let loader = Arc::new(PairLoader {
        data: train_data,
        transform: transform(cfg, true),
        batch_size: cfg.batch_size,
        seed: cfg.seed,
    });
    let ckpt = checkpoint_path(&cfg.out_dir);
    let mut run = RunState {
        epoch: 0,
        batch: 0,
        iteration: 0,
        config: cfg.clone(),
    };
    if opts.resume {
        if !ckpt.exists() {
            return Err(Error::Msg(format!(
                "--resume: no checkpoint at {}; start without --resume",
                ckpt.display()
            )));
        }
        let saved = checkpoint::load(
            &ckpt,
            &nets.g,
            Some(&nets.d),
            Some((&mut nets.opt_g, &mut nets.opt_d)),
        )?;
        (run.epoch, run.batch, run.iteration) = (saved.epoch, saved.batch, saved.iteration);
        if opts.show_progress {
            eprintln!(
                "resuming from {} at epoch {} batch {} (iteration {})",
                ckpt.display(),
                run.epoch + 1,
                run.batch,
                run.iteration
            );
        }
    }

    let mut log = JsonLog::append(&cfg.out_dir.join("metrics.jsonl"))?;
    let spe = loader.batches_per_epoch();
    let total = cfg.total_epochs() * spe;
    let pb = progress_bar(opts.show_progress, total, run.iteration);
    let perc_weight = cfg.perceptual.as_ref().map_or(0.0, |p| p.weight);
    let eval_mode = GenMode::from_eval_flag(cfg.eval_mode);
    let mut history = Vec::new();
    let (mut images_done, mut train_seconds) = (0usize, 0.0f64);
    let save_stop = |nets: &Nets, run: &RunState, what: String| -> Error {
        match checkpoint::save(&ckpt, &nets.g, &nets.d, &nets.opt_g, &nets.opt_d, run) {
            Ok(()) => Error::Msg(format!(
                "{what}: lower --lr (or --lambda-perc), check the data, then continue with \
                 --resume; the state before this step is in {}",
                ckpt.display()
            )),
            Err(e) => Error::Msg(format!("{what}; saving a checkpoint failed too: {e}")),
        }
    };

    while run.epoch < cfg.total_epochs() {
        let epoch = run.epoch;
        let lr = cfg.lr_at(epoch);
        pb.set_prefix(format!("epoch {}/{}", epoch + 1, cfg.total_epochs()));
        let order = loader.order(epoch);
        let t_epoch = Instant::now();
        let (mut seen, mut skipped_steps, mut stopped) = (0usize, 0usize, false);
        // Batch b+1 is decoded and uploaded on its own thread while step b runs (`data::ahead`).
        let source = Arc::clone(&loader);
        let batches = prepare_ahead(run.batch..spe, move |b| {
            source.batch(epoch, &order, b, device)
        });
        for batch in batches {
            let batch = batch?;
            let n = batch.input.dims()[0];
            nets.g.set_dropout_step(run.iteration as u64);
            let fake = nets.g.forward(&batch.input, Mode::TRAIN)?;
            let d_loss = discriminator_loss(&nets.d, &batch.input, &batch.target, &fake)?;
            let d_value = d_loss.value;
            if !d_value.is_finite() {
                let what = format!(
                    "the discriminator's loss became {d_value} at epoch {} iteration {}",
                    epoch + 1,
                    run.iteration + 1
                );
                return Err(save_stop(&nets, &run, what));
            }
            let grads = d_loss.loss.backward_releasing()?;
            skipped_steps += usize::from(!nets.opt_d.step(&grads, lr, 1.0)?);
            let g_loss = generator_loss(
                &nets.d,
                &batch.input,
                &batch.target,
                &fake,
                cfg.lambda_l1,
                nets.perceptual.as_ref().map(|p| (p, perc_weight)),
            )?;
            let g_value = g_loss.value;
            if !g_value.is_finite() {
                let what = format!(
                    "the generator's loss became {g_value} at epoch {} iteration {} (G_GAN {}, \
                     G_L1 {}, G_perc {:?}; the discriminator has taken this batch's step)",
                    epoch + 1,
                    run.iteration + 1,
                    g_loss.gan,
                    g_loss.l1,
                    g_loss.perceptual
                );
                return Err(save_stop(&nets, &run, what));
            }
            let grads = g_loss.loss.backward_releasing()?;
            skipped_steps += usize::from(!nets.opt_g.step(&grads, lr, 1.0)?);
            run.iteration += 1;
            run.batch = batch.index + 1;
            seen += n;
            let ips = seen as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9);
            log.write(
                &json!({"kind": "step", "epoch": epoch + 1, "iteration": run.iteration,
                "G_GAN": g_loss.gan, "G_L1": g_loss.l1, "G_perc": g_loss.perceptual,
                "D_real": d_loss.real, "D_fake": d_loss.fake, "lr": lr, "images_per_s": ips}),
            )?;
            pb.set_message(format!(
                "G_GAN {:.3} G_L1 {:.4} D {:.3}/{:.3} {ips:.1} img/s",
                g_loss.gan, g_loss.l1, d_loss.real, d_loss.fake
            ));
            pb.inc(1);
            if cfg.sample_every > 0 && run.iteration % cfg.sample_every == 0 {
                let path = cfg
                    .out_dir
                    .join("samples")
                    .join(format!("iter_{:07}.png", run.iteration));
                write_samples(&nets, cfg, &val_data, device, &path)?;
            }
            if stop.reached(run.iteration) {
                stopped = true;
                break;
            }
        }
        let seconds = t_epoch.elapsed().as_secs_f64();
        images_done += seen;
        train_seconds += seconds;
        if stopped {
            pb.finish_and_clear();
            checkpoint::save(&ckpt, &nets.g, &nets.d, &nets.opt_g, &nets.opt_d, &run)?;
            stop.report("iteration", run.iteration, &ckpt, opts.show_progress);
            return Ok(TrainSummary {
                history,
                iterations: run.iteration,
                wall_seconds: t_start.elapsed().as_secs_f64(),
                images_per_s: images_done as f64 / train_seconds.max(1e-9),
                interrupted: true,
            });
        }
        let val_opts = EvalOptions {
            mode: eval_mode,
            limit: None,
            perceptual: None,
        };
        let val = evaluate(
            &nets.g,
            &val_data,
            &transform(cfg, false),
            val_opts,
            device,
            |_| Ok(()),
        )?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            iteration: run.iteration,
            val_l1: val.l1,
            val_psnr: val.psnr,
            lr,
            seconds,
            images_per_s: seen as f64 / seconds.max(1e-9),
            skipped_steps,
        };
        let mut record = serde_json::to_value(&m).expect("json");
        record["kind"] = json!("epoch");
        log.write(&record)?;
        if opts.show_progress {
            pb.println(format!(
                "epoch {}/{}: val L1 {:.4}  PSNR {:.2} dB  lr {:.2e}  {:.1} img/s  {:.0}s",
                m.epoch,
                cfg.total_epochs(),
                m.val_l1,
                m.val_psnr,
                lr,
                m.images_per_s,
                seconds
            ));
        }
        run.epoch += 1;
        run.batch = 0;
        checkpoint::save(&ckpt, &nets.g, &nets.d, &nets.opt_g, &nets.opt_d, &run)?;
        if let Err(e) = super::plots::write_pix2pix_plots(&cfg.out_dir) {
            pb.println(format!("warning: could not draw the training charts: {e}"));
        }
        history.push(m);
    }
    pb.finish_and_clear();
    Ok(TrainSummary {
        history,
        iterations: run.iteration,
        wall_seconds: t_start.elapsed().as_secs_f64(),
        images_per_s: images_done as f64 / train_seconds.max(1e-9),
        interrupted: false,
    })
}
