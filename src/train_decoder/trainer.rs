//! The decoder training loop (naoto0804/pytorch-AdaIN `train.py`): a frozen VGG encoder, a
//! decoder trained with Adam on `content_weight · L_c + style_weight · L_s` (`Stylizer::losses`
//! with α = 1), the learning rate decayed as `lr / (1 + lr_decay · i)`. Around it, what the
//! classification trainer does too: a run folder with config.json, JSON-lines metrics and a loss
//! chart, atomic checkpoints every `save_every` iterations and on Ctrl-C, exact `--resume`, a
//! progress bar, FP16 with dynamic loss scaling, and clear errors.
//!
//! Invariants:
//! - On the CPU a run stopped at any iteration and resumed computes the same losses and ends with
//!   bit-identical weights as an uninterrupted run: the batches are a pure function of (seed,
//!   iteration) (`data`), the decoder's initialisation of the seed, and the checkpoint holds the
//!   weights, Adam's moments and step count, and the loss scaler.
//! - A checkpoint always holds a state from between two iterations; `decoder.safetensors` is
//!   rewritten with it. A non-finite FP32 loss writes the state before that iteration, then stops.
//! - Logged losses are the unweighted `L_c` and `L_s` of that iteration's batch and the weighted
//!   total; `iteration` counts completed iterations (1-based), as the reference's logs do.

use super::checkpoint::{self, DecoderRunState};
use super::config::{DecoderTrainConfig, EncoderSource};
use super::data::{sample_pairs, ImageSet, PairBatch, PairLoader};
use crate::data::ahead::prepare_ahead;
use crate::data::loader::mix_seed;
use crate::interrupt::StopPoint;
use crate::models::stylizer::{Decoder, Stylizer, VggEncoder};
use crate::nn::init::Init;
use crate::nn::{named_params, state};
use crate::optim::{Adam, AdamConfig, DynamicLossScaler};
use crate::train::metrics::JsonLog;
use crate::train::trainer::batch_tensor;
use crate::train::RunOptions;
use crate::viz::{draw_line_chart, jsonl, tensor_to_rgb8, Chart, ImageGrid, PixelRange};
use crate::{DType, Device, Error, Result, Tensor};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// One logged iteration.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct IterationMetrics {
    /// Iterations completed (1-based).
    pub iteration: usize,
    /// Unweighted content and style losses, and `content_weight · loss_c + style_weight · loss_s`.
    pub loss_c: f64,
    pub loss_s: f64,
    pub total: f64,
    pub lr: f64,
    /// Content images per second since the previous logged line.
    pub images_per_s: f64,
    pub loss_scale: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct DecoderTrainSummary {
    /// Iterations completed in total (including those before a resume).
    pub iterations: usize,
    /// The lines this call logged to metrics.jsonl.
    pub history: Vec<IterationMetrics>,
    /// Files of the two folders skipped as unreadable or too small.
    pub skipped_files: usize,
    /// Images that failed to decode during training (their pairs were dropped).
    pub skipped_samples: usize,
    /// Iterations without an update (FP16 overflow, or a batch whose pairs all failed).
    pub skipped_steps: usize,
    pub wall_seconds: f64,
    /// Content images per second of training (this call).
    pub images_per_s: f64,
    /// True when the run stopped early (Ctrl-C or `stop_after_steps`) after writing a checkpoint.
    pub interrupted: bool,
}

/// Mixed with the run's seed for a random encoder, so that it differs from the decoder's stream.
const RANDOM_ENCODER_STREAM: u64 = 0x76_67_67;

/// The encoder (loaded, or random for tests) and the decoder: loaded from `decoder_init` (converted
/// weights) or fresh and seeded.
fn build_stylizer(
    cfg: &DecoderTrainConfig,
    decoder_init: Option<&Path>,
    dtype: DType,
    device: Device,
) -> Result<Stylizer> {
    let encoder = match &cfg.encoder {
        EncoderSource::Weights(path) => VggEncoder::load(path, dtype, device)?,
        EncoderSource::Random { width } => {
            let mut init = Init::new(mix_seed(&[cfg.seed, RANDOM_ENCODER_STREAM]), dtype, device);
            let encoder = VggEncoder::new(&mut init, *width)?;
            // He-normal weights and zero biases, so the features keep their scale through the
            // ReLUs down to relu4_1 (as the normalised VGG's do; PyTorch's default init would
            // shrink them towards 0 and leave the content loss nothing to learn from).
            for (_, p) in named_params(&encoder) {
                let dims = p.tensor.dims().to_vec();
                let value = if dims.len() == 4 {
                    let fan_in: usize = dims[1..].iter().product();
                    init.normal(&dims, (2.0 / fan_in as f64).sqrt())?
                } else {
                    init.constant(&dims, 0.0)?
                };
                p.tensor.assign(&value)?;
            }
            encoder
        }
    };
    let decoder = match decoder_init {
        Some(path) => Decoder::load(path, dtype, device)?,
        None => Decoder::new(&mut Init::new(cfg.seed, dtype, device), encoder.width())?,
    };
    if decoder.width() != encoder.width() {
        return Err(Error::Msg(format!(
            "--decoder {}: the decoder takes {} channels but the encoder gives {}",
            decoder_init
                .expect("a fresh decoder has the encoder's width")
                .display(),
            8 * decoder.width(),
            8 * encoder.width()
        )));
    }
    Ok(Stylizer { encoder, decoder })
}

/// The sample grid's content and style batches (`[K, 3, crop, crop]`), or None without pairs.
struct Samples {
    content: Tensor,
    style: Tensor,
}

impl Samples {
    fn new(
        cfg: &DecoderTrainConfig,
        content: &ImageSet,
        styles: &ImageSet,
        dtype: DType,
        device: Device,
        warn: &mut dyn FnMut(String),
    ) -> Result<Option<Samples>> {
        let (pairs, warnings) =
            sample_pairs(content, styles, cfg.sample_pairs, cfg.image_size, cfg.crop);
        for w in warnings {
            warn(format!("sample grid: left out a pair: {w}"));
        }
        if pairs.is_empty() {
            return Ok(None);
        }
        let dims = [pairs.len(), 3, cfg.crop, cfg.crop];
        let (c, s): (Vec<Vec<f32>>, Vec<Vec<f32>>) = pairs.into_iter().unzip();
        Ok(Some(Samples {
            content: batch_tensor(c.concat(), dims, dtype, device, false)?,
            style: batch_tensor(s.concat(), dims, dtype, device, false)?,
        }))
    }

    /// Writes the grid: one row per pair, (content, style, result).
    fn write(&self, stylizer: &Stylizer, path: &Path) -> Result<()> {
        let _g = crate::NoGradGuard::new();
        let out = stylizer.stylize(&self.content, &[(self.style.clone(), 1.0)], 1.0, false)?;
        let mut grid = ImageGrid::new();
        for j in 0..self.content.dims()[0] {
            grid.push_row(
                [&self.content, &self.style, &out]
                    .iter()
                    .map(|t| tensor_to_rgb8(t, j, PixelRange::ZeroOne))
                    .collect::<Result<_>>()?,
            );
        }
        grid.save(path)
    }
}

/// `<out_dir>/samples/iter_XXXXXX.png`.
pub fn sample_path(out_dir: &Path, iteration: usize) -> PathBuf {
    out_dir
        .join("samples")
        .join(format!("iter_{iteration:06}.png"))
}

/// Redraws `<out_dir>/loss.png` (total, content and style loss per iteration, log scale) from
/// `metrics.jsonl`, so a resumed run's chart covers the whole run.
pub fn write_loss_chart(out_dir: &Path) -> Result<()> {
    let records = jsonl::read_records(&out_dir.join("metrics.jsonl"))?;
    let curve =
        |key: &str, label: &str| jsonl::series(&records, "iteration", "iteration", key, label);
    draw_line_chart(
        &out_dir.join("loss.png"),
        &Chart {
            title: "AdaIN decoder training loss".into(),
            x_label: "iteration".into(),
            y_label: "loss".into(),
            series: vec![
                curve("total", "total"),
                curve("loss_c", "content"),
                curve("loss_s", "style"),
            ],
            log_y: true,
        },
    )
}

/// Writes the checkpoint, the decoder weights beside it and the loss chart.
fn save_run(stylizer: &Stylizer, opt: &Adam, run: &DecoderRunState, out_dir: &Path) -> Result<()> {
    checkpoint::save(
        &checkpoint::checkpoint_path(out_dir),
        &stylizer.decoder,
        opt,
        run,
    )?;
    checkpoint::export_decoder(
        &checkpoint::decoder_path(out_dir),
        &stylizer.decoder,
        run.iteration,
    )?;
    if let Err(e) = write_loss_chart(out_dir) {
        eprintln!("warning: could not draw the loss chart: {e}");
    }
    Ok(())
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Trains the decoder `cfg` describes on `device`; with `opts.resume`, continues the run in
/// `cfg.out_dir` from its checkpoint (whose config must agree, `check_resumable`).
pub fn train_decoder(
    cfg: &DecoderTrainConfig,
    device: Device,
    opts: &RunOptions,
) -> Result<DecoderTrainSummary> {
    let t_start = Instant::now();
    cfg.validate()?;
    let content = ImageSet::scan(&cfg.content_dir, "content", "--content", cfg.min_side)?;
    let styles = ImageSet::scan(&cfg.style_dir, "style", "--styles", cfg.min_side)?;
    let dtype = if cfg.fp16 { DType::F16 } else { DType::F32 };
    let ckpt = checkpoint::checkpoint_path(&cfg.out_dir);
    if opts.resume && !ckpt.exists() {
        return Err(Error::Msg(format!(
            "--resume: no checkpoint at {}; start without --resume",
            ckpt.display()
        )));
    }
    if opts.resume {
        // Before anything is written to the run folder.
        cfg.check_resumable(&checkpoint::read_run_state(&ckpt)?.config)?;
    }
    // A resumed run's decoder comes from its checkpoint.
    let decoder_init = cfg.decoder_init.as_deref().filter(|_| !opts.resume);
    let stylizer = build_stylizer(cfg, decoder_init, dtype, device)?;
    std::fs::create_dir_all(cfg.out_dir.join("samples")).map_err(io_err(&cfg.out_dir))?;
    state::write_atomic(
        &cfg.out_dir.join("config.json"),
        serde_json::to_string_pretty(cfg).expect("json").as_bytes(),
    )?;
    if let EncoderSource::Random { .. } = cfg.encoder {
        // Saved so that the decoder can be used with the encoder it was trained against.
        let meta = [(
            "source".to_string(),
            "engine train-decoder --random-vgg (testing only)".to_string(),
        )];
        state::save_module(
            &cfg.out_dir.join("random_vgg.safetensors"),
            &stylizer.encoder,
            &meta.into(),
        )?;
    }
    let stop = StopPoint::new(opts.stop_after_steps);

    let mut opt = Adam::new(named_params(&stylizer.decoder), AdamConfig::default())?;
    let mut run = DecoderRunState {
        iteration: 0,
        content_position: 0,
        style_position: 0,
        scaler: if cfg.fp16 {
            DynamicLossScaler::default()
        } else {
            DynamicLossScaler::disabled()
        },
        content_images: content.files.len(),
        style_images: styles.files.len(),
        config: cfg.clone(),
    };
    let pb = crate::progress::bar(
        opts.show_progress,
        cfg.iterations as u64,
        "train-decoder",
        "{pos}/{len}",
    );
    let mut warn = |msg: String| {
        if opts.show_progress {
            pb.println(format!("warning: {msg}"));
        }
    };
    if opts.resume {
        let saved = checkpoint::load(&ckpt, &stylizer.decoder, &mut opt)?;
        if (saved.content_images, saved.style_images) != (run.content_images, run.style_images) {
            warn(format!(
                "the folders held {} content and {} style images when the run started, now {} and {}: the data order differs from the original run's",
                saved.content_images, saved.style_images, run.content_images, run.style_images
            ));
        }
        run.iteration = saved.iteration;
        run.content_position = saved.content_position;
        run.style_position = saved.style_position;
        run.scaler = saved.scaler;
        if opts.show_progress {
            eprintln!(
                "resuming from {} at iteration {}",
                ckpt.display(),
                run.iteration
            );
        }
    }

    let mut log = JsonLog::append(&cfg.out_dir.join("metrics.jsonl"))?;
    for (set, what) in [(&content, "content"), (&styles, "style")] {
        for s in &set.skipped {
            log.write(&serde_json::json!({"kind": "skipped_file", "folder": what, "file": s}))?;
        }
        if !set.skipped.is_empty() {
            warn(format!(
                "skipped {} of the {} files in the {what} folder {} (named in metrics.jsonl), e.g. {}",
                set.skipped.len(),
                set.skipped.len() + set.files.len(),
                set.root.display(),
                set.skipped[0]
            ));
        }
    }
    let samples = Samples::new(cfg, &content, &styles, dtype, device, &mut warn)?;
    if opts.show_progress {
        eprintln!(
            "training the AdaIN decoder (width {}) on {device}{}: {} content images, {} style images, batch {}, {}→{} px, lr {:.1e}; run folder {}",
            stylizer.decoder.width(),
            if cfg.fp16 { ", fp16" } else { "" },
            content.files.len(),
            styles.files.len(),
            cfg.batch_size,
            cfg.image_size,
            cfg.crop,
            cfg.lr,
            cfg.out_dir.display()
        );
    }

    pb.set_position(run.iteration as u64);
    pb.reset_eta();

    let loader = Arc::new(PairLoader::new(
        &content,
        &styles,
        cfg.seed,
        cfg.batch_size,
        cfg.image_size,
        cfg.crop,
    ));
    let mut history = Vec::new();
    let (mut skipped_samples, mut skipped_steps, mut images) = (0usize, 0usize, 0usize);
    let t_train = Instant::now();
    let (mut window_images, mut window_start) = (0usize, Instant::now());
    let mut interrupted = stop.budget_spent(run.iteration) && run.iteration < cfg.iterations;
    let start = run.iteration;
    let end = if interrupted { start } else { cfg.iterations };
    // Batch i+1 goes to the device on its own thread while iteration i runs (`data::ahead`).
    let batches = prepare_ahead(loader.batches(start, end, 3), move |mut b: PairBatch| {
        let tensors = match b.dims[0] {
            0 => None, // every pair of this batch failed to decode
            _ => Some((
                batch_tensor(std::mem::take(&mut b.content), b.dims, dtype, device, true)?,
                batch_tensor(std::mem::take(&mut b.style), b.dims, dtype, device, true)?,
            )),
        };
        Ok((b, tensors))
    });
    for prepared in batches {
        let (batch, tensors) = prepared?;
        let i = batch.iteration;
        let lr = cfg.lr_at(i);
        for s in &batch.skipped {
            skipped_samples += 1;
            warn(format!("skipped unreadable image {s}"));
            log.write(
                &serde_json::json!({"kind": "skipped_sample", "iteration": i + 1, "sample": s}),
            )?;
        }
        let n = batch.dims[0];
        let mut metrics = None;
        if let Some((c, s)) = tensors {
            let (loss_c, loss_s) = stylizer.losses(&c, &s, 1.0)?;
            let (loss_c, loss_s) = (loss_c.to_dtype(DType::F32)?, loss_s.to_dtype(DType::F32)?);
            let total = loss_c
                .scale(cfg.content_weight)?
                .add(&loss_s.scale(cfg.style_weight)?)?;
            // One read of the device for the three values.
            let v = Tensor::scalars(&[&loss_c, &loss_s, &total])?;
            let m = IterationMetrics {
                iteration: i + 1,
                loss_c: v[0],
                loss_s: v[1],
                total: v[2],
                lr,
                images_per_s: 0.0,
                loss_scale: run.scaler.scale,
            };
            if !m.total.is_finite() && !cfg.fp16 {
                save_run(&stylizer, &opt, &run, &cfg.out_dir)?;
                pb.finish_and_clear();
                return Err(Error::Msg(format!(
                    "the loss became {} at iteration {} (content {}, style {}): lower --lr (now {:.1e}) or --style-weight, or check the images; \
                     the state before this iteration is in {} (continue with --resume --lr …)",
                    m.total,
                    i + 1,
                    m.loss_c,
                    m.loss_s,
                    cfg.lr,
                    ckpt.display()
                )));
            }
            let grads = if cfg.fp16 {
                total.scale(run.scaler.scale)?.backward_releasing()?
            } else {
                total.backward_releasing()?
            };
            let applied = opt.step(&grads, lr, run.scaler.scale)?;
            if cfg.fp16 && !run.scaler.update(applied) {
                save_run(&stylizer, &opt, &run, &cfg.out_dir)?;
                pb.finish_and_clear();
                return Err(Error::Msg(format!(
                    "gradients stay inf/NaN even at loss scale {:.2e} (iteration {}): the loss itself is diverging; lower --lr; the last good state is in {}",
                    run.scaler.scale,
                    i + 1,
                    ckpt.display()
                )));
            }
            if !applied {
                skipped_steps += 1;
            }
            images += n;
            window_images += n;
            metrics = Some(m);
        } else {
            skipped_steps += 1; // every pair of this batch failed to decode
        }
        run.iteration = i + 1;
        run.content_position = (run.iteration * cfg.batch_size) as u64;
        run.style_position = run.content_position;
        pb.set_position(run.iteration as u64);
        if let Some(mut m) = metrics {
            if run.iteration % cfg.log_every == 0 || run.iteration == cfg.iterations {
                m.images_per_s =
                    window_images as f64 / window_start.elapsed().as_secs_f64().max(1e-9);
                (window_images, window_start) = (0, Instant::now());
                let mut line = serde_json::to_value(&m).expect("json");
                line["kind"] = "iteration".into();
                log.write(&line)?;
                pb.set_message(format!(
                    "L_c {:.4} L_s {:.4} total {:.4} lr {:.2e} {:.1} img/s",
                    m.loss_c, m.loss_s, m.total, m.lr, m.images_per_s
                ));
                history.push(m);
            }
        }
        let last = run.iteration == cfg.iterations;
        if let (Some(samples), true) = (&samples, run.iteration % cfg.sample_every == 0 || last) {
            samples.write(&stylizer, &sample_path(&cfg.out_dir, run.iteration))?;
        }
        interrupted = !last && stop.reached(run.iteration);
        if run.iteration % cfg.save_every == 0 || last || interrupted {
            save_run(&stylizer, &opt, &run, &cfg.out_dir)?;
        }
        if interrupted {
            break;
        }
    }
    pb.finish_and_clear();
    if interrupted {
        stop.report("iteration", run.iteration, &ckpt, opts.show_progress);
    } else if opts.show_progress {
        eprintln!(
            "trained {} iterations; decoder weights in {}",
            run.iteration,
            checkpoint::decoder_path(&cfg.out_dir).display()
        );
    }
    Ok(DecoderTrainSummary {
        iterations: run.iteration,
        history,
        skipped_files: content.skipped.len() + styles.skipped.len(),
        skipped_samples,
        skipped_steps,
        wall_seconds: t_start.elapsed().as_secs_f64(),
        images_per_s: images as f64 / t_train.elapsed().as_secs_f64().max(1e-9),
        interrupted,
    })
}
