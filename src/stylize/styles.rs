//! The style images a job draws from: listed and checked at startup, decoded and preprocessed on
//! demand (a painting collection is far too large to hold decoded), with a small cache.
//!
//! Invariants:
//! - At startup every style file's header is read (cheap: no pixel decoding); a file whose header
//!   cannot be read, or whose shorter side is below `min_side`, is excluded from the draw with its
//!   reason. The draw is over the remaining files, in sorted order.
//! - A file that passes the header check but fails to decode later (a truncated JPEG), or — with
//!   colour preservation — has a constant channel, is marked bad and the content image takes the
//!   next draw of its `StyleDraw`. Whether a file decodes is a property of the file, so the chosen
//!   style still depends only on (seed, content name, style files), not on which thread found the
//!   bad file first.
//! - The cache holds preprocessed styles up to `CACHE_BYTES` and never evicts: it only saves work,
//!   it never changes a result.

use super::files::{list_images, Fnv1a, ImageFile, StyleDraw};
use super::preprocess::{channels_vary, prepare_style};
use super::Skipped;
use crate::data::folder::decode_image;
use crate::data::Image;
use crate::{Error, Result};
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Bytes of preprocessed style images kept in memory.
const CACHE_BYTES: usize = 256 << 20;

/// What the style files of a job turned out to be.
pub struct StylePool {
    /// Usable after the header check, sorted by name.
    files: Vec<ImageFile>,
    /// Excluded at startup (with the reason).
    pub excluded: Vec<Skipped>,
    style_size: usize,
    min_side: usize,
    need_varying_channels: bool,
    cache: Mutex<(usize, HashMap<usize, Arc<Image>>)>,
    /// Files of `files` that failed later, by index.
    bad: Mutex<BTreeMap<usize, String>>,
}

/// The width and height in an image file's header.
fn header_size(path: &Path) -> std::result::Result<(u32, u32), String> {
    image::ImageReader::open(path)
        .map_err(|e| format!("cannot open: {e}"))?
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?
        .into_dimensions()
        .map_err(|e| format!("corrupt or unsupported image: {e}"))
}

impl StylePool {
    /// Lists `dir` and checks every file's header (in parallel). Errors when nothing is usable.
    pub fn open(
        dir: &Path,
        style_size: usize,
        min_side: usize,
        need_varying_channels: bool,
    ) -> Result<StylePool> {
        let listed = list_images(
            dir,
            "style",
            "give --styles a folder of style images, e.g. the paintings of Kaggle's \
             Painter by Numbers (train.zip) as Stylized-ImageNet uses",
        )?;
        let checked: Vec<std::result::Result<ImageFile, Skipped>> = listed
            .into_par_iter()
            .map(|f| match header_size(&f.path) {
                Ok((w, h)) if (w.min(h) as usize) < min_side => Err(Skipped::new(
                    &f.path,
                    format!("image too small: {w}×{h} px, the shorter side must be at least {min_side} px (--min-side)"),
                )),
                Ok(_) => Ok(f),
                Err(reason) => Err(Skipped::new(&f.path, reason)),
            })
            .collect();
        let (mut files, mut excluded) = (Vec::new(), Vec::new());
        for c in checked {
            match c {
                Ok(f) => files.push(f),
                Err(s) => excluded.push(s),
            }
        }
        if files.is_empty() {
            return Err(Error::Msg(format!(
                "no usable style images in {}: all {} are corrupt or smaller than {min_side} px \
                 (first: {})",
                dir.display(),
                excluded.len(),
                excluded[0]
            )));
        }
        Ok(StylePool {
            files,
            excluded,
            style_size,
            min_side,
            need_varying_channels,
            cache: Mutex::new((0, HashMap::new())),
            bad: Mutex::new(BTreeMap::new()),
        })
    }

    /// Number of styles in the draw (after the startup check).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The name of style `index` (relative to the style folder).
    pub fn rel(&self, index: usize) -> &str {
        &self.files[index].rel
    }

    /// A short fingerprint of the usable style files: their count and a 64-bit FNV-1a hash of each
    /// one's name and byte size, in draw order. Adding, removing, renaming or resizing a file
    /// changes it (and every draw); two folders with the same files give the same one.
    pub fn fingerprint(&self) -> String {
        let mut hash = Fnv1a::new();
        for f in &self.files {
            let size = std::fs::metadata(&f.path).map_or(0, |m| m.len());
            hash.write(format!("{}\0{size}\n", f.rel).as_bytes());
        }
        format!("{} files, fnv1a64 {:016x}", self.files.len(), hash.finish())
    }

    /// Styles that passed the startup check but could not be used, with the reasons.
    pub fn failed_later(&self) -> Vec<Skipped> {
        let bad = self.bad.lock().expect("style list");
        bad.iter()
            .map(|(&i, reason)| Skipped::new(&self.files[i].path, reason.clone()))
            .collect()
    }

    fn load(&self, index: usize) -> std::result::Result<Arc<Image>, String> {
        if let Some(img) = self.cache.lock().expect("style cache").1.get(&index) {
            return Ok(img.clone());
        }
        let path = &self.files[index].path;
        let img = decode_image(path, 3).map_err(|e| e.to_string())?;
        if img.width.min(img.height) < self.min_side {
            return Err(format!("image too small: {}×{} px", img.width, img.height));
        }
        let img = prepare_style(&img, self.style_size);
        if self.need_varying_channels && !channels_vary(&img) {
            return Err("a colour channel is constant; --preserve-color cannot use it".into());
        }
        let img = Arc::new(img);
        let mut cache = self.cache.lock().expect("style cache");
        if cache.0 + img.data.len() <= CACHE_BYTES {
            cache.0 += img.data.len();
            cache.1.insert(index, img.clone());
        }
        Ok(img)
    }

    /// The style of content `content_rel`: its index and preprocessed image. Errors only when no
    /// style is usable any more.
    pub fn style_for(&self, seed: u64, content_rel: &str) -> Result<(usize, Arc<Image>)> {
        let mut draw = StyleDraw::new(seed, content_rel);
        loop {
            let i = draw.next_index(self.files.len());
            {
                let bad = self.bad.lock().expect("style list");
                if bad.len() == self.files.len() {
                    return Err(Error::Msg(format!(
                        "no usable style images left: all {} failed to decode (engine stylize lists \
                         them in skipped.txt; engine stylize-idx prints them)",
                        self.files.len()
                    )));
                }
                if bad.contains_key(&i) {
                    continue;
                }
            }
            match self.load(i) {
                Ok(img) => return Ok((i, img)),
                Err(reason) => {
                    self.bad.lock().expect("style list").insert(i, reason);
                }
            }
        }
    }
}
