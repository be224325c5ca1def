//! `engine pix2pix make-pairs`: pix2pix training data from any folder of photos, for tasks whose
//! input can be computed from the photo (no labels needed). Each photo is resized (shorter side to
//! `size`, Catmull-Rom) and centre-cropped to `size`×`size`: that is B, the target; A, the input, is
//! computed from B by the task:
//! - `gray2color`: the luminance `L = (19595·R + 38470·G + 7471·B + 2^15) >> 16` (ITU-R 601, PIL's
//!   `convert("L")`), repeated in all three channels;
//! - `edges2photo`: dark Sobel edges on white: `A = 255 − round(255 · min(1, |∇L| / 255))`, with the
//!   3×3 Sobel operator on L, borders replicated (a 64-level step is full black);
//! - `blur2sharp`: B blurred with a Gaussian of σ = max(1, size/64) (`image::imageops::blur`).
//!
//! The photos are image files under a folder, or the Fashion-MNIST test split (`PairSource`);
//! `limit` keeps the first N of them.
//!
//! Pairs are written as `<out>/{train,val}/<name>.png`, A left and B right (`2·size`×`size`, the
//! pix2pix "aligned" format); PNG, so A is stored exactly as computed. The split is a seeded shuffle
//! of the sorted source list, `round(n · val_fraction)` images to `val/` (at least one when the
//! fraction is positive and there are two or more photos; training keeps at least one), and
//! `<out>/pairs.json` lists it. The output is a pure function of (photos, task, size, fraction,
//! seed). Every file is written atomically; an `<out>` that already holds pairs is refused unless
//! `force` (which deletes its `train/` and `val/` first).

use super::dataset::decode_rgb;
use crate::data::folder::list_images;
use crate::data::idx::{load_mnist_style, LabelledImages, FASHION_MNIST_CLASSES};
use crate::data::loader::mix_seed;
use crate::nn::state::write_atomic;
use crate::viz::encode_png;
use crate::{Error, Result};
use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What A is, given the photo B.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum PairTask {
    /// A = the photo's luminance (colourisation).
    #[value(name = "gray2color")]
    Gray2Color,
    /// A = Sobel edges of the photo.
    #[value(name = "edges2photo")]
    Edges2Photo,
    /// A = the photo blurred (deblurring).
    #[value(name = "blur2sharp")]
    Blur2Sharp,
}

/// Where the photos (B) come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum PairSource {
    /// Image files under `src`, searched recursively, in sorted order.
    #[default]
    Photos,
    /// The Fashion-MNIST test split (t10k IDX files) in `src`, gray repeated in R, G, B: images
    /// the classifiers trained on the training split have not seen.
    FashionMnist,
}

#[derive(Clone, Debug)]
pub struct MakePairsConfig {
    pub src: PathBuf,
    pub src_format: PairSource,
    /// Use only the first `limit` source images (0 = all).
    pub limit: usize,
    pub out: PathBuf,
    pub task: PairTask,
    pub size: usize,
    pub val_fraction: f64,
    pub seed: u64,
    /// Replace the pairs already in `out`.
    pub force: bool,
}

/// What `make_pairs` wrote: the pair names (file stems) of each split.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PairsSummary {
    pub task: PairTask,
    pub size: usize,
    pub seed: u64,
    pub train: Vec<String>,
    pub val: Vec<String>,
}

/// The luminance of an RGB pixel, exactly as PIL's `convert("L")`.
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((19595 * r as u32 + 38470 * g as u32 + 7471 * b as u32 + 0x8000) >> 16) as u8
}

/// The luminance plane of an image.
fn luma_plane(img: &RgbImage) -> Vec<u8> {
    img.pixels().map(|p| luma(p[0], p[1], p[2])).collect()
}

/// A gray RGB image from a luminance plane.
fn gray_rgb(w: u32, h: u32, plane: Vec<u8>) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        let v = plane[(y * w + x) as usize];
        image::Rgb([v, v, v])
    })
}

/// The photo's shorter side resized to `size` and the centre `size`×`size` kept.
pub fn square_photo(img: &RgbImage, size: usize) -> RgbImage {
    let (w, h) = img.dimensions();
    let side = w.min(h);
    let crop = imageops::crop_imm(img, (w - side) / 2, (h - side) / 2, side, side).to_image();
    if side as usize == size {
        return crop;
    }
    imageops::resize(&crop, size as u32, size as u32, FilterType::CatmullRom)
}

/// The input A that `task` computes from the photo `b`.
pub fn task_input(task: PairTask, b: &RgbImage) -> RgbImage {
    let (w, h) = b.dimensions();
    match task {
        PairTask::Gray2Color => gray_rgb(w, h, luma_plane(b)),
        PairTask::Edges2Photo => {
            let l = luma_plane(b);
            let at = |x: i64, y: i64| {
                let (x, y) = (x.clamp(0, w as i64 - 1), y.clamp(0, h as i64 - 1));
                l[(y * w as i64 + x) as usize] as f32
            };
            let mut edges = vec![0u8; l.len()];
            for y in 0..h as i64 {
                for x in 0..w as i64 {
                    let gx = at(x + 1, y - 1) + 2.0 * at(x + 1, y) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x - 1, y)
                        - at(x - 1, y + 1);
                    let gy = at(x - 1, y + 1) + 2.0 * at(x, y + 1) + at(x + 1, y + 1)
                        - at(x - 1, y - 1)
                        - 2.0 * at(x, y - 1)
                        - at(x + 1, y - 1);
                    let e = ((gx * gx + gy * gy).sqrt() / 255.0).min(1.0);
                    edges[(y * w as i64 + x) as usize] = 255 - (255.0 * e).round() as u8;
                }
            }
            gray_rgb(w, h, edges)
        }
        PairTask::Blur2Sharp => imageops::blur(b, blur_sigma(w as usize)),
    }
}

/// The Gaussian σ of `blur2sharp` at `size` px.
pub fn blur_sigma(size: usize) -> f32 {
    (size as f32 / 64.0).max(1.0)
}

/// A|B side by side.
pub fn join_pair(a: &RgbImage, b: &RgbImage) -> RgbImage {
    let (w, h) = b.dimensions();
    let mut ab = RgbImage::new(2 * w, h);
    imageops::replace(&mut ab, a, 0, 0);
    imageops::replace(&mut ab, b, w as i64, 0);
    ab
}

/// How many of `n` photos go to validation.
pub fn val_count(n: usize, fraction: f64) -> usize {
    if n < 2 || fraction <= 0.0 {
        return 0;
    }
    ((n as f64 * fraction).round() as usize).clamp(1, n - 1)
}

/// A file name for `path` relative to `root`: its sub-folders and stem joined by `_`.
fn pair_name(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path).with_extension("");
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("_")
}

fn has_images(dir: &Path) -> bool {
    let mut found = Vec::new();
    dir.is_dir() && list_images(dir, &mut found).is_ok() && !found.is_empty()
}

/// One source photo: a file, or image `index` of an in-memory array of gray images.
enum Source {
    File(PathBuf),
    Gray(std::sync::Arc<LabelledImages>, usize),
}

impl Source {
    fn name(&self, root: &Path) -> String {
        match self {
            Source::File(p) => pair_name(root, p),
            Source::Gray(_, i) => format!("t10k_{i:05}"),
        }
    }

    fn decode(&self) -> Result<RgbImage> {
        match self {
            Source::File(p) => decode_rgb(p),
            Source::Gray(d, i) => {
                let (w, h) = (d.width, d.height);
                let plane = d.images[i * w * h..(i + 1) * w * h].to_vec();
                Ok(gray_rgb(w as u32, h as u32, plane))
            }
        }
    }
}

/// The source photos of `cfg`, at most `cfg.limit` of them.
fn list_sources(cfg: &MakePairsConfig) -> Result<Vec<Source>> {
    let mut sources: Vec<Source> = match cfg.src_format {
        PairSource::Photos => {
            let mut files = Vec::new();
            list_images(&cfg.src, &mut files)?;
            if files.is_empty() {
                return Err(Error::Msg(format!(
                    "make-pairs: {} has no images (jpg, png, bmp, webp)",
                    cfg.src.display()
                )));
            }
            files.into_iter().map(Source::File).collect()
        }
        PairSource::FashionMnist => {
            let d =
                std::sync::Arc::new(load_mnist_style(&cfg.src, "t10k", &FASHION_MNIST_CLASSES)?);
            (0..d.len()).map(|i| Source::Gray(d.clone(), i)).collect()
        }
    };
    if cfg.limit > 0 {
        sources.truncate(cfg.limit);
    }
    Ok(sources)
}

/// Builds the pairs `cfg` describes; see the module comment.
pub fn make_pairs(cfg: &MakePairsConfig) -> Result<PairsSummary> {
    if !cfg.src.is_dir() {
        return Err(Error::Msg(format!(
            "make-pairs: --src {} is not a folder of photos",
            cfg.src.display()
        )));
    }
    if cfg.size < 8 || !(0.0..1.0).contains(&cfg.val_fraction) {
        return Err(Error::Msg(format!(
            "make-pairs: --size {} must be at least 8 and --val-fraction {} in [0, 1)",
            cfg.size, cfg.val_fraction
        )));
    }
    let sources = list_sources(cfg)?;
    let (train_dir, val_dir) = (cfg.out.join("train"), cfg.out.join("val"));
    if has_images(&train_dir) || has_images(&val_dir) {
        if !cfg.force {
            return Err(Error::Msg(format!(
                "make-pairs: {} already holds pairs; pass --force to replace them",
                cfg.out.display()
            )));
        }
        for d in [&train_dir, &val_dir] {
            if d.exists() {
                std::fs::remove_dir_all(d).map_err(|e| Error::Io {
                    path: d.display().to_string(),
                    source: e,
                })?;
            }
        }
    }
    let mut order: Vec<usize> = (0..sources.len()).collect();
    order.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(mix_seed(&[
        cfg.seed, 0x9a125,
    ])));
    let n_val = val_count(sources.len(), cfg.val_fraction);
    let mut names: Vec<String> = sources.iter().map(|s| s.name(&cfg.src)).collect();
    // Distinct names even when two photos differ only in their extension.
    for i in 0..names.len() {
        if names[..i].contains(&names[i]) {
            names[i] = format!("{}_{i}", names[i]);
        }
    }
    let written: Vec<Result<()>> = order
        .par_iter()
        .enumerate()
        .map(|(rank, &i)| {
            let b = square_photo(&sources[i].decode()?, cfg.size);
            let ab = join_pair(&task_input(cfg.task, &b), &b);
            let dir = if rank < n_val { &val_dir } else { &train_dir };
            let png = encode_png(ab.width() as usize, ab.height() as usize, ab.as_raw())?;
            write_atomic(&dir.join(format!("{}.png", names[i])), &png)
        })
        .collect();
    written.into_iter().collect::<Result<Vec<()>>>()?;
    let split = |range: std::ops::Range<usize>| {
        let mut v: Vec<String> = order[range].iter().map(|&i| names[i].clone()).collect();
        v.sort();
        v
    };
    let summary = PairsSummary {
        task: cfg.task,
        size: cfg.size,
        seed: cfg.seed,
        val: split(0..n_val),
        train: split(n_val..sources.len()),
    };
    write_atomic(
        &cfg.out.join("pairs.json"),
        serde_json::to_string_pretty(&summary)
            .expect("json")
            .as_bytes(),
    )?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luma_matches_pil_and_split_sizes_are_bounded() {
        assert_eq!(luma(255, 255, 255), 255);
        assert_eq!(luma(255, 0, 0), 76); // PIL: Image.new("RGB", (1, 1), (255, 0, 0)).convert("L")
        assert_eq!(luma(0, 255, 0), 150);
        assert_eq!(luma(0, 0, 255), 29);
        assert_eq!(val_count(8, 0.2), 2);
        assert_eq!(val_count(1, 0.5), 0);
        assert_eq!(val_count(3, 0.01), 1);
        assert_eq!(val_count(3, 0.99), 2);
        assert_eq!(val_count(10, 0.0), 0);
    }

    #[test]
    fn edges_are_white_on_flat_regions_and_dark_on_steps() {
        let b = RgbImage::from_fn(8, 8, |x, _| {
            let v = if x < 4 { 0 } else { 200 };
            image::Rgb([v, v, v])
        });
        let a = task_input(PairTask::Edges2Photo, &b);
        assert_eq!(a.get_pixel(0, 3)[0], 255);
        assert_eq!(a.get_pixel(3, 3)[0], 0);
        assert_eq!(a.get_pixel(7, 3)[0], 255);
    }
}
