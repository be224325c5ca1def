//! Several datasets with the same classes joined into one (ImageNet + Stylized-ImageNet, or several
//! folder roots). Index `i` runs through the parts in order; the loader's shuffle then samples
//! uniformly over the union.

use super::{Dataset, Image};
use crate::{Error, Result};
use std::sync::Arc;

pub struct ConcatDataset {
    parts: Vec<Arc<dyn Dataset>>,
    names: Vec<String>,
    /// `starts[k]` is the first index of part k; `starts[parts.len()]` the total length.
    starts: Vec<usize>,
}

impl ConcatDataset {
    /// Joins `(name, dataset)` parts; the names appear in error messages. Every part must have the
    /// first part's class list (same names, same order) and channel count.
    pub fn new(parts: Vec<(String, Arc<dyn Dataset>)>) -> Result<ConcatDataset> {
        let Some((first_name, first)) = parts.first() else {
            return Err(Error::Msg("nothing to join: no datasets given".into()));
        };
        for (name, d) in &parts[1..] {
            if d.class_names() != first.class_names() {
                let (a, b) = (first.class_names(), d.class_names());
                let missing: Vec<&String> = a.iter().filter(|c| !b.contains(c)).collect();
                let extra: Vec<&String> = b.iter().filter(|c| !a.contains(c)).collect();
                let detail = if missing.is_empty() && extra.is_empty() {
                    "the same names in another order".to_string()
                } else {
                    format!("missing {missing:?}, extra {extra:?}")
                };
                return Err(Error::Msg(format!(
                    "class mismatch: {name} has {} classes and {first_name} {}: {name} has {detail}",
                    b.len(),
                    a.len()
                )));
            }
            if d.channels() != first.channels() {
                return Err(Error::Msg(format!(
                    "{name} has {} channels and {first_name} {}",
                    d.channels(),
                    first.channels()
                )));
            }
        }
        let mut starts = vec![0];
        for (_, d) in &parts {
            starts.push(starts.last().unwrap() + d.len());
        }
        let (names, parts) = parts.into_iter().unzip();
        Ok(ConcatDataset {
            parts,
            names,
            starts,
        })
    }

    pub fn parts(&self) -> &[Arc<dyn Dataset>] {
        &self.parts
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// (part, index within it) of global index `i`.
    fn locate(&self, i: usize) -> (usize, usize) {
        assert!(i < self.len(), "index {i} out of range ({})", self.len());
        let k = self.starts.partition_point(|&s| s <= i) - 1;
        (k, i - self.starts[k])
    }
}

impl Dataset for ConcatDataset {
    fn len(&self) -> usize {
        *self.starts.last().unwrap()
    }
    fn class_names(&self) -> &[String] {
        self.parts[0].class_names()
    }
    fn channels(&self) -> usize {
        self.parts[0].channels()
    }
    fn label(&self, index: usize) -> usize {
        let (k, i) = self.locate(index);
        self.parts[k].label(i)
    }
    fn get(&self, index: usize) -> Result<Image> {
        let (k, i) = self.locate(index);
        self.parts[k].get(i)
    }
    fn describe(&self, index: usize) -> String {
        let (k, i) = self.locate(index);
        self.parts[k].describe(i)
    }
}
