//! The classification training loop: builds data, model and optimiser from a `TrainConfig`, trains
//! with warmup + cosine/step LR, label smoothing, mixup, distillation and FP16 loss scaling,
//! evaluates top-1/top-5 every epoch, logs JSON lines, and checkpoints atomically every epoch and on
//! Ctrl-C. `resume` continues from `<out_dir>/checkpoint.safetensors` at the exact batch it stopped.

use super::checkpoint::{self, EpochTotals, RunState};
use super::config::{DataSpec, TrainConfig};
use super::metrics::{topk_correct, JsonLog};
use super::step_inputs::{PreparedBatch, StepInputs};
use crate::data::ahead::prepare_ahead;
use crate::data::cifar::load_cifar;
use crate::data::folder::summarize;
use crate::data::idx::{load_mnist_style, FASHION_MNIST_CLASSES};
use crate::data::{
    ArrayDataset, Batch, ConcatDataset, Dataset, ImageFolder, Loader, LoaderConfig, Subset,
    TextureSwap, TextureSwapped,
};
use crate::interrupt::StopPoint;
use crate::models::ResNet;
use crate::nn::init::Init;
use crate::nn::{named_params, Mode, Module};
use crate::optim::{LrSchedule, ScheduleKind, Sgd, SgdConfig};
use crate::{DType, Device, Error, Result, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

#[derive(Clone, Debug, Serialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub train_loss: f64,
    pub top1: f64,
    pub top5: f64,
    pub lr: f64,
    pub images_per_s: f64,
    pub seconds: f64,
    pub skipped_steps: usize,
    /// Training samples skipped this epoch because they could not be decoded (each is logged).
    pub skipped_samples: usize,
}

#[derive(Clone, Debug, Serialize)]
pub struct TrainSummary {
    pub history: Vec<EpochMetrics>,
    pub best_top1: f64,
    pub wall_seconds: f64,
    pub images_per_s: f64,
    /// True when the run stopped on Ctrl-C (a checkpoint was written).
    pub interrupted: bool,
}

fn folder_set(
    roots: &[PathBuf],
    classes: Option<&[String]>,
    min_side: usize,
    what: &str,
) -> Result<Arc<dyn Dataset>> {
    if roots.is_empty() {
        return Err(Error::Msg(format!(
            "no {what} folders given (--{}-dir DIR)",
            if what == "training" { "train" } else { "val" }
        )));
    }
    let mut parts: Vec<(String, Arc<dyn Dataset>)> = Vec::new();
    for root in roots {
        let d = ImageFolder::new(root, classes)?.with_min_side(min_side);
        parts.push((root.display().to_string(), Arc::new(d)));
    }
    if parts.len() == 1 {
        return Ok(parts.pop().unwrap().1);
    }
    Ok(Arc::new(ConcatDataset::new(parts)?))
}

/// The whole training dataset that `cfg` names (`train_limit` not applied).
pub fn train_dataset(cfg: &TrainConfig) -> Result<Arc<dyn Dataset>> {
    train_dataset_limited(cfg, 0)
}

/// The training dataset with `train_limit` applied: to each part of joined IDX folders (the first
/// `n` of each, the same images when one is a stylized copy of the other), else to the whole.
fn train_dataset_limited(cfg: &TrainConfig, n: usize) -> Result<Arc<dyn Dataset>> {
    Ok(match &cfg.data {
        DataSpec::FashionMnist { dir, join } if join.is_empty() => limit(
            Arc::new(ArrayDataset {
                data: load_mnist_style(dir, "train", &FASHION_MNIST_CLASSES)?,
            }),
            n,
            false,
        ),
        DataSpec::FashionMnist { dir, join } => joined_idx(dir, join, n)?,
        DataSpec::ImageFolder {
            train, min_side, ..
        } => folder_set(train, None, *min_side, "training")?,
        DataSpec::Cifar { dir } => Arc::new(load_cifar(dir, true)?),
    })
}

/// The training splits of IDX folder `dir` and of each `join` folder, in that order, the first `n`
/// of each (0: all). Folders must differ and hold images of one size.
fn joined_idx(dir: &Path, join: &[PathBuf], n: usize) -> Result<Arc<dyn Dataset>> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut parts: Vec<(String, Arc<dyn Dataset>)> = Vec::new();
    let mut size = None;
    for d in std::iter::once(dir).chain(join.iter().map(PathBuf::as_path)) {
        let canonical = d.canonicalize().unwrap_or_else(|_| d.to_path_buf());
        if seen.contains(&canonical) {
            return Err(Error::Msg(format!(
                "{} is joined twice (--data and --join-data must name different folders)",
                d.display()
            )));
        }
        seen.push(canonical);
        let data = load_mnist_style(d, "train", &FASHION_MNIST_CLASSES)?;
        let hw = (data.height, data.width);
        if *size.get_or_insert(hw) != hw {
            return Err(Error::Msg(format!(
                "{} holds {}×{} images but {} holds {}×{}: joined IDX folders need one image size",
                d.display(),
                hw.0,
                hw.1,
                dir.display(),
                size.unwrap().0,
                size.unwrap().1
            )));
        }
        parts.push((
            d.display().to_string(),
            limit(Arc::new(ArrayDataset { data }), n, false),
        ));
    }
    Ok(Arc::new(ConcatDataset::new(parts)?))
}

/// The texture set `cfg.texture_swap` names, decoded once with `channels` channels (None without
/// texture swapping).
fn texture_set(cfg: &TrainConfig, channels: usize) -> Result<Option<Arc<TextureSwap>>> {
    cfg.texture_swap
        .as_ref()
        .map(|spec| TextureSwap::load(&spec.dir, channels, spec.seed).map(Arc::new))
        .transpose()
}

/// `d` re-textured with `swap` (as is when it is None). `stream` 0 is training, 1 validation; with
/// `join_plain`, training gets the plain images and the re-textured ones.
fn texture_swapped(
    cfg: &TrainConfig,
    d: Arc<dyn Dataset>,
    swap: Option<&Arc<TextureSwap>>,
    stream: u64,
) -> Result<Arc<dyn Dataset>> {
    let Some(swap) = swap else {
        return Ok(d);
    };
    let swapped: Arc<dyn Dataset> = Arc::new(TextureSwapped::new(d.clone(), swap.clone(), stream)?);
    let join = cfg.texture_swap.as_ref().is_some_and(|s| s.join_plain);
    if join && stream == 0 {
        return Ok(Arc::new(ConcatDataset::new(vec![
            ("plain images".into(), d),
            ("texture-swapped images".into(), swapped),
        ])?));
    }
    Ok(swapped)
}

/// The validation images `cfg` names, not re-textured; folder data is labelled with `classes`.
fn plain_val_dataset(cfg: &TrainConfig, classes: &[String]) -> Result<Arc<dyn Dataset>> {
    Ok(match &cfg.data {
        DataSpec::FashionMnist { dir, .. } => Arc::new(ArrayDataset {
            data: load_mnist_style(dir, "t10k", &FASHION_MNIST_CLASSES)?,
        }),
        DataSpec::ImageFolder { val, min_side, .. } => {
            folder_set(val, Some(classes), *min_side, "validation")?
        }
        DataSpec::Cifar { dir } => Arc::new(load_cifar(dir, false)?),
    })
}

/// `ds` re-textured with `swap`, after checking that its classes are the training `classes`.
fn checked_val(
    cfg: &TrainConfig,
    ds: Arc<dyn Dataset>,
    swap: Option<&Arc<TextureSwap>>,
    classes: &[String],
) -> Result<Arc<dyn Dataset>> {
    let ds = texture_swapped(cfg, ds, swap, 1)?;
    if ds.class_names() != classes {
        return Err(Error::Msg(format!(
            "class mismatch between training ({} classes: {}) and validation data ({} classes: {})",
            classes.len(),
            summarize(classes),
            ds.class_names().len(),
            summarize(ds.class_names())
        )));
    }
    Ok(ds)
}

/// The whole validation dataset that `cfg` names (re-textured when `cfg.texture_swap` is set);
/// folder data is labelled with `classes` (the training classes), and a validation class folder
/// outside them is an error naming it.
pub fn val_dataset(cfg: &TrainConfig, classes: &[String]) -> Result<Arc<dyn Dataset>> {
    let ds = plain_val_dataset(cfg, classes)?;
    let swap = texture_set(cfg, ds.channels())?;
    checked_val(cfg, ds, swap.as_ref(), classes)
}

/// The first `n` samples of `d` (0 = all), or `n` evenly spaced ones when `spread` (folder data is
/// sorted by class, so its first samples would all be of the first classes).
fn limit(d: Arc<dyn Dataset>, n: usize, spread: bool) -> Arc<dyn Dataset> {
    let len = d.len();
    if n == 0 || n >= len {
        return d;
    }
    let indices = if spread {
        (0..n).map(|i| (2 * i + 1) * len / (2 * n)).collect()
    } else {
        (0..n).collect()
    };
    Arc::new(Subset { inner: d, indices })
}

/// Training and validation datasets of `cfg`, with `train_limit` / `val_limit` applied.
pub fn datasets(cfg: &TrainConfig) -> Result<(Arc<dyn Dataset>, Arc<dyn Dataset>)> {
    // Joined IDX folders take the limit per folder; anything else after the join.
    let per_part = matches!(&cfg.data, DataSpec::FashionMnist { join, .. } if !join.is_empty());
    let train = train_dataset_limited(cfg, if per_part { cfg.train_limit } else { 0 })?;
    // The texture photographs are decoded once, for both splits.
    let swap = texture_set(cfg, train.channels())?;
    let plain_val = plain_val_dataset(cfg, train.class_names())?;
    let val = checked_val(cfg, plain_val, swap.as_ref(), train.class_names())?;
    let spread = matches!(cfg.data, DataSpec::ImageFolder { .. });
    // The swap comes after the limit, so that a limited SIN+IN run joins the same images twice.
    let train_limit = if per_part { 0 } else { cfg.train_limit };
    let train = texture_swapped(cfg, limit(train, train_limit, spread), swap.as_ref(), 0)?;
    Ok((train, limit(val, cfg.val_limit, spread)))
}

/// `cfg` with the classes of the training data filled in: `class_names` (an error when a config
/// names other classes) and the model's `num_classes` when it is 0 ("from the data").
pub fn with_data_classes(cfg: &TrainConfig, classes: &[String]) -> Result<TrainConfig> {
    let mut c = cfg.clone();
    if c.class_names.is_empty() {
        c.class_names = classes.to_vec();
    } else if c.class_names != classes {
        return Err(Error::Msg(format!(
            "class mismatch: the run was set up for {} classes ({}) but the training data has {} ({})",
            c.class_names.len(),
            summarize(&c.class_names),
            classes.len(),
            summarize(classes)
        )));
    }
    if c.model.num_classes == 0 {
        c.model.num_classes = classes.len();
    }
    Ok(c)
}

/// Batch images as a tensor on `device` in `dtype`. `step_input`: a training batch, uploaded through
/// the copy stream (`Tensor::to_device_input`); else a plain upload (evaluation), which holds no
/// copy-stream slot on the device.
pub(crate) fn batch_tensor(
    images: Vec<f32>,
    dims: [usize; 4],
    dtype: DType,
    device: Device,
    step_input: bool,
) -> Result<Tensor> {
    let host = Tensor::from_vec(images, dims.to_vec(), Device::Cpu)?.to_dtype(dtype)?;
    match step_input {
        true => host.to_device_input(device),
        false => host.to_device(device),
    }
}

/// Top-1 and top-5 accuracy (%) of `model` on `loader`'s data.
pub fn evaluate(
    model: &dyn Module,
    loader: &Arc<Loader>,
    dtype: DType,
    device: Device,
) -> Result<(f64, f64)> {
    let _g = crate::NoGradGuard::new();
    let (mut n, mut c1, mut c5) = (0usize, 0usize, 0usize);
    // Batch k+1 goes to the device on its own thread while batch k is evaluated (a plain upload:
    // validation batches hold no copy-stream slots beside the training batches').
    let batches = prepare_ahead(loader.epoch(0, 0), move |mut b: Batch| {
        let x = batch_tensor(std::mem::take(&mut b.images), b.dims, dtype, device, false)?;
        Ok((b, x))
    });
    for prepared in batches {
        let (batch, x) = prepared?;
        for s in &batch.skipped {
            eprintln!("skipped unreadable validation sample {s}");
        }
        let logits = model.forward(&x, Mode::EVAL)?.to_dtype(DType::F32)?;
        let hits = topk_correct(&logits, &batch.labels, &[1, 5])?;
        n += batch.labels.len();
        c1 += hits[0];
        c5 += hits[1];
    }
    Ok((
        100.0 * c1 as f64 / n.max(1) as f64,
        100.0 * c5 as f64 / n.max(1) as f64,
    ))
}

pub fn checkpoint_path(out_dir: &Path) -> PathBuf {
    out_dir.join("checkpoint.safetensors")
}

/// How to run (as opposed to what to train, which is the `TrainConfig`).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Continue from `<out_dir>/checkpoint.safetensors`.
    pub resume: bool,
    pub show_progress: bool,
    /// Stop as Ctrl-C would (checkpoint, then return) once this many optimiser steps have been
    /// taken in total: for time-boxed runs and for testing `resume`.
    pub stop_after_steps: Option<usize>,
}

pub fn train(cfg: &TrainConfig, device: Device, opts: &RunOptions) -> Result<TrainSummary> {
    let (resume, show_progress) = (opts.resume, opts.show_progress);
    let t_start = Instant::now();
    let (train_ds, val_ds) = datasets(cfg)?;
    let cfg = &with_data_classes(cfg, train_ds.class_names())?;
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::Io {
        path: cfg.out_dir.display().to_string(),
        source: e,
    })?;
    crate::nn::state::write_atomic(
        &cfg.out_dir.join("config.json"),
        serde_json::to_string_pretty(cfg).expect("json").as_bytes(),
    )?;
    let stop = StopPoint::new(opts.stop_after_steps);

    if train_ds.class_names().len() != cfg.model.num_classes
        || val_ds.class_names() != train_ds.class_names()
    {
        return Err(Error::Msg(format!(
            "class mismatch: model has {} classes, training data {} ({:?}), validation data {}",
            cfg.model.num_classes,
            train_ds.class_names().len(),
            train_ds.class_names(),
            val_ds.class_names().len()
        )));
    }
    let train_loader = Arc::new(Loader::new(
        train_ds,
        LoaderConfig {
            batch_size: cfg.batch_size,
            shuffle: true,
            drop_last: true,
            seed: cfg.seed,
            augment: cfg.augment.clone(),
            mixup_alpha: cfg.mixup_alpha,
            // On a GPU the blend is one kernel over the uploaded batch (`Tensor::mixup`).
            mixup_on_host: device.is_cpu(),
            prefetch: 3,
        },
    )?);
    let val_loader = Arc::new(Loader::new(
        val_ds,
        LoaderConfig {
            batch_size: 256,
            shuffle: false,
            drop_last: false,
            seed: 0,
            augment: cfg.augment.eval(cfg.eval_resize),
            mixup_alpha: 0.0,
            mixup_on_host: true,
            prefetch: 2,
        },
    )?);

    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let mut model = ResNet::new(cfg.model.clone(), &mut Init::new(cfg.seed, dtype, device))?;
    // Channels-last weights on CUDA, so the channels-last step converts none (on the CPU conv2d
    // computes NCHW, and the weights stay contiguous). Before the optimizer takes the parameters.
    let weights_channels_last = cfg.channels_last && !device.is_cpu();
    if weights_channels_last {
        model.to_channels_last()?;
    }
    if let (Some(src), false) = (&cfg.init_from, resume) {
        let fresh = checkpoint::init_from(src, &model)?;
        if show_progress {
            eprintln!(
                "initialised from {}{}",
                src.display(),
                if fresh.is_empty() {
                    String::new()
                } else {
                    format!(" (new, randomly initialised: {})", fresh.join(", "))
                }
            );
        }
    }
    let mut opt = Sgd::new(
        named_params(&model),
        SgdConfig {
            momentum: cfg.momentum,
            nesterov: cfg.nesterov,
            weight_decay: cfg.weight_decay,
            no_bias_decay: cfg.no_bias_decay,
        },
    )?;
    let teacher = match &cfg.distill {
        Some(d) => {
            let mut t = ResNet::new(d.teacher_model.clone(), &mut Init::new(0, dtype, device))?;
            if weights_channels_last {
                t.to_channels_last()?;
            }
            let state = checkpoint::read_run_state(&d.teacher).ok();
            match state {
                Some(_) => {
                    checkpoint::load(&d.teacher, &t, None, &d.teacher_model)?;
                }
                None => {
                    crate::nn::state::load_module(&d.teacher, &t, false)?;
                }
            }
            Some((t, d.temperature, d.weight))
        }
        None => None,
    };

    let spe = train_loader.batches_per_epoch();
    let schedule = LrSchedule {
        base_lr: cfg.lr(),
        warmup_steps: (cfg.warmup_epochs * spe as f64).round() as usize,
        total_steps: cfg.epochs * spe,
        kind: if cfg.cosine {
            ScheduleKind::Cosine
        } else {
            ScheduleKind::Step {
                milestones: cfg.step_milestones.iter().map(|e| e * spe).collect(),
                gamma: cfg.step_gamma,
            }
        },
    };

    let ckpt = checkpoint_path(&cfg.out_dir);
    let mut run = RunState::start(cfg.clone());
    if resume {
        if !ckpt.exists() {
            return Err(Error::Msg(format!(
                "--resume: no checkpoint at {}; start without --resume",
                ckpt.display()
            )));
        }
        let saved = checkpoint::load(&ckpt, &model, Some(&mut opt), &cfg.model)?;
        // Everything but the configuration, which is this invocation's.
        run = RunState {
            config: run.config,
            ..saved
        };
        eprintln!(
            "resuming from {} at epoch {} batch {} (step {})",
            ckpt.display(),
            run.epoch + 1,
            run.batch,
            run.step
        );
    }

    let mut log = JsonLog::append(&cfg.out_dir.join("metrics.jsonl"))?;
    let mut history = Vec::new();
    let mut train_images = 0usize;
    let mut train_seconds = 0.0f64;
    let step_inputs = StepInputs {
        classes: cfg.model.num_classes,
        label_smoothing: cfg.label_smoothing,
        soft: cfg.mixup_alpha > 0.0 || cfg.label_smoothing > 0.0,
        dtype,
        device,
        channels_last: cfg.channels_last,
    };
    // At least ~25 logged steps an epoch for the charts, at most one line every 20 steps on long runs.
    let log_every = (spe / 25).clamp(1, 20);

    while run.epoch < cfg.epochs {
        let epoch = run.epoch;
        let pb = crate::progress::bar(
            show_progress,
            (spe - run.batch) as u64,
            format!("epoch {}/{}", epoch + 1, cfg.epochs),
            "{pos}/{len}",
        );
        let t_epoch = Instant::now();
        let mut seen = 0usize; // images this process trained on this epoch (for images/s)
        let mut interrupted = false;
        // Batch k+1 goes to the device on its own thread while step k runs (`data::ahead`).
        let batches = prepare_ahead(train_loader.epoch(epoch as u64, run.batch), move |b| {
            step_inputs.prepare(b)
        });
        for prepared in batches {
            let PreparedBatch { batch, tensors } = prepared?;
            for s in &batch.skipped {
                run.this_epoch.skipped_samples += 1;
                pb.println(format!("skipped unreadable sample {s}"));
                log.write(&serde_json::json!({"kind": "skipped_sample", "epoch": epoch + 1, "batch": batch.index, "sample": s}))?;
            }
            let Some((x, targets)) = tensors else {
                continue; // every sample of this batch was unreadable
            };
            let lr = schedule.lr(run.step);
            let n = batch.labels.len();
            let logits = model.forward(&x, Mode::TRAIN)?.to_dtype(DType::F32)?;
            let mut loss = match &targets {
                Some(t) => logits.cross_entropy_soft(t)?,
                None => logits.cross_entropy(&batch.labels, 0.0)?,
            };
            if let Some((teacher, temperature, weight)) = &teacher {
                let t_logits =
                    crate::no_grad(|| teacher.forward(&x, Mode::EVAL))?.to_dtype(DType::F32)?;
                loss = loss.scale(1.0 - weight)?.add(
                    &logits
                        .distillation_loss(&t_logits, *temperature)?
                        .scale(*weight)?,
                )?;
            }
            let loss_value = loss.to_scalar()?;
            if !loss_value.is_finite() && !cfg.fp16 {
                checkpoint::save(
                    &ckpt,
                    &model,
                    &opt,
                    &RunState {
                        // This batch runs again on resume: its skipped samples count then.
                        batch: batch.index,
                        this_epoch: EpochTotals {
                            skipped_samples: run.this_epoch.skipped_samples - batch.skipped.len(),
                            ..run.this_epoch.clone()
                        },
                        ..run.clone()
                    },
                )?;
                return Err(Error::Msg(format!(
                    "the loss became {loss_value} at epoch {} step {}: lower --lr or check the data; the last good state is in {}",
                    epoch + 1,
                    run.step,
                    ckpt.display()
                )));
            }
            let grads = if cfg.fp16 {
                loss.scale(run.scaler.scale)?.backward_releasing()?
            } else {
                loss.backward_releasing()?
            };
            let applied = opt.step(&grads, lr, run.scaler.scale)?;
            if cfg.fp16 && !run.scaler.update(applied) {
                return Err(Error::Msg(format!(
                    "gradients stay inf/NaN even at loss scale {:.2e} (epoch {} step {}): the loss itself is diverging; lower --lr; last checkpoint {}",
                    run.scaler.scale,
                    epoch + 1,
                    run.step,
                    ckpt.display()
                )));
            }
            if !applied {
                run.this_epoch.skipped_steps += 1;
            }
            run.step += 1;
            run.batch = batch.index + 1;
            if loss_value.is_finite() {
                run.this_epoch.loss_sum += loss_value * n as f64;
                run.this_epoch.loss_images += n;
            }
            seen += n;
            let ips = seen as f64 / t_epoch.elapsed().as_secs_f64().max(1e-9);
            pb.set_message(format!(
                "loss {:.4} lr {lr:.4} {ips:.0} img/s",
                run.this_epoch.mean_loss()
            ));
            pb.inc(1);
            if run.step % log_every == 0 {
                log.write(&serde_json::json!({"kind": "step", "epoch": epoch + 1, "step": run.step, "loss": loss_value, "lr": lr, "loss_scale": run.scaler.scale, "images_per_s": ips}))?;
            }
            if stop.reached(run.step) {
                interrupted = true;
                break;
            }
        }
        pb.finish_and_clear();
        let seconds = t_epoch.elapsed().as_secs_f64();
        train_images += seen;
        train_seconds += seconds;
        if interrupted {
            checkpoint::save(&ckpt, &model, &opt, &run)?;
            stop.report("step", run.step, &ckpt, show_progress);
            return Ok(TrainSummary {
                history,
                best_top1: run.best_top1,
                wall_seconds: t_start.elapsed().as_secs_f64(),
                images_per_s: train_images as f64 / train_seconds.max(1e-9),
                interrupted: true,
            });
        }
        let (top1, top5) = evaluate(&model, &val_loader, dtype, device)?;
        let m = EpochMetrics {
            epoch: epoch + 1,
            train_loss: run.this_epoch.mean_loss(),
            top1,
            top5,
            lr: schedule.lr(run.step.saturating_sub(1)),
            images_per_s: seen as f64 / seconds.max(1e-9),
            seconds,
            skipped_steps: run.this_epoch.skipped_steps,
            skipped_samples: run.this_epoch.skipped_samples,
        };
        if show_progress {
            eprintln!(
                "epoch {}/{}: loss {:.4}  top-1 {:.2}%  top-5 {:.2}%  {:.0} img/s  {:.0}s",
                m.epoch, cfg.epochs, m.train_loss, m.top1, m.top5, m.images_per_s, m.seconds
            );
            if m.skipped_samples > 0 {
                eprintln!(
                    "epoch {}: skipped {} unreadable training sample(s), named above and in metrics.jsonl",
                    m.epoch, m.skipped_samples
                );
            }
        }
        log.write(&serde_json::json!({"kind": "epoch", "metrics": m}))?;
        run.epoch += 1;
        run.batch = 0;
        run.this_epoch = EpochTotals::default();
        if top1 > run.best_top1 {
            run.best_top1 = top1;
        }
        checkpoint::save(&ckpt, &model, &opt, &run)?;
        if let Err(e) = super::plots::write_training_plots(&cfg.out_dir) {
            eprintln!("warning: could not draw the training charts: {e}");
        }
        history.push(m);
    }
    Ok(TrainSummary {
        history,
        best_top1: run.best_top1,
        wall_seconds: t_start.elapsed().as_secs_f64(),
        images_per_s: train_images as f64 / train_seconds.max(1e-9),
        interrupted: false,
    })
}
