//! Which files a stylize job reads and writes, and which style each content image gets.
//!
//! Invariants:
//! - Files are named by their path relative to their root, with `/` between components
//!   (`n01440764/n01440764_10026.JPEG`); listings are sorted by that name, recurse into
//!   sub-folders, skip hidden entries and take the image extensions of `data::folder`.
//! - An output keeps its content's relative path with the output format's extension, so the class
//!   folders of the content tree are mirrored.
//! - The style of a content image is a pure function of (seed, its relative path, the usable style
//!   list): `StyleDraw` is a ChaCha8 stream seeded from an FNV-1a hash of the path mixed with the
//!   seed, and index draws are unbiased by rejection on `next_u64` (no dependence on `rand`'s
//!   range algorithms). The job order, batch size, thread timing or a resumed run change nothing.

use crate::data::folder::is_image_file;
use crate::{Error, Result};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// An image file under a root: its name relative to the root and its full path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageFile {
    pub rel: String,
    pub path: PathBuf,
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    }
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<ImageFile>) -> Result<()> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, out)?;
        } else if is_image_file(&path) {
            let rel = path.strip_prefix(root).expect("listed under the root");
            let rel: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(ImageFile {
                rel: rel.join("/"),
                path,
            });
        }
    }
    Ok(())
}

/// The image files under `root` (recursively), sorted by relative name. `what` names the folder
/// in errors ("content", "style").
pub fn list_images(root: &Path, what: &str, hint: &str) -> Result<Vec<ImageFile>> {
    if !root.is_dir() {
        let state = if root.exists() {
            "is not a folder"
        } else {
            "does not exist"
        };
        return Err(Error::Msg(format!(
            "{what} folder {} {state} ({hint})",
            root.display()
        )));
    }
    let mut out = Vec::new();
    walk(root, root, &mut out)?;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    if out.is_empty() {
        return Err(Error::Msg(format!(
            "{what} folder {} has no images (looked for {} files, in sub-folders too)",
            root.display(),
            crate::data::folder::IMAGE_EXTENSIONS.join(", ")
        )));
    }
    Ok(out)
}

/// The output name of content `rel`: the same relative path with extension `ext`.
pub fn output_rel(rel: &str, ext: &str) -> String {
    let (dir, file) = match rel.rfind('/') {
        Some(i) => (&rel[..=i], &rel[i + 1..]),
        None => ("", rel),
    };
    let stem = match file.rfind('.') {
        Some(i) if i > 0 => &file[..i],
        _ => file,
    };
    format!("{dir}{stem}.{ext}")
}

/// FNV-1a, 64 bit, fed in pieces: a hash that no Rust or platform version changes, for names
/// (the style draw) and for fingerprints of files (style pools, weights).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Fnv1a(u64);

impl Fnv1a {
    pub(crate) fn new() -> Fnv1a {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }

    pub(crate) fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub(crate) fn finish(self) -> u64 {
        self.0
    }
}

/// So a file can be hashed with `std::io::copy` (which retries interrupted reads).
impl std::io::Write for Fnv1a {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        Fnv1a::write(self, bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv1a::new();
    h.write(bytes);
    h.finish()
}

/// SplitMix64's finaliser: spreads the seed's bits before it meets the hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The style draws of one content image: a deterministic sequence of indices into the style list.
/// The first is its style; later ones replace a style that turns out to be unreadable.
pub struct StyleDraw(ChaCha8Rng);

impl StyleDraw {
    pub fn new(seed: u64, content_rel: &str) -> StyleDraw {
        StyleDraw(ChaCha8Rng::seed_from_u64(
            mix(seed) ^ fnv1a(content_rel.as_bytes()),
        ))
    }

    /// The next index in `0..n` (`n` ≥ 1), uniformly.
    pub fn next_index(&mut self, n: usize) -> usize {
        assert!(n > 0, "drawing from an empty style list");
        let n = n as u64;
        let zone = u64::MAX - u64::MAX % n;
        loop {
            let v = self.0.next_u64();
            if v < zone {
                return (v % n) as usize;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_mirror_the_content_tree() {
        assert_eq!(output_rel("n01/a.JPEG", "png"), "n01/a.png");
        assert_eq!(output_rel("a.b.jpg", "jpg"), "a.b.jpg");
        assert_eq!(output_rel("x/y/.z", "png"), "x/y/.z.png");
        assert_eq!(output_rel("noext", "png"), "noext.png");
    }

    #[test]
    fn draws_depend_on_seed_and_name_only() {
        let first = |seed, rel| StyleDraw::new(seed, rel).next_index(1000);
        assert_eq!(first(0, "a/b.jpg"), first(0, "a/b.jpg"));
        let names: Vec<String> = (0..64).map(|i| format!("c/{i}.jpg")).collect();
        let a: Vec<usize> = names.iter().map(|n| first(0, n)).collect();
        let b: Vec<usize> = names.iter().map(|n| first(1, n)).collect();
        assert_ne!(a, b, "the seed matters");
        let distinct: std::collections::BTreeSet<_> = a.iter().collect();
        assert!(distinct.len() > 50, "spread over the styles: {distinct:?}");
        let mut d = StyleDraw::new(3, "x");
        assert!((0..100).all(|_| d.next_index(3) < 3));
        // Pinned: a change here changes every stylized dataset's style assignment.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
