//! The data of decoder training: two folders of images (content and style, searched recursively)
//! drawn independently and forever, as the reference's `InfiniteSamplerWrapper` draws them, and
//! preprocessed as the paper does (shorter side resized to `image_size`, then a random `crop`²
//! square; pixels in [0, 1]).
//!
//! Invariants:
//! - `ImageSet::scan` lists the image files in sorted order and keeps those whose header can be
//!   read and whose shorter side is at least `min_side`; the others are skipped and named, and a
//!   folder with none left is an error. Which files are kept depends only on the folder's contents.
//! - A stream is a pure function of (seed, stream id, position): position `p` is item `p mod n` of
//!   pass `p div n`, each pass a seeded permutation of the `n` files; the crop of position `p` is
//!   drawn from an RNG seeded by (seed, stream id, p). Iteration `i` uses positions
//!   `i·B … i·B + B − 1` of both streams, so the batches of a run resumed at iteration `i` are those
//!   an uninterrupted run would see, whichever thread made them.
//! - A file that fails to decode despite a good header drops its (content, style) pair from that
//!   batch (the batch is smaller, never refilled) and is named in `PairBatch::skipped`.

use crate::data::folder::{decode_image, list_images, IMAGE_EXTENSIONS};
use crate::data::loader::mix_seed;
use crate::data::Image;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};

/// The usable images of one folder.
#[derive(Clone, Debug)]
pub struct ImageSet {
    pub root: PathBuf,
    /// Kept files, sorted by path.
    pub files: Vec<PathBuf>,
    /// Skipped files, each `"<path>: <reason>"`.
    pub skipped: Vec<String>,
}

impl ImageSet {
    /// Lists and checks the images under `root`. `what` ("content", "style") and `flag`
    /// ("--content") name the folder in errors.
    pub fn scan(root: &Path, what: &str, flag: &str, min_side: usize) -> Result<ImageSet> {
        if !root.is_dir() {
            return Err(Error::Msg(format!(
                "{what} folder {} {} ({flag} DIR: a folder of images, searched recursively)",
                root.display(),
                if root.exists() {
                    "is not a folder"
                } else {
                    "does not exist"
                }
            )));
        }
        let mut all = Vec::new();
        list_images(root, &mut all)?;
        if all.is_empty() {
            return Err(Error::Msg(format!(
                "{what} folder {} has no images (looked recursively for {})",
                root.display(),
                IMAGE_EXTENSIONS.join(", ")
            )));
        }
        let checked: Vec<std::result::Result<PathBuf, String>> = all
            .into_par_iter()
            .map(|p| match header_size(&p) {
                Err(e) => Err(format!("{}: unreadable: {e}", p.display())),
                Ok((w, h)) if w.min(h) < min_side => Err(format!(
                    "{}: too small: {w}×{h} px, the shorter side must be at least {min_side} px",
                    p.display()
                )),
                Ok(_) => Ok(p),
            })
            .collect();
        let (mut files, mut skipped) = (Vec::new(), Vec::new());
        for c in checked {
            match c {
                Ok(p) => files.push(p),
                Err(e) => skipped.push(e),
            }
        }
        if files.is_empty() {
            return Err(Error::Msg(format!(
                "{what} folder {} has no usable images: all {} were skipped ({})",
                root.display(),
                skipped.len(),
                skipped
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        Ok(ImageSet {
            root: root.to_path_buf(),
            files,
            skipped,
        })
    }
}

/// Width and height from an image file's header (the pixels are not decoded).
fn header_size(path: &Path) -> std::result::Result<(usize, usize), String> {
    let (w, h) = image::ImageReader::open(path)
        .map_err(|e| e.to_string())?
        .with_guessed_format()
        .map_err(|e| e.to_string())?
        .into_dimensions()
        .map_err(|e| e.to_string())?;
    Ok((w as usize, h as usize))
}

/// How `preprocess` cuts the square out of the resized image.
pub enum Crop<'a> {
    /// Uniformly random position (training).
    Random(&'a mut ChaCha8Rng),
    /// The middle (sample grids).
    Center,
}

/// Resizes `img` (RGB) so that its shorter side is `size` (bilinear with antialiasing, as PIL's
/// resize that torchvision uses; the longer side is truncated as torchvision's `Resize(int)`
/// computes it), cuts a `crop`² square and returns it as f32 CHW in [0, 1].
pub fn preprocess(img: &Image, size: usize, crop: usize, how: Crop) -> Result<Vec<f32>> {
    let (w, h) = (img.width, img.height);
    if w == 0 || h == 0 || img.channels != 3 {
        return Err(Error::Msg(format!(
            "expected a non-empty RGB image, got {w}×{h} with {} channels",
            img.channels
        )));
    }
    let (nw, nh) = if w <= h {
        (size, (size * h / w).max(size))
    } else {
        ((size * w / h).max(size), size)
    };
    let rgb = image::RgbImage::from_raw(w as u32, h as u32, img.data.clone())
        .ok_or_else(|| Error::Msg("image buffer of the wrong size".into()))?;
    let resized = if (nw, nh) == (w, h) {
        rgb
    } else {
        image::imageops::resize(
            &rgb,
            nw as u32,
            nh as u32,
            image::imageops::FilterType::Triangle,
        )
    };
    let (x0, y0) = match how {
        Crop::Random(rng) => (
            rng.random_range(0..=nw - crop),
            rng.random_range(0..=nh - crop),
        ),
        Crop::Center => ((nw - crop) / 2, (nh - crop) / 2),
    };
    let plane = crop * crop;
    let mut out = vec![0.0f32; 3 * plane];
    let px = resized.as_raw();
    for y in 0..crop {
        for x in 0..crop {
            let at = ((y0 + y) * nw + x0 + x) * 3;
            for c in 0..3 {
                out[c * plane + y * crop + x] = f32::from(px[at + c]) / 255.0;
            }
        }
    }
    Ok(out)
}

/// An endless seeded stream over the files of an `ImageSet`.
struct Stream {
    files: Vec<PathBuf>,
    /// Distinguishes the content stream from the style stream.
    id: u64,
}

impl Stream {
    /// The permutation of pass `pass`.
    fn pass_order(&self, seed: u64, pass: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.files.len()).collect();
        order.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
            seed, self.id, pass,
        ])));
        order
    }

    /// The preprocessed image at `position`; `order` is the permutation of its pass.
    fn sample(
        &self,
        seed: u64,
        position: u64,
        order: &[usize],
        size: usize,
        crop: usize,
    ) -> Result<Vec<f32>> {
        let file = &self.files[order[(position % self.files.len() as u64) as usize]];
        let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[seed, self.id, position, 2]));
        let img = decode_image(file, 3)?;
        preprocess(&img, size, crop, Crop::Random(&mut rng))
            .map_err(|e| Error::Msg(format!("{}: {e}", file.display())))
    }
}

/// The content and style images of one iteration, as f32 NCHW in [0, 1].
pub struct PairBatch {
    pub iteration: usize,
    pub content: Vec<f32>,
    pub style: Vec<f32>,
    /// `[n, 3, crop, crop]`; `n` is below the batch size when pairs were dropped, 0 when all were.
    pub dims: [usize; 4],
    /// Files that failed to decode, with the error (their pairs were dropped).
    pub skipped: Vec<String>,
}

/// Makes the batches of a run: iteration `i` pairs positions `i·B …` of the two streams.
pub struct PairLoader {
    content: Stream,
    style: Stream,
    seed: u64,
    batch_size: usize,
    size: usize,
    crop: usize,
}

/// The pass orders of the passes a batch touches (at most a few; computed once per batch).
struct Orders(Vec<(u64, Vec<usize>)>);

impl Orders {
    fn new(stream: &Stream, seed: u64, positions: std::ops::Range<u64>) -> Orders {
        let n = stream.files.len() as u64;
        let passes = positions.start / n..=(positions.end - 1) / n;
        Orders(passes.map(|p| (p, stream.pass_order(seed, p))).collect())
    }
    fn of(&self, position: u64, n: usize) -> &[usize] {
        let pass = position / n as u64;
        &self
            .0
            .iter()
            .find(|(p, _)| *p == pass)
            .expect("pass cached")
            .1
    }
}

impl PairLoader {
    pub fn new(
        content: &ImageSet,
        style: &ImageSet,
        seed: u64,
        batch_size: usize,
        size: usize,
        crop: usize,
    ) -> PairLoader {
        PairLoader {
            content: Stream {
                files: content.files.clone(),
                id: 1,
            },
            style: Stream {
                files: style.files.clone(),
                id: 2,
            },
            seed,
            batch_size,
            size,
            crop,
        }
    }

    /// The batch of iteration `iteration`, its samples made in parallel.
    pub fn batch(&self, iteration: usize) -> PairBatch {
        let b = self.batch_size as u64;
        let positions = iteration as u64 * b..(iteration as u64 + 1) * b;
        let streams = [&self.content, &self.style];
        let orders: Vec<Orders> = streams
            .iter()
            .map(|s| Orders::new(s, self.seed, positions.clone()))
            .collect();
        let jobs: Vec<(usize, u64)> = (0..2)
            .flat_map(|s| positions.clone().map(move |p| (s, p)))
            .collect();
        let results: Vec<Result<Vec<f32>>> = jobs
            .par_iter()
            .map(|&(s, p)| {
                let stream = streams[s];
                let order = orders[s].of(p, stream.files.len());
                stream.sample(self.seed, p, order, self.size, self.crop)
            })
            .collect();
        let (content, style) = results.split_at(self.batch_size);
        let mut batch = PairBatch {
            iteration,
            content: Vec::new(),
            style: Vec::new(),
            dims: [0, 3, self.crop, self.crop],
            skipped: Vec::new(),
        };
        for (c, s) in content.iter().zip(style) {
            match (c, s) {
                (Ok(c), Ok(s)) => {
                    batch.content.extend_from_slice(c);
                    batch.style.extend_from_slice(s);
                    batch.dims[0] += 1;
                }
                (c, s) => {
                    for e in [c, s].into_iter().filter_map(|r| r.as_ref().err()) {
                        batch.skipped.push(e.to_string());
                    }
                }
            }
        }
        batch
    }

    /// Batches of iterations `start..end`, made ahead on a background thread (`prefetch` ready).
    pub fn batches(
        self: &Arc<Self>,
        start: usize,
        end: usize,
        prefetch: usize,
    ) -> impl Iterator<Item = PairBatch> {
        let (tx, rx) = mpsc::sync_channel(prefetch.max(1));
        let me = Arc::clone(self);
        std::thread::spawn(move || {
            for i in start..end {
                if tx.send(me.batch(i)).is_err() {
                    break; // the trainer stopped
                }
            }
        });
        rx.into_iter()
    }
}

/// One (content, style) pair of the sample grids, each f32 CHW in [0, 1].
pub type SamplePair = (Vec<f32>, Vec<f32>);

/// The fixed (content, style) pairs of the sample grids: `pairs` images spread evenly over each
/// sorted file list, centre-cropped. Pairs whose images fail to decode are left out (named in the
/// returned warnings).
pub fn sample_pairs(
    content: &ImageSet,
    style: &ImageSet,
    pairs: usize,
    size: usize,
    crop: usize,
) -> (Vec<SamplePair>, Vec<String>) {
    let pick = |set: &ImageSet, j: usize| -> Result<Vec<f32>> {
        let file = &set.files[j * set.files.len() / pairs];
        preprocess(&decode_image(file, 3)?, size, crop, Crop::Center)
            .map_err(|e| Error::Msg(format!("{}: {e}", file.display())))
    };
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for j in 0..pairs {
        match (pick(content, j), pick(style, j)) {
            (Ok(c), Ok(s)) => out.push((c, s)),
            (c, s) => warnings.extend(c.err().into_iter().chain(s.err()).map(|e| e.to_string())),
        }
    }
    (out, warnings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(n: usize) -> ImageSet {
        ImageSet {
            root: PathBuf::new(),
            files: (0..n).map(|i| PathBuf::from(format!("{i}.png"))).collect(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn each_pass_is_a_seeded_permutation() {
        let s = Stream {
            files: set(7).files,
            id: 1,
        };
        let a = s.pass_order(3, 0);
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..7).collect::<Vec<_>>());
        assert_eq!(a, s.pass_order(3, 0), "pure function of (seed, pass)");
        assert_ne!(a, s.pass_order(3, 1), "each pass reshuffles");
        assert_ne!(a, s.pass_order(4, 0));
        // A batch spanning a pass boundary reads both passes.
        let o = Orders::new(&s, 3, 5..9);
        assert_eq!(o.0.len(), 2);
        assert_eq!(o.of(8, 7), &s.pass_order(3, 1)[..]);
    }

    #[test]
    fn preprocessing_resizes_the_shorter_side_then_crops() {
        // A 40×20 horizontal ramp: resized to 20 → 40×20 (unchanged), then 16² crops.
        let img = Image {
            width: 40,
            height: 20,
            channels: 3,
            data: (0..40 * 20)
                .flat_map(|i| {
                    let v = ((i % 40) * 6) as u8;
                    [v, v, v]
                })
                .collect(),
        };
        let c = preprocess(&img, 20, 16, Crop::Center).unwrap();
        assert_eq!(c.len(), 3 * 16 * 16);
        assert_eq!(c[0], (12.0 * 6.0) / 255.0, "centre crop starts at x = 12");
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let r = preprocess(&img, 10, 8, Crop::Random(&mut rng)).unwrap();
        assert_eq!(r.len(), 3 * 8 * 8);
        assert!(r.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}
