//! A stylized copy of an IDX image dataset (Fashion-MNIST): every image of each split re-painted by
//! the AdaIN `Stylizer` in the style of one image drawn from a style folder, brought back to the
//! dataset's own size and grey levels, and written as IDX files beside copies of the labels, so
//! `engine train --data OUT` trains on it as on the original (the Stylized-ImageNet recipe at the
//! size of this data). `engine stylize-idx` is the command.
//!
//! Pipeline of one image: grey `h`×`w` → RGB → bilinear (antialiased) resize to `size`² → AdaIN at
//! α with its style (the style's central square resized to `size`², `StylePool`) → the mean of
//! R, G, B → antialiased resize back to `h`×`w` → `u8`.
//!
//! Invariants:
//! - Deterministic: image `i` of split `s` takes the style `StylePool::style_for(seed, "s/i")`
//!   draws, a function of (seed, split, index, usable style files) only, so batch size, chunking
//!   and resuming change no style; on the CPU they change no pixel either (the CPU convolutions
//!   give the same bits for an image alone or in a batch).
//! - Resumable and crash-safe: work is kept in chunks of `chunk` images under `OUT/.partial/`,
//!   each written atomically when whole; a rerun skips the chunks that exist (with the right size)
//!   and the stop flag is read between batches, so an interruption loses at most one chunk. A
//!   split's IDX files, written atomically, appear only when every chunk of it exists; the chunks
//!   are then removed. `OUT/stylize-idx.json` holds what decides the pixels (`job_settings`: the
//!   settings, the style files' names and sizes, the weight files' sizes and hashes, the device and
//!   precision); a rerun that differs in any of them is refused with the differences named, and so
//!   is a folder with outputs but no settings file, instead of mixing two stylizations or passing
//!   other files off as this one's.
//! - `OUT/<split>-styles.txt` lists the style of every image, one line per index.

use super::preprocess::{batch_tensor, resize};
use super::styles::StylePool;
use crate::data::idx::{encode_idx, find_split_file, read_idx};
use crate::data::Image;
use crate::models::Stylizer;
use crate::nn::state::write_atomic;
use crate::viz::{tensor_to_rgb8, PixelRange};
use crate::{no_grad, DType, Device, Error, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// A stylization job (what decides its pixels is saved from it by `job_settings`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdxStylizeConfig {
    /// Folder with `<split>-images-idx3-ubyte[.gz]` and `<split>-labels-idx1-ubyte[.gz]`.
    pub data_dir: PathBuf,
    /// Style images (recursively).
    pub styles_dir: PathBuf,
    /// Where the stylized IDX files go.
    pub out_dir: PathBuf,
    /// Splits to stylize, e.g. `train` and `t10k`.
    pub splits: Vec<String>,
    /// Side of the square the stylizer works on (a multiple of 8, at least 16).
    pub size: usize,
    /// AdaIN α in [0, 1].
    pub alpha: f64,
    /// Seeds the style draw.
    pub seed: u64,
    /// Only the first `limit` images of each split (for smoke runs).
    pub limit: Option<usize>,
    /// Images per saved chunk.
    pub chunk: usize,
    /// Identifies the stylizer's weights (the files' sizes and hashes, or the random width and
    /// seed), so a resume uses the same.
    pub weights: String,
}

/// How a job runs (changes no output).
#[derive(Default)]
pub struct IdxStylizeOptions<'a> {
    pub batch_size: usize,
    pub show_progress: bool,
    /// Set (by Ctrl-C) to stop after the current batch.
    pub stop: Option<&'a AtomicBool>,
    /// Stop after this many chunks were written by this run (tests of resuming).
    pub stop_after_chunks: Option<usize>,
}

/// What a run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct IdxStylizeReport {
    /// Images stylized by this run.
    pub stylized: usize,
    /// Images found already done in chunks of an earlier run.
    pub resumed: usize,
    /// Splits whose IDX files are complete.
    pub finished_splits: Vec<String>,
    pub interrupted: bool,
    /// After an interruption: the images saved in chunks, which a rerun keeps.
    pub kept_in_chunks: usize,
    pub seconds: f64,
    pub images_per_s: f64,
    /// Style images in the draw, and those left out (at startup, or when they failed to decode).
    pub styles: usize,
    pub excluded_styles: usize,
}

impl IdxStylizeConfig {
    /// Checks the settings before anything is read, with errors that say what to do.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Msg(m));
        if self.size < 16 || self.size % 8 != 0 {
            return bad(format!(
                "--size must be a multiple of 8 and at least 16 (the encoder pools three times), \
                 got {}",
                self.size
            ));
        }
        if !(0.0..=1.0).contains(&self.alpha) {
            return bad(format!("--alpha must be in [0, 1], got {}", self.alpha));
        }
        if self.chunk == 0 {
            return bad("the chunk size must be at least 1".into());
        }
        if self.splits.is_empty() {
            return bad("no split to stylize (--splits train,t10k)".into());
        }
        for (i, s) in self.splits.iter().enumerate() {
            if self.splits[..i].contains(s) {
                return bad(format!("split {s} is named twice in --splits"));
            }
            if s.is_empty() || s.contains(['/', '\\']) {
                return bad(format!(
                    "--splits: {s:?} is not a split name such as train or t10k"
                ));
            }
        }
        if self.limit == Some(0) {
            return bad("--limit must be at least 1".into());
        }
        if !self.styles_dir.is_dir() {
            return bad(format!(
                "style folder {} does not exist or is not a folder; --styles takes a folder of \
                 style images (scripts/setup.sh install_style_textures installs real textures in \
                 .toolchain/styles/gimp-patterns)",
                self.styles_dir.display()
            ));
        }
        if let (Ok(a), Ok(b)) = (self.data_dir.canonicalize(), self.out_dir.canonicalize()) {
            if a == b {
                return bad(format!(
                    "--out {} is the data folder itself: the stylized files would replace the \
                     originals; choose another folder",
                    self.out_dir.display()
                ));
            }
        }
        Ok(())
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// One split's images and labels, checked against each other.
struct Split {
    name: String,
    images: Vec<u8>,
    labels: Vec<u8>,
    height: usize,
    width: usize,
}

impl Split {
    fn load(dir: &Path, name: &str, limit: Option<usize>) -> Result<Split> {
        let images = read_idx(&find_split_file(dir, name, "images-idx3-ubyte")?)?;
        let labels = read_idx(&find_split_file(dir, name, "labels-idx1-ubyte")?)?;
        if images.dims.len() != 3 || labels.dims.len() != 1 || images.dims[0] != labels.dims[0] {
            return Err(Error::Msg(format!(
                "{}: split {name}: image dims {:?} do not match label dims {:?}",
                dir.display(),
                images.dims,
                labels.dims
            )));
        }
        let (mut n, h, w) = (images.dims[0], images.dims[1], images.dims[2]);
        if let Some(l) = limit {
            n = n.min(l);
        }
        Ok(Split {
            name: name.to_string(),
            images: images.data[..n * h * w].to_vec(),
            labels: labels.data[..n].to_vec(),
            height: h,
            width: w,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn image(&self, i: usize) -> &[u8] {
        let p = self.height * self.width;
        &self.images[i * p..(i + 1) * p]
    }
}

/// The name the style draw uses for image `index` of `split`.
fn draw_name(split: &str, index: usize) -> String {
    format!("{split}/{index}")
}

/// The settings file in the output folder.
pub const JOB_FILE: &str = "stylize-idx.json";

fn chunk_path(partial: &Path, split: &str, k: usize) -> PathBuf {
    partial.join(format!("{split}-{k:05}.bin"))
}

/// A grey `w`×`h` image as RGB resized to `size`².
fn content_rgb(grey: &[u8], w: usize, h: usize, size: usize) -> Image {
    let img = Image {
        width: w,
        height: h,
        channels: 3,
        data: grey.iter().flat_map(|&v| [v; 3]).collect(),
    };
    resize(&img, size, size)
}

/// The stylizer's RGB output for one image, as grey `w`×`h` bytes.
fn to_grey(rgb: &crate::viz::Rgb8, w: usize, h: usize) -> Result<Vec<u8>> {
    let grey: Vec<u8> = rgb
        .data
        .chunks(3)
        .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32 + 1) / 3) as u8)
        .collect();
    let img = image::GrayImage::from_raw(rgb.width as u32, rgb.height as u32, grey)
        .ok_or_else(|| Error::Msg("stylizer output of an unexpected size".into()))?;
    if (rgb.width, rgb.height) == (w, h) {
        return Ok(img.into_raw());
    }
    Ok(image::imageops::resize(
        &img,
        w as u32,
        h as u32,
        image::imageops::FilterType::Triangle,
    )
    .into_raw())
}

/// Stylizes images `range` of `split`; returns their grey bytes, in order.
fn stylize_range(
    cfg: &IdxStylizeConfig,
    split: &Split,
    range: std::ops::Range<usize>,
    styles: &StylePool,
    stylizer: &Stylizer,
    dtype: DType,
    device: Device,
) -> Result<Vec<u8>> {
    let (w, h, s) = (split.width, split.height, cfg.size);
    let mut contents = Vec::with_capacity(range.len());
    let mut style_imgs = Vec::with_capacity(range.len());
    for i in range.clone() {
        contents.push(content_rgb(split.image(i), w, h, s));
        style_imgs.push(styles.style_for(cfg.seed, &draw_name(&split.name, i))?.1);
    }
    let content = batch_tensor(&contents.iter().collect::<Vec<_>>(), dtype, device)?;
    let style = batch_tensor(
        &style_imgs.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
        dtype,
        device,
    )?;
    let out = no_grad(|| stylizer.stylize(&content, &[(style, 1.0)], cfg.alpha, false))?
        .to_dtype(DType::F32)?;
    let mut bytes = Vec::with_capacity(range.len() * w * h);
    for k in 0..range.len() {
        let rgb = tensor_to_rgb8(&out, k, PixelRange::ZeroOne)?;
        bytes.extend(to_grey(&rgb, w, h)?);
    }
    Ok(bytes)
}

/// What decides the pixels, as saved in `OUT/stylize-idx.json`: the settings of `cfg` except the
/// output folder and the split list (each split's pixels do not depend on the others), the folders
/// made absolute, the usable style files (`StylePool::fingerprint`) and where the stylizer runs.
fn job_settings(cfg: &IdxStylizeConfig, styles: &StylePool, compute: &str) -> serde_json::Value {
    let absolute = |p: &Path| {
        p.canonicalize()
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    serde_json::json!({
        "data_dir": absolute(&cfg.data_dir),
        "styles_dir": absolute(&cfg.styles_dir),
        "style_files": styles.fingerprint(),
        "size": cfg.size,
        "alpha": cfg.alpha,
        "seed": cfg.seed,
        "limit": cfg.limit,
        "chunk": cfg.chunk,
        "weights": cfg.weights,
        "compute": compute,
    })
}

/// Whatever of a stylization `out` already holds for `splits` (finished files or chunks).
fn existing_outputs(out: &Path, splits: &[String]) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = splits
        .iter()
        .flat_map(|s| {
            ["images-idx3-ubyte", "labels-idx1-ubyte", "styles.txt"]
                .map(|stem| out.join(format!("{s}-{stem}")))
        })
        .filter(|p| p.exists())
        .collect();
    let partial = out.join(".partial");
    if partial.exists() {
        found.push(partial);
    }
    found
}

/// Settings written before weights were identified by content named the two files (`VGG +
/// DECODER`). Where both still exist, that entry is replaced by their content identity, so a set
/// made from the same files is recognised; returns whether it was. Files that are gone or changed
/// leave a difference that `check_job` reports.
fn upgrade_path_weights(theirs: &mut serde_json::Value) -> bool {
    let Some(old) = theirs.get("weights").and_then(|w| w.as_str()) else {
        return false;
    };
    if old.starts_with("encoder ") || old.starts_with("random width ") {
        return false;
    }
    let Some((vgg, decoder)) = old.split_once(" + ") else {
        return false;
    };
    let Ok(id) = super::weights::pair_identity(Path::new(vgg), Path::new(decoder)) else {
        return false;
    };
    theirs["weights"] = serde_json::Value::String(id);
    true
}

/// Compares `mine` with `OUT/stylize-idx.json`. Returns whether the file exists; a folder with
/// outputs but no settings file is refused (they could be anything).
fn check_job(cfg: &IdxStylizeConfig, mine: &serde_json::Value) -> Result<bool> {
    let path = cfg.out_dir.join(JOB_FILE);
    let saved = match std::fs::read_to_string(&path) {
        Ok(saved) => saved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let found = existing_outputs(&cfg.out_dir, &cfg.splits);
            if let Some(first) = found.first() {
                return Err(Error::Msg(format!(
                    "{} holds {} but no {JOB_FILE}, so what made it is unknown; choose another \
                     --out, or delete those files to start over",
                    cfg.out_dir.display(),
                    first.display()
                )));
            }
            return Ok(false);
        }
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut theirs: serde_json::Value = serde_json::from_str(&saved).map_err(|e| {
        Error::Msg(format!(
            "{}: unreadable ({e}); delete the folder {} to start over",
            path.display(),
            cfg.out_dir.display()
        ))
    })?;
    let upgraded = upgrade_path_weights(&mut theirs);
    let fields = mine.as_object().expect("settings are an object");
    let differ: Vec<String> = fields
        .iter()
        .filter(|(k, v)| theirs.get(k.as_str()) != Some(v))
        .map(|(k, v)| {
            let was = theirs
                .get(k.as_str())
                .map_or("(missing)".to_string(), |t| t.to_string());
            format!("{k}: {was} there, {v} now")
        })
        .collect();
    if differ.is_empty() {
        if upgraded {
            let text = serde_json::to_string_pretty(&theirs).expect("settings serialise");
            write_atomic(&path, text.as_bytes())?;
            eprintln!(
                "{}: the weights were recorded by path (an older engine); the same files' sizes \
                 and hashes are recorded now",
                path.display()
            );
        }
        return Ok(true);
    }
    Err(Error::Msg(format!(
        "{} holds a stylization made with other settings ({}); rerun with those, or choose \
         another --out (or delete that folder) to start over",
        cfg.out_dir.display(),
        differ.join("; ")
    )))
}

/// The IDX files of a finished split exist.
fn split_done(out: &Path, split: &str) -> bool {
    ["images-idx3-ubyte", "labels-idx1-ubyte"]
        .iter()
        .all(|stem| out.join(format!("{split}-{stem}")).is_file())
        && out.join(format!("{split}-styles.txt")).is_file()
}

/// Runs the job: stylizes every split of `cfg` that is not finished, resuming from chunks.
pub fn stylize_idx(
    cfg: &IdxStylizeConfig,
    stylizer: &Stylizer,
    dtype: DType,
    device: Device,
    opts: &IdxStylizeOptions,
) -> Result<IdxStylizeReport> {
    cfg.validate()?;
    let start = Instant::now();
    let styles = StylePool::open(&cfg.styles_dir, cfg.size, 16, false)?;
    let compute = format!("{} {dtype}", if device.is_cpu() { "cpu" } else { "cuda" });
    let settings = job_settings(cfg, &styles, &compute);
    let mut report = IdxStylizeReport {
        styles: styles.len(),
        excluded_styles: styles.excluded.len(),
        ..Default::default()
    };
    for s in &styles.excluded {
        eprintln!("style left out: {s}");
    }
    let out = &cfg.out_dir;
    let partial = out.join(".partial");
    let saved = check_job(cfg, &settings)?;
    let (done, todo): (Vec<&String>, Vec<&String>) =
        cfg.splits.iter().partition(|s| split_done(out, s));
    report.finished_splits.extend(done.into_iter().cloned());
    if todo.is_empty() {
        // A crash after the last split was joined leaves its emptied chunk folder.
        remove_partial(&partial)?;
        return Ok(report);
    }
    // The data is read before anything is written, so a wrong --data leaves no trace.
    let splits: Vec<Split> = todo
        .iter()
        .map(|s| Split::load(&cfg.data_dir, s, cfg.limit))
        .collect::<Result<_>>()?;
    if !saved {
        std::fs::create_dir_all(out).map_err(io_err(out))?;
        let text = serde_json::to_string_pretty(&settings).expect("settings serialise");
        write_atomic(&out.join(JOB_FILE), text.as_bytes())?;
    }
    std::fs::create_dir_all(&partial).map_err(io_err(&partial))?;
    let total: usize = splits.iter().map(Split::len).sum();
    let pb = crate::progress::bar(
        opts.show_progress,
        total as u64,
        "stylize-idx",
        "{pos}/{len} {per_sec}",
    );
    let batch = opts.batch_size.max(1);
    let mut chunks_written = 0;
    'splits: for split in &splits {
        let n = split.len();
        let chunks = n.div_ceil(cfg.chunk);
        for k in 0..chunks {
            let range = k * cfg.chunk..((k + 1) * cfg.chunk).min(n);
            let path = chunk_path(&partial, &split.name, k);
            let want = range.len() * split.width * split.height;
            if std::fs::metadata(&path).is_ok_and(|m| m.len() as usize == want) {
                report.resumed += range.len();
                pb.inc(range.len() as u64);
                continue;
            }
            let mut bytes = Vec::with_capacity(want);
            let mut i = range.start;
            while i < range.end {
                if let Some(flag) = opts.stop.filter(|f| f.load(Ordering::Relaxed)) {
                    // Honoured: cleared, so a later job in this process is not stopped by it.
                    flag.store(false, Ordering::Relaxed);
                    report.interrupted = true;
                    break 'splits;
                }
                let j = (i + batch).min(range.end);
                let b = stylize_range(cfg, split, i..j, &styles, stylizer, dtype, device)?;
                bytes.extend(b);
                report.stylized += j - i;
                pb.inc((j - i) as u64);
                i = j;
            }
            write_atomic(&path, &bytes)?;
            chunks_written += 1;
            if opts.stop_after_chunks.is_some_and(|m| chunks_written >= m) {
                report.interrupted = true;
                break 'splits;
            }
        }
        finish_split(cfg, split, &partial, chunks, &styles)?;
        report.finished_splits.push(split.name.clone());
        pb.set_message(format!("{} done", split.name));
    }
    pb.finish_and_clear();
    if report.interrupted {
        report.kept_in_chunks = splits
            .iter()
            .map(|sp| {
                (0..sp.len().div_ceil(cfg.chunk))
                    .filter_map(|k| std::fs::metadata(chunk_path(&partial, &sp.name, k)).ok())
                    .map(|m| m.len() as usize / (sp.height * sp.width))
                    .sum::<usize>()
            })
            .sum();
    } else if cfg.splits.iter().all(|s| split_done(out, s)) {
        remove_partial(&partial)?;
    }
    // A style that passed the header check but failed to decode was left out of the draw (its
    // images took their next draw); say which.
    for s in styles.failed_later() {
        eprintln!("style left out: {s}");
    }
    report.excluded_styles += styles.failed_later().len();
    report.seconds = start.elapsed().as_secs_f64();
    report.images_per_s = report.stylized as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// Removes the chunk folder when it exists.
fn remove_partial(partial: &Path) -> Result<()> {
    match std::fs::remove_dir_all(partial) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err(partial)(e)),
        _ => Ok(()),
    }
}

/// Joins a split's chunks into its IDX files (images, labels, style list), then removes them.
fn finish_split(
    cfg: &IdxStylizeConfig,
    split: &Split,
    partial: &Path,
    chunks: usize,
    styles: &StylePool,
) -> Result<()> {
    let (n, h, w) = (split.len(), split.height, split.width);
    let mut images = Vec::with_capacity(n * h * w);
    for k in 0..chunks {
        let path = chunk_path(partial, &split.name, k);
        images.extend(std::fs::read(&path).map_err(io_err(&path))?);
    }
    if images.len() != n * h * w {
        return Err(Error::Msg(format!(
            "{}: the chunks of split {} hold {} bytes, expected {}; delete the folder to start \
             over",
            partial.display(),
            split.name,
            images.len(),
            n * h * w
        )));
    }
    let mut list = String::new();
    for i in 0..n {
        let (si, _) = styles.style_for(cfg.seed, &draw_name(&split.name, i))?;
        list.push_str(styles.rel(si));
        list.push('\n');
    }
    let out = &cfg.out_dir;
    let name = |stem: &str| out.join(format!("{}-{stem}", split.name));
    write_atomic(&name("labels-idx1-ubyte"), &encode_idx(&[n], &split.labels))?;
    write_atomic(&name("styles.txt"), list.as_bytes())?;
    // The images last: `split_done` needs all three, and a training run needs the images.
    write_atomic(&name("images-idx3-ubyte"), &encode_idx(&[n, h, w], &images))?;
    for k in 0..chunks {
        let path = chunk_path(partial, &split.name, k);
        std::fs::remove_file(&path).map_err(io_err(&path))?;
    }
    Ok(())
}
