//! Paired images in pix2pix's "aligned" format: `<root>/<split>/*.{png,jpg,…}`, each image A|B side
//! by side (width = 2 × height), and the batches training and evaluation draw from them.
//!
//! Preprocessing (the reference's `resize_and_crop` + flip, identical for input and target):
//! - training (`jitter`): both halves resized to `load_size`² (Catmull-Rom, as PIL's bicubic), one
//!   random `size`² crop position and one coin flip for a horizontal mirror, shared by the halves;
//! - evaluation: both halves resized to `size`², no crop, no flip;
//! - values `v/127.5 − 1` in [-1, 1]; a half with 1 channel is the luminance (`pairs::luma`).
//!
//! Invariants: opening a split checks every file's dimensions (header only) and refuses missing or
//! empty folders and images that are not 2:1, naming them; a training batch is a pure function of
//! (seed, epoch, batch index) — the epoch's order is a seeded shuffle, each sample's crop and flip
//! come from (seed, epoch, sample index) — so a resumed run sees exactly the batches of an
//! uninterrupted one, whatever the thread count.

use super::config::Direction;
use super::pairs::luma;
use crate::data::folder::{decode_image, list_images};
use crate::data::loader::mix_seed;
use crate::{Device, Error, Result, Tensor};
use image::imageops::{self, FilterType};
use image::RgbImage;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The image files of one split of a paired dataset.
#[derive(Clone, Debug)]
pub struct PairedFolder {
    pub dir: PathBuf,
    files: Vec<PathBuf>,
    pub direction: Direction,
}

/// One preprocessed pair: input and target, f32 CHW in [-1, 1].
#[derive(Clone, Debug)]
pub struct PairSample {
    pub input: Vec<f32>,
    pub target: Vec<f32>,
}

/// How samples are prepared: channels, size and (for training) the jitter.
#[derive(Clone, Copy, Debug)]
pub struct PairTransform {
    pub input_nc: usize,
    pub output_nc: usize,
    pub size: usize,
    /// `Some(load_size)` for the random resize-and-crop of training, None for evaluation.
    pub jitter: Option<usize>,
    pub flip: bool,
}

impl PairedFolder {
    /// Lists `<root>/<split>` and checks that every image is a 2:1 pair.
    pub fn open(root: &Path, split: &str, direction: Direction) -> Result<PairedFolder> {
        if !root.is_dir() {
            return Err(Error::Msg(format!(
                "pix2pix data folder {} does not exist (expected {}/train and {}/val of A|B pair \
                 images; `engine pix2pix make-pairs` builds them from photos)",
                root.display(),
                root.display(),
                root.display()
            )));
        }
        let dir = root.join(split);
        if !dir.is_dir() {
            return Err(Error::Msg(format!(
                "pix2pix data folder {} has no {split}/ folder of A|B pair images",
                root.display()
            )));
        }
        let mut files = Vec::new();
        list_images(&dir, &mut files)?;
        if files.is_empty() {
            return Err(Error::Msg(format!(
                "{} has no images (looked for jpg, png, bmp, webp)",
                dir.display()
            )));
        }
        let bad: Vec<String> = files
            .par_iter()
            .filter_map(|f| match image_dimensions(f) {
                Ok((w, h)) if w == 2 * h && h > 0 => None,
                Ok((w, h)) => Some(format!("{} is {w}×{h}", f.display())),
                Err(e) => Some(e.to_string()),
            })
            .collect();
        if !bad.is_empty() {
            return Err(Error::Msg(format!(
                "{} of {} images in {} are not A|B pairs, which are twice as wide as high: {}{}",
                bad.len(),
                files.len(),
                dir.display(),
                bad[..bad.len().min(5)].join("; "),
                if bad.len() > 5 { "; …" } else { "" }
            )));
        }
        Ok(PairedFolder {
            dir,
            files,
            direction,
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn path(&self, index: usize) -> &Path {
        &self.files[index]
    }

    /// The file stem of pair `index` (names per-image outputs).
    pub fn name(&self, index: usize) -> String {
        self.files[index]
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("{index}"))
    }

    /// Decodes pair `index` into (input, target) halves, by `direction`.
    pub fn load(&self, index: usize) -> Result<(RgbImage, RgbImage)> {
        let img = decode_rgb(&self.files[index])?;
        let (w, h) = img.dimensions();
        let half = w / 2;
        let a = imageops::crop_imm(&img, 0, 0, half, h).to_image();
        let b = imageops::crop_imm(&img, half, 0, half, h).to_image();
        Ok(match self.direction {
            Direction::AtoB => (a, b),
            Direction::BtoA => (b, a),
        })
    }

    /// Pair `index` preprocessed by `t`, random choices drawn from `rng` (unused without jitter).
    pub fn sample(
        &self,
        index: usize,
        t: &PairTransform,
        rng: &mut impl Rng,
    ) -> Result<PairSample> {
        let (a, b) = self.load(index)?;
        let (load, crop) = match t.jitter {
            Some(load) => {
                let m = load - t.size;
                (load, (rng.random_range(0..=m), rng.random_range(0..=m)))
            }
            None => (t.size, (0, 0)),
        };
        let flip = t.jitter.is_some() && t.flip && rng.random_bool(0.5);
        let prep = |img: &RgbImage, nc: usize| {
            let resized;
            let img = if img.dimensions() == (load as u32, load as u32) {
                img
            } else {
                resized = imageops::resize(img, load as u32, load as u32, FilterType::CatmullRom);
                &resized
            };
            to_chw(img, crop, t.size, flip, nc)
        };
        Ok(PairSample {
            input: prep(&a, t.input_nc),
            target: prep(&b, t.output_nc),
        })
    }
}

/// An image file decoded to RGB (errors name the file).
pub fn decode_rgb(path: &Path) -> Result<RgbImage> {
    let img = decode_image(path, 3)?;
    Ok(
        RgbImage::from_raw(img.width as u32, img.height as u32, img.data)
            .expect("decode_image returns width·height·3 bytes"),
    )
}

/// Width and height of an image file from its header.
fn image_dimensions(path: &Path) -> Result<(u32, u32)> {
    image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?
        .into_dimensions()
        .map_err(|e| Error::Msg(format!("{}: unreadable image: {e}", path.display())))
}

/// The `size`² window at `crop` of `img`, optionally mirrored, as CHW in [-1, 1] with `nc`
/// channels (1: luminance).
fn to_chw(img: &RgbImage, crop: (usize, usize), size: usize, flip: bool, nc: usize) -> Vec<f32> {
    let plane = size * size;
    let mut out = vec![0.0f32; nc * plane];
    let norm = |v: u8| v as f32 / 127.5 - 1.0;
    for y in 0..size {
        for x in 0..size {
            let sx = crop.0 + if flip { size - 1 - x } else { x };
            let p = img.get_pixel(sx as u32, (crop.1 + y) as u32);
            let i = y * size + x;
            if nc == 1 {
                out[i] = norm(luma(p[0], p[1], p[2]));
            } else {
                for c in 0..3 {
                    out[c * plane + i] = norm(p[c]);
                }
            }
        }
    }
    out
}

/// A batch of pairs as `[N, C, H, W]` tensors on the training device.
pub struct PairBatch {
    pub input: Tensor,
    pub target: Tensor,
    /// Index of the batch within its epoch.
    pub index: usize,
}

/// Stacks samples into input and target tensors on `device`; `step_input`: a training batch,
/// uploaded through the copy stream (`Tensor::to_device_input`), else a plain upload (evaluation,
/// samples), which holds no copy-stream slot on the device.
pub fn stack(
    samples: &[PairSample],
    t: &PairTransform,
    device: Device,
    step_input: bool,
) -> Result<(Tensor, Tensor)> {
    let n = samples.len();
    let s = t.size;
    let input: Vec<f32> = samples
        .iter()
        .flat_map(|p| p.input.iter().copied())
        .collect();
    let target: Vec<f32> = samples
        .iter()
        .flat_map(|p| p.target.iter().copied())
        .collect();
    let upload = |v: Vec<f32>, c: usize| -> Result<Tensor> {
        let h = Tensor::from_vec(v, [n, c, s, s], Device::Cpu)?;
        match step_input {
            true => h.to_device_input(device),
            false => h.to_device(device),
        }
    };
    Ok((upload(input, t.input_nc)?, upload(target, t.output_nc)?))
}

/// Seeded, jittered training batches. An epoch is `len / batch_size` full batches (at least one):
/// unlike the reference's loader, a last incomplete batch is dropped, so BN statistics are always
/// over `batch_size` images; with pix2pix's default batch 1 nothing is dropped.
pub struct PairLoader {
    pub data: PairedFolder,
    pub transform: PairTransform,
    pub batch_size: usize,
    pub seed: u64,
}

impl PairLoader {
    pub fn batches_per_epoch(&self) -> usize {
        (self.data.len() / self.batch_size).max(1)
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.data.len()).collect();
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
            self.seed,
            epoch as u64,
            0x7a1,
        ])));
        idx
    }

    /// Batch `b` of `epoch` (samples decoded in parallel), on `device`.
    pub fn batch(
        &self,
        epoch: usize,
        order: &[usize],
        b: usize,
        device: Device,
    ) -> Result<PairBatch> {
        let start = (b * self.batch_size).min(order.len());
        let end = (start + self.batch_size).min(order.len());
        let samples: Vec<PairSample> = order[start..end]
            .par_iter()
            .map(|&i| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[
                    self.seed,
                    epoch as u64,
                    i as u64,
                    0x7a2,
                ]));
                self.data.sample(i, &self.transform, &mut rng)
            })
            .collect::<Result<_>>()?;
        let (input, target) = stack(&samples, &self.transform, device, true)?;
        Ok(PairBatch {
            input,
            target,
            index: b,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_and_flip_are_shared_and_values_are_in_range() {
        let img = RgbImage::from_fn(6, 6, |x, y| {
            image::Rgb([(x * 40) as u8, (y * 40) as u8, 255])
        });
        let plain = to_chw(&img, (1, 2), 4, false, 3);
        let flipped = to_chw(&img, (1, 2), 4, true, 3);
        // Red grows with x: 40 at x = 1; the mirrored row starts at x = 4.
        assert_eq!(plain[0], 40.0 / 127.5 - 1.0);
        assert_eq!(flipped[0], 160.0 / 127.5 - 1.0);
        assert_eq!(plain[16], 80.0 / 127.5 - 1.0); // green at y = 2
        assert_eq!(plain[32], 1.0);
        let gray = to_chw(&img, (0, 0), 4, false, 1);
        assert_eq!(gray.len(), 16);
        assert!(gray.iter().all(|v| (-1.0..=1.0).contains(v)));
    }
}
