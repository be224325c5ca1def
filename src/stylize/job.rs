//! The stylize job loop: list the content tree, skip what exists, decode and preprocess ahead of the
//! model on rayon threads, stylize in batches of equal sizes, write each output atomically, append
//! the manifest, report.
//!
//! Invariants:
//! - One producer thread prepares the jobs in chunks (`rayon` inside a chunk) and hands them over
//!   a bounded channel, so decoding runs ahead of the stylizer by at most `PREFETCH_BATCHES`
//!   batches; everything it computes is a function of the job alone (see `files`, `styles`), so
//!   its timing changes no result.
//! - The consumer groups prepared images by (content size, style size) and runs a group when it
//!   holds `batch_size` images (the largest group early when too many images wait); a batch's
//!   outputs are all written (atomically) before its manifest lines, and the stop flag is read only
//!   between batches, so an interrupted run leaves whole outputs listed in the manifest.
//! - Batches are pipelined over the device's queue: batch k is downloaded, batch k+1 queued, and
//!   batch k's outputs encoded and written while the device computes batch k+1. The batch in
//!   flight when the loop ends (a stop, the last group, an error) is still finished, so every
//!   queued batch ends written and listed, and the stop after n batches leaves exactly n.
//! - Content files whose outputs would coincide (`a.jpg` and `a.png`) are kept for the first name
//!   in sorted order; the others are skipped and reported.

use super::files::{list_images, output_rel, ImageFile};
use super::manifest::{write_skipped, Entry, Manifest};
use super::preprocess::{batch_tensor, channels_vary, prepare_content};
use super::styles::StylePool;
use super::{OutputFormat, Skipped, StylizeConfig, StylizeOptions, StylizeReport};
use crate::data::folder::decode_image;
use crate::data::Image;
use crate::models::Stylizer;
use crate::nn::state::write_atomic;
use crate::viz::{encode_png, tensor_to_rgb8, PixelRange, Rgb8};
use crate::{no_grad, DType, Device, Error, Result, Tensor};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::Instant;

/// Batches of prepared images that may wait for the stylizer.
const PREFETCH_BATCHES: usize = 2;

/// Skipped files printed one by one before the rest are only counted (all are in skipped.txt).
const PRINT_SKIPPED: usize = 20;

/// One content image to handle.
enum Job {
    /// Stylize it.
    Stylize { content: ImageFile, out_rel: String },
    /// Its output exists but the manifest lacks its line: list it (its style is recomputed).
    Record { content: ImageFile, out_rel: String },
}

/// A content image ready for the stylizer.
struct Pair {
    rel: String,
    out_rel: String,
    content: Image,
    style: usize,
    style_img: Arc<Image>,
}

impl Pair {
    fn key(&self) -> (usize, usize, usize, usize) {
        (
            self.content.width,
            self.content.height,
            self.style_img.width,
            self.style_img.height,
        )
    }
}

enum Ready {
    Pair(Pair),
    Record {
        rel: String,
        out_rel: String,
        style: usize,
    },
    Bad(Skipped),
}

/// Decodes and preprocesses one content image and draws its style. Errors only when no style is
/// usable; a bad content image is `Ready::Bad`.
fn prepare(job: &Job, cfg: &StylizeConfig, pool: &StylePool) -> Result<Ready> {
    let (content, out_rel) = match job {
        Job::Record { content, out_rel } => {
            let (style, _) = pool.style_for(cfg.seed, &content.rel)?;
            return Ok(Ready::Record {
                rel: content.rel.clone(),
                out_rel: out_rel.clone(),
                style,
            });
        }
        Job::Stylize { content, out_rel } => (content, out_rel),
    };
    let bad = |reason: String| Ok(Ready::Bad(Skipped::new(&content.path, reason)));
    let img = match decode_image(&content.path, 3) {
        Ok(img) => img,
        Err(e) => {
            // The message starts with the path, which `Skipped` holds already.
            let msg = e.to_string();
            let prefix = format!("{}: ", content.path.display());
            return bad(msg.strip_prefix(&prefix).unwrap_or(&msg).to_string());
        }
    };
    if img.width.min(img.height) < cfg.min_side {
        return bad(format!(
            "image too small: {}×{} px, the shorter side must be at least {} px (--min-side)",
            img.width, img.height, cfg.min_side
        ));
    }
    let img = match prepare_content(&img, cfg.content_size, cfg.crop) {
        Ok(img) => img,
        Err(reason) => return bad(reason),
    };
    if cfg.preserve_color && !channels_vary(&img) {
        return bad("a colour channel is constant; --preserve-color cannot use it".into());
    }
    let (style, style_img) = pool.style_for(cfg.seed, &content.rel)?;
    Ok(Ready::Pair(Pair {
        rel: content.rel.clone(),
        out_rel: out_rel.clone(),
        content: img,
        style,
        style_img,
    }))
}

/// The bytes of an output file.
fn encode(format: OutputFormat, img: &Rgb8) -> Result<Vec<u8>> {
    match format {
        OutputFormat::Png => encode_png(img.width, img.height, &img.data),
        OutputFormat::Jpeg(quality) => {
            use image::ImageEncoder;
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
                .write_image(
                    &img.data,
                    img.width as u32,
                    img.height as u32,
                    image::ExtendedColorType::Rgb8,
                )
                .map_err(|e| Error::Msg(format!("encoding a JPEG: {e}")))?;
            Ok(out)
        }
    }
}

/// The stylizer's parameter dtype (its inputs must match).
fn stylizer_dtype(stylizer: &Stylizer) -> DType {
    crate::nn::named_params(&stylizer.encoder)
        .first()
        .map_or(DType::F32, |(_, p)| p.tensor.dtype())
}

/// A batch whose stylized images are queued on the device (maybe still being computed).
struct InFlight {
    items: Vec<Pair>,
    /// `[N, 3, H, W]` f32 on the stylizer's device.
    out: Tensor,
}

/// Queues one batch's stylization (equal sizes) on the device and returns without waiting for it.
fn queue_batch(
    stylizer: &Stylizer,
    cfg: &StylizeConfig,
    dtype: DType,
    device: Device,
    items: Vec<Pair>,
) -> Result<InFlight> {
    let contents: Vec<&Image> = items.iter().map(|p| &p.content).collect();
    let styles: Vec<&Image> = items.iter().map(|p| &*p.style_img).collect();
    let (h, w) = (contents[0].height, contents[0].width);
    let out = no_grad(|| -> Result<Tensor> {
        let c = batch_tensor(&contents, dtype, device)?;
        let s = batch_tensor(&styles, dtype, device)?;
        let mut y = stylizer.stylize(&c, &[(s, 1.0)], cfg.alpha, cfg.preserve_color)?;
        if y.dims()[2] != h {
            y = y.narrow(2, 0, h)?;
        }
        if y.dims()[3] != w {
            y = y.narrow(3, 0, w)?;
        }
        y.to_dtype(DType::F32)
    })?;
    Ok(InFlight { items, out })
}

/// Brings a queued batch back to the host (waiting for the device).
fn download(b: InFlight) -> Result<InFlight> {
    Ok(InFlight {
        out: b.out.to_device(Device::Cpu)?,
        items: b.items,
    })
}

/// Encodes and writes a downloaded batch's outputs (atomically, in parallel), then lists them in
/// the manifest.
fn finish_batch(
    b: InFlight,
    cfg: &StylizeConfig,
    pool: &StylePool,
    listed: &HashMap<String, (String, String)>,
    manifest: &mut Manifest,
) -> Result<usize> {
    b.items
        .par_iter()
        .enumerate()
        .map(|(i, p)| {
            let rgb = tensor_to_rgb8(&b.out, i, PixelRange::ZeroOne)?;
            write_atomic(&cfg.out_dir.join(&p.out_rel), &encode(cfg.format, &rgb)?)
        })
        .collect::<Result<Vec<()>>>()?;
    let entries: Vec<Entry> = b
        .items
        .iter()
        .filter(|p| {
            // Made again with the line it has already: no second line.
            listed
                .get(&p.rel)
                .is_none_or(|(style, output)| style != pool.rel(p.style) || *output != p.out_rel)
        })
        .map(|p| Entry {
            content: &p.rel,
            style: pool.rel(p.style),
            output: &p.out_rel,
            alpha: cfg.alpha,
        })
        .collect();
    manifest.append(&entries)?;
    Ok(b.items.len())
}

fn progress_bar(show: bool) -> indicatif::ProgressBar {
    crate::progress::bar(show, 0, "stylize", "{pos}/{len} {per_sec}")
}

/// Runs the job `cfg` with `stylizer` (on `device`; its dtype sets the inputs'): stylizes every
/// content image whose output does not exist yet. See the module docs of `crate::stylize`.
pub fn run_stylize(
    cfg: &StylizeConfig,
    stylizer: &Stylizer,
    device: Device,
    opts: &StylizeOptions,
) -> Result<StylizeReport> {
    cfg.validate()?;
    let contents = list_images(
        &cfg.content_dir,
        "content",
        "give --content a folder of images, e.g. ImageNet's train/ with its class folders",
    )?;
    let pool = StylePool::open(
        &cfg.styles_dir,
        cfg.style_size,
        cfg.min_side,
        cfg.preserve_color,
    )?;
    std::fs::create_dir_all(&cfg.out_dir).map_err(|e| Error::Io {
        path: cfg.out_dir.display().to_string(),
        source: e,
    })?;
    let (mut manifest, listed) = Manifest::open(&cfg.out_dir, cfg.manifest)?;
    let mut report = StylizeReport {
        contents: contents.len(),
        styles: pool.len(),
        manifest: manifest.path().to_path_buf(),
        ..StylizeReport::default()
    };
    let pb = progress_bar(opts.show_progress);
    // Above the bar when there is one.
    let log = |msg: String| {
        if opts.show_progress {
            pb.println(msg);
        } else {
            eprintln!("{msg}");
        }
    };
    for (i, s) in pool.excluded.iter().enumerate() {
        if i < PRINT_SKIPPED {
            log(format!("warning: style excluded from the draw: {s}"));
        } else {
            log(format!(
                "warning: {} more styles excluded (see skipped.txt)",
                pool.excluded.len() - i
            ));
            break;
        }
    }

    // What to do with each content image.
    let ext = cfg.format.extension();
    let mut owner: HashMap<String, &ImageFile> = HashMap::new();
    let mut jobs = Vec::new();
    let mut to_stylize = 0u64;
    for content in &contents {
        let out_rel = output_rel(&content.rel, ext);
        if let Some(first) = owner.get(&out_rel) {
            report.skipped_bad.push(Skipped::new(
                &content.path,
                format!(
                    "its output {out_rel} would also be that of {}; rename one of them",
                    first.rel
                ),
            ));
            continue;
        }
        owner.insert(out_rel.clone(), content);
        let content = content.clone();
        if cfg.out_dir.join(&out_rel).exists() {
            report.skipped_existing += 1;
            if !listed.contains_key(&content.rel) {
                jobs.push(Job::Record { content, out_rel });
            }
        } else {
            to_stylize += 1;
            jobs.push(Job::Stylize { content, out_rel });
        }
    }
    for s in &report.skipped_bad {
        log(format!("skipped {s}"));
    }

    pb.set_length(to_stylize);
    let dtype = stylizer_dtype(stylizer);
    let bs = cfg.batch_size;
    let t_loop = Instant::now();
    let mut batches = 0usize;
    // Jobs skipped or listed (the stylized ones are `report.done`): with a stop, the run is
    // interrupted only if some jobs remain.
    let mut handled = 0usize;
    let result = std::thread::scope(|scope| -> Result<bool> {
        let (tx, rx) = mpsc::sync_channel::<Result<Ready>>(bs * PREFETCH_BATCHES);
        let (pool, jobs, listed) = (&pool, &jobs, &listed);
        scope.spawn(move || {
            let chunk = bs.max(rayon::current_num_threads());
            for part in jobs.chunks(chunk) {
                let ready: Vec<Result<Ready>> =
                    part.par_iter().map(|j| prepare(j, cfg, pool)).collect();
                for r in ready {
                    if tx.send(r).is_err() {
                        return; // the consumer stopped
                    }
                }
            }
        });
        // Pipelined over the device's one queue: batch k comes back (the device is then idle),
        // batch k+1 is queued, and batch k's outputs are encoded and written while the device
        // stylizes batch k+1. The stop flag is read after a batch is queued, and the batch in
        // flight when the loop ends is finished below, so every queued batch ends written and
        // listed.
        let mut in_flight: Option<InFlight> = None;
        let outcome = (|| -> Result<bool> {
            let mut groups: BTreeMap<(usize, usize, usize, usize), Vec<Pair>> = BTreeMap::new();
            let mut waiting = 0usize;
            let mut run = |items: Vec<Pair>,
                           in_flight: &mut Option<InFlight>,
                           report: &mut StylizeReport,
                           manifest: &mut Manifest|
             -> Result<bool> {
                let prev = in_flight.take().map(download).transpose()?;
                let queued = queue_batch(stylizer, cfg, dtype, device, items);
                if let Some(b) = prev {
                    let n = finish_batch(b, cfg, pool, listed, manifest)?;
                    report.done += n;
                    pb.inc(n as u64);
                }
                *in_flight = Some(queued?);
                batches += 1;
                Ok(opts.stop.is_some_and(|s| s.load(Ordering::SeqCst))
                    || opts.stop_after_batches.is_some_and(|n| batches >= n))
            };
            for ready in rx.iter() {
                let ready = ready?;
                if !matches!(ready, Ready::Pair(_)) {
                    handled += 1;
                }
                match ready {
                    Ready::Bad(s) => {
                        log(format!("skipped {s}"));
                        report.skipped_bad.push(s);
                        pb.inc(1);
                        pb.set_message(format!("{} skipped", report.skipped_bad.len()));
                    }
                    Ready::Record {
                        rel,
                        out_rel,
                        style,
                    } => {
                        manifest.append(&[Entry {
                            content: &rel,
                            style: pool.rel(style),
                            output: &out_rel,
                            alpha: cfg.alpha,
                        }])?;
                        report.recorded += 1;
                    }
                    Ready::Pair(p) => {
                        let group = groups.entry(p.key()).or_default();
                        group.push(p);
                        waiting += 1;
                        let full = if group.len() == bs {
                            Some(std::mem::take(group))
                        } else if waiting > bs * 4 {
                            // Many sizes: run the largest group rather than hold everything.
                            groups
                                .values_mut()
                                .max_by_key(|g| g.len())
                                .map(std::mem::take)
                        } else {
                            None
                        };
                        if let Some(items) = full {
                            waiting -= items.len();
                            if run(items, &mut in_flight, &mut report, &mut manifest)? {
                                return Ok(true);
                            }
                        }
                    }
                }
            }
            for (_, items) in std::mem::take(&mut groups) {
                if items.is_empty() {
                    continue;
                }
                if run(items, &mut in_flight, &mut report, &mut manifest)? {
                    return Ok(true);
                }
            }
            Ok(false)
        })();
        // The last batch queued (after an error too: its outputs are good).
        let last = in_flight.take().map(|b| -> Result<()> {
            let n = finish_batch(download(b)?, cfg, pool, listed, &mut manifest)?;
            report.done += n;
            pb.inc(n as u64);
            Ok(())
        });
        let stopped = outcome?;
        last.transpose()?;
        Ok(stopped)
    });
    pb.finish_and_clear();
    report.seconds = t_loop.elapsed().as_secs_f64();
    report.images_per_s = report.done as f64 / report.seconds.max(1e-9);
    report.excluded_styles = pool.excluded.clone();
    report.excluded_styles.extend(pool.failed_later());
    let listing: Vec<&Skipped> = report
        .skipped_bad
        .iter()
        .chain(&report.excluded_styles)
        .collect();
    report.skipped_file = write_skipped(&cfg.out_dir, &listing)?;
    report.interrupted = result? && report.done + handled < jobs.len();
    manifest.summary(&report, cfg)?;
    Ok(report)
}
