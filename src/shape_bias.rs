//! Shape bias (Geirhos et al. 2019): how often a classifier follows an object's shape rather than
//! its texture when the two disagree. Cue-conflict images are made with the AdaIN stylizer: the
//! content (shape) of an image of class A re-painted with the style (texture) of an image of class
//! B ≠ A; or, for objects on a plain dark background without AdaIN weights, by texture swap (A's
//! silhouette filled with B's texture, `CueMaker::TextureSwap`). Each cue-conflict image is
//! classified; a decision is "shape" when it names A, "texture" when it names B, "other" otherwise.
//! Shape bias = shape / (shape + texture).
//!
//! Invariants: the pairs are a pure function of (seed, dataset labels) and are returned with the
//! report, so a run can be audited and repeated; AdaIN works at `stylize_size`² (a multiple of 8,
//! as the encoder pools three times) from a center crop, texture swap at the images' own size; the
//! results are brought back to the classifier's
//! channel count and evaluated with its own evaluation transform. An unreadable image drops its pair
//! (counted in `skipped`), never the run. `shape_bias_both_correct` repeats the measure over the pairs
//! whose two source images the classifier gets right on their own.

use crate::data::augment::{apply, AugmentConfig, Preprocess};
use crate::data::texture_swap;
use crate::data::{Dataset, Image};
use crate::models::Stylizer;
use crate::viz::{tensor_to_rgb8, ImageGrid, PixelRange, Rgb8};
use crate::{DType, Device, Error, Result, Tensor};
use rand::{Rng, SeedableRng};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct ShapeBiasConfig {
    /// Cue-conflict pairs to draw.
    pub pairs: usize,
    pub seed: u64,
    /// AdaIN α: 1 replaces the content statistics completely.
    pub alpha: f64,
    /// Side of the square images the stylizer works on (a multiple of 8).
    pub stylize_size: usize,
    pub batch_size: usize,
    /// Where to write a PNG grid of the first pairs (shape, texture, cue conflict).
    pub grid: Option<PathBuf>,
}

/// One cue-conflict trial: dataset indices and labels of the shape and texture sources, and the
/// classifier's decision (None when an image could not be read).
#[derive(Clone, Debug, Serialize)]
pub struct Trial {
    pub shape_index: usize,
    pub texture_index: usize,
    pub shape_class: usize,
    pub texture_class: usize,
    pub decision: Option<usize>,
    /// Whether the classifier gets each source image right on its own.
    pub shape_source_correct: bool,
    pub texture_source_correct: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct ShapeBiasReport {
    pub pairs: usize,
    pub shape_decisions: usize,
    pub texture_decisions: usize,
    pub other_decisions: usize,
    pub skipped: usize,
    /// shape / (shape + texture); NaN when neither was ever chosen.
    pub shape_bias: f64,
    /// The same over trials whose shape and texture sources are both classified correctly.
    pub shape_bias_both_correct: f64,
    /// Per shape class: (class name, shape decisions, texture decisions).
    pub per_class: Vec<(String, usize, usize)>,
    pub trials: Vec<Trial>,
}

/// Draws `n` (shape, texture) index pairs with different labels.
pub fn draw_pairs(dataset: &dyn Dataset, n: usize, seed: u64) -> Result<Vec<(usize, usize)>> {
    let len = dataset.len();
    let first = (len > 0).then(|| dataset.label(0));
    if first.is_none() || (0..len).all(|i| Some(dataset.label(i)) == first) {
        return Err(Error::Msg(
            "shape bias needs a labelled dataset with at least two classes".into(),
        ));
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let a = rng.random_range(0..len);
        let b = rng.random_range(0..len);
        if dataset.label(a) != dataset.label(b) {
            out.push((a, b));
        }
    }
    Ok(out)
}

/// An image as RGB (gray replicated).
fn to_rgb(img: Image) -> Image {
    if img.channels == 3 {
        return img;
    }
    let data = img
        .data
        .chunks(img.channels)
        .flat_map(|p| [p[0]; 3])
        .collect();
    Image {
        channels: 3,
        data,
        ..img
    }
}

/// Image `i` of an NCHW [0, 1] RGB batch as an `Image` with `channels` (1: the mean of R, G, B).
fn to_image(t: &Tensor, i: usize, channels: usize) -> Result<Image> {
    let rgb = tensor_to_rgb8(t, i, PixelRange::ZeroOne)?;
    let data = if channels == 1 {
        rgb.data
            .chunks(3)
            .map(|p| ((p[0] as u32 + p[1] as u32 + p[2] as u32 + 1) / 3) as u8)
            .collect()
    } else {
        rgb.data.clone()
    };
    Ok(Image {
        width: rgb.width,
        height: rgb.height,
        channels,
        data,
    })
}

/// What shape bias needs of a classifier: its input channels, evaluation transform, and a function
/// from a normalised NCHW batch (on the classifier's device, f32) to predicted classes.
pub struct Classifier<'a> {
    pub channels: usize,
    pub eval: AugmentConfig,
    pub dtype: DType,
    pub predict: &'a dyn Fn(&Tensor) -> Result<Vec<usize>>,
}

fn classify(c: &Classifier, images: &[Image], device: Device) -> Result<Vec<usize>> {
    let s = c.eval.size;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let mut data = Vec::with_capacity(images.len() * c.channels * s * s);
    for img in images {
        data.extend(apply(img, &c.eval, &mut rng));
    }
    let x = Tensor::from_vec(data, [images.len(), c.channels, s, s], Device::Cpu)?
        .to_dtype(c.dtype)?
        .to_device(device)?;
    (c.predict)(&x)
}

/// How cue-conflict images are made from a (shape source, texture source) pair.
pub enum CueMaker<'a> {
    /// AdaIN (Geirhos et al.): the content of the shape source re-painted in the style of the
    /// texture source, at `ShapeBiasConfig::stylize_size`² with `alpha`.
    Stylizer {
        stylizer: &'a Stylizer,
        dtype: DType,
    },
    /// Texture swap (src/data/texture_swap.rs): the shape source's silhouette and shading filled
    /// with the texture source's tiled central patch, at the images' own size. For objects on a
    /// plain dark background (Fashion-MNIST), where no AdaIN weights are at hand.
    TextureSwap { content_weight: f32 },
}

/// Builds cue-conflict images from `dataset`, classifies them, and reports the shape bias.
pub fn shape_bias(
    dataset: &dyn Dataset,
    maker: &CueMaker,
    classifier: &Classifier,
    device: Device,
    cfg: &ShapeBiasConfig,
) -> Result<ShapeBiasReport> {
    if matches!(maker, CueMaker::Stylizer { .. })
        && (cfg.stylize_size == 0 || cfg.stylize_size % 8 != 0)
    {
        return Err(Error::Msg(format!(
            "--stylize-size {} must be a positive multiple of 8",
            cfg.stylize_size
        )));
    }
    let pairs = draw_pairs(dataset, cfg.pairs, cfg.seed)?;
    let mut trials = Vec::with_capacity(pairs.len());
    let mut grid = ImageGrid::with_min_cell(crate::viz::GRID_MIN_CELL);
    let _g = crate::NoGradGuard::new();
    for chunk in pairs.chunks(cfg.batch_size.max(1)) {
        let mut loaded = Vec::new();
        for &(a, b) in chunk {
            let trial = Trial {
                shape_index: a,
                texture_index: b,
                shape_class: dataset.label(a),
                texture_class: dataset.label(b),
                decision: None,
                shape_source_correct: false,
                texture_source_correct: false,
            };
            if let (Ok(x), Ok(y)) = (dataset.get(a), dataset.get(b)) {
                loaded.push((trials.len(), x, y));
            }
            trials.push(trial);
        }
        if loaded.is_empty() {
            continue;
        }
        let sources: Vec<(Image, Image)> = loaded
            .iter()
            .map(|(_, x, y)| (x.clone(), y.clone()))
            .collect();
        let (conflict, rows) = match maker {
            CueMaker::Stylizer { stylizer, dtype } => {
                stylize_pairs(&sources, stylizer, *dtype, classifier.channels, device, cfg)?
            }
            CueMaker::TextureSwap { content_weight } => {
                let conflict: Vec<Image> = sources
                    .iter()
                    .map(|(x, y)| texture_swap::cue_conflict(x, y, *content_weight))
                    .collect::<Result<_>>()?;
                let rows = sources
                    .iter()
                    .zip(&conflict)
                    .map(|((x, y), c)| [x, y, c].map(image_to_rgb8))
                    .collect();
                (conflict, rows)
            }
        };
        let decisions = classify(classifier, &conflict, device)?;
        let flat: Vec<Image> = sources.into_iter().flat_map(|(x, y)| [x, y]).collect();
        let source_decisions = classify(classifier, &flat, device)?;
        for (k, ((t, _, _), row)) in loaded.iter().zip(rows).enumerate() {
            let trial = &mut trials[*t];
            trial.decision = Some(decisions[k]);
            trial.shape_source_correct = source_decisions[2 * k] == trial.shape_class;
            trial.texture_source_correct = source_decisions[2 * k + 1] == trial.texture_class;
            if cfg.grid.is_some() && grid.rows() < 12 {
                grid.push_row(row.to_vec());
            }
        }
    }
    if let (Some(path), false) = (&cfg.grid, grid.is_empty()) {
        grid.save(path)?;
    }
    Ok(report(dataset.class_names(), trials))
}

/// An `Image` (1 or 3 channels) as RGB8 for a grid.
fn image_to_rgb8(img: &Image) -> Rgb8 {
    Rgb8 {
        width: img.width,
        height: img.height,
        data: to_rgb(img.clone()).data,
    }
}

/// AdaIN cue conflicts of `pairs` with the classifier's channel count, and grid rows (content,
/// style, result) at the stylizer's size.
fn stylize_pairs(
    pairs: &[(Image, Image)],
    stylizer: &Stylizer,
    stylizer_dtype: DType,
    channels: usize,
    device: Device,
    cfg: &ShapeBiasConfig,
) -> Result<(Vec<Image>, Vec<[Rgb8; 3]>)> {
    let s = cfg.stylize_size;
    let square = AugmentConfig {
        size: s,
        preprocess: Preprocess::CenterCrop { resize: s },
        flip: false,
        jitter: 0.0,
        hue: false,
        lighting: 0.0,
        mean: vec![0.0; 3],
        std: vec![1.0; 3],
    };
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let n = pairs.len();
    let mut content = Vec::with_capacity(n * 3 * s * s);
    let mut style = Vec::with_capacity(n * 3 * s * s);
    for (x, y) in pairs {
        content.extend(apply(&to_rgb(x.clone()), &square, &mut rng));
        style.extend(apply(&to_rgb(y.clone()), &square, &mut rng));
    }
    let to_dev = |v: Vec<f32>| -> Result<Tensor> {
        Tensor::from_vec(v, [n, 3, s, s], Device::Cpu)?
            .to_dtype(stylizer_dtype)?
            .to_device(device)
    };
    let (content, style) = (to_dev(content)?, to_dev(style)?);
    let out = stylizer
        .stylize(&content, &[(style.clone(), 1.0)], cfg.alpha, false)?
        .to_dtype(DType::F32)?;
    let conflict = (0..n)
        .map(|i| to_image(&out, i, channels))
        .collect::<Result<_>>()?;
    let (content, style) = (content.to_dtype(DType::F32)?, style.to_dtype(DType::F32)?);
    let rows = (0..n)
        .map(|k| {
            Ok([
                tensor_to_rgb8(&content, k, PixelRange::ZeroOne)?,
                tensor_to_rgb8(&style, k, PixelRange::ZeroOne)?,
                tensor_to_rgb8(&out, k, PixelRange::ZeroOne)?,
            ])
        })
        .collect::<Result<_>>()?;
    Ok((conflict, rows))
}

/// Tallies trials into a report.
pub fn report(class_names: &[String], trials: Vec<Trial>) -> ShapeBiasReport {
    let ratio = |s: usize, t: usize| {
        if s + t == 0 {
            f64::NAN
        } else {
            s as f64 / (s + t) as f64
        }
    };
    let (mut shape, mut texture, mut other, mut skipped) = (0, 0, 0, 0);
    let (mut shape_c, mut texture_c) = (0, 0);
    let mut per_class = vec![(0usize, 0usize); class_names.len()];
    for t in &trials {
        let Some(d) = t.decision else {
            skipped += 1;
            continue;
        };
        let both = t.shape_source_correct && t.texture_source_correct;
        if d == t.shape_class {
            shape += 1;
            shape_c += both as usize;
            per_class[t.shape_class].0 += 1;
        } else if d == t.texture_class {
            texture += 1;
            texture_c += both as usize;
            per_class[t.shape_class].1 += 1;
        } else {
            other += 1;
        }
    }
    ShapeBiasReport {
        pairs: trials.len(),
        shape_decisions: shape,
        texture_decisions: texture,
        other_decisions: other,
        skipped,
        shape_bias: ratio(shape, texture),
        shape_bias_both_correct: ratio(shape_c, texture_c),
        per_class: class_names
            .iter()
            .zip(per_class)
            .map(|(n, (s, t))| (n.clone(), s, t))
            .collect(),
        trials,
    }
}
