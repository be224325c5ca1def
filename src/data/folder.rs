//! An ImageNet-style folder tree: `<root>/<class>/**/<image>` (`train/n01440764/*.JPEG`,
//! `val/<class>/*`). Classes are the sub-folders of the root in sorted order; files are sorted within
//! each class. Images are decoded with the `image` crate (JPEG, PNG, BMP, WebP; the format is guessed
//! from the content, so a misnamed file still decodes) and converted to RGB `u8`.
//!
//! Listing is eager and cheap (no decoding). Decoding happens in `get`, which returns an error naming
//! the file for a corrupt or unreadable image, or one smaller than `min_side`; the loader skips such
//! samples and reports them.

use super::{Dataset, Image};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// File extensions (compared case-insensitively) taken as images.
pub const IMAGE_EXTENSIONS: [&str; 6] = ["jpg", "jpeg", "png", "bmp", "webp", "jpe"];

/// Whether `path` has an image extension.
pub fn is_image_file(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

/// Image files under `dir` (recursively; hidden entries skipped), sorted by path.
pub fn list_images(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            list_images(&p, out)?;
        } else if is_image_file(&p) {
            out.push(p);
        }
    }
    Ok(())
}

/// The class folders of an ImageFolder root, sorted. Errors for a missing root or one without class
/// folders.
pub fn folder_classes(root: &Path) -> Result<Vec<String>> {
    if !root.exists() {
        return Err(Error::Msg(format!(
            "dataset folder {} does not exist (expected <root>/<class>/<images>)",
            root.display()
        )));
    }
    if !root.is_dir() {
        return Err(Error::Msg(format!(
            "dataset path {} is not a folder (expected <root>/<class>/<images>)",
            root.display()
        )));
    }
    let mut classes: Vec<String> = std::fs::read_dir(root)
        .map_err(io_err(root))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| !n.starts_with('.'))
        .collect();
    classes.sort();
    if classes.is_empty() {
        return Err(Error::Msg(format!(
            "dataset folder {} is empty: it has no class sub-folders (expected <root>/<class>/<images>)",
            root.display()
        )));
    }
    Ok(classes)
}

/// Decodes an image file to RGB (`channels` 3) or grayscale (`channels` 1) `u8` HWC.
pub fn decode_image(path: &Path, channels: usize) -> Result<Image> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        Error::Msg(format!("{}: {what}: {e}", path.display()))
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad("cannot open image", &e))?
        .with_guessed_format()
        .map_err(|e| bad("cannot read image", &e))?;
    let img = reader
        .decode()
        .map_err(|e| bad("corrupt or unsupported image", &e))?;
    let (width, height) = (img.width() as usize, img.height() as usize);
    let data = match channels {
        1 => img.into_luma8().into_raw(),
        3 => img.into_rgb8().into_raw(),
        c => {
            return Err(Error::Msg(format!(
                "{}: cannot decode to {c} channels (1 or 3)",
                path.display()
            )))
        }
    };
    Ok(Image {
        width,
        height,
        channels,
        data,
    })
}

/// A labelled list of image files decoded on demand.
#[derive(Clone, Debug)]
pub struct ImageFolder {
    roots: Vec<PathBuf>,
    classes: Vec<String>,
    files: Vec<(PathBuf, usize)>,
    min_side: usize,
}

impl ImageFolder {
    /// Lists `<root>/<class>/…`. With `classes` given, labels follow that list (so a validation
    /// folder uses the training classes) and a class folder not in it is an error naming it; classes
    /// of the list that have no folder here are allowed (they just have no samples).
    pub fn new(root: &Path, classes: Option<&[String]>) -> Result<ImageFolder> {
        let found = folder_classes(root)?;
        let classes: Vec<String> = match classes {
            Some(pinned) => {
                let unknown: Vec<&String> = found.iter().filter(|c| !pinned.contains(c)).collect();
                if !unknown.is_empty() {
                    return Err(Error::Msg(format!(
                        "class mismatch: {} has class folder(s) {unknown:?} that the training data does not have ({} classes: {})",
                        root.display(),
                        pinned.len(),
                        summarize(pinned)
                    )));
                }
                pinned.to_vec()
            }
            None => found.clone(),
        };
        let mut files = Vec::new();
        for name in &found {
            let label = classes.iter().position(|c| c == name).expect("checked");
            let dir = root.join(name);
            let mut paths = Vec::new();
            list_images(&dir, &mut paths)?;
            if paths.is_empty() {
                return Err(Error::Msg(format!(
                    "class folder {} has no images (looked for {})",
                    dir.display(),
                    IMAGE_EXTENSIONS.join(", ")
                )));
            }
            files.extend(paths.into_iter().map(|p| (p, label)));
        }
        Ok(ImageFolder {
            roots: vec![root.to_path_buf()],
            classes,
            files,
            min_side: 0,
        })
    }

    /// A dataset of explicit (file, label) pairs (for benchmarks and prediction).
    pub fn from_files(files: Vec<(PathBuf, usize)>, classes: Vec<String>) -> Result<ImageFolder> {
        if let Some((p, l)) = files.iter().find(|(_, l)| *l >= classes.len()) {
            return Err(Error::Msg(format!(
                "{}: label {l} out of range for {} classes",
                p.display(),
                classes.len()
            )));
        }
        Ok(ImageFolder {
            roots: Vec::new(),
            classes,
            files,
            min_side: 0,
        })
    }

    /// Images whose shorter side is below `side` pixels are reported as errors by `get`.
    pub fn with_min_side(mut self, side: usize) -> ImageFolder {
        self.min_side = side;
        self
    }

    pub fn min_side(&self) -> usize {
        self.min_side
    }

    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The (file, label) pairs in dataset order.
    pub fn files(&self) -> &[(PathBuf, usize)] {
        &self.files
    }
}

/// The first few names of a long list.
pub(crate) fn summarize(names: &[String]) -> String {
    if names.len() <= 8 {
        names.join(", ")
    } else {
        format!("{}, … {}", names[..6].join(", "), names[names.len() - 1])
    }
}

impl Dataset for ImageFolder {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn class_names(&self) -> &[String] {
        &self.classes
    }
    fn channels(&self) -> usize {
        3
    }
    fn label(&self, index: usize) -> usize {
        self.files[index].1
    }
    fn get(&self, index: usize) -> Result<Image> {
        let path = &self.files[index].0;
        let img = decode_image(path, 3)?;
        if img.width.min(img.height) < self.min_side {
            return Err(Error::Msg(format!(
                "{}: image too small: {}×{} px, the shorter side must be at least {} px",
                path.display(),
                img.width,
                img.height,
                self.min_side
            )));
        }
        Ok(img)
    }
    fn describe(&self, index: usize) -> String {
        self.files[index].0.display().to_string()
    }
}
