//! Metrics: top-k accuracy from logits, and a JSON-lines log (one object per step or epoch) that is
//! appended and flushed line by line, so a crash loses at most the line being written.

use crate::{Result, Tensor};
use std::io::Write;
use std::path::Path;

/// Number of rows whose label is among the `k` largest logits, for each k in `ks`.
pub fn topk_correct(logits: &Tensor, labels: &[usize], ks: &[usize]) -> Result<Vec<usize>> {
    let (n, classes) = logits.shape().dims2("topk")?;
    let v = logits.to_vec::<f32>()?;
    let mut hits = vec![0; ks.len()];
    for i in 0..n {
        let row = &v[i * classes..(i + 1) * classes];
        let target = row[labels[i]];
        // Rank = number of classes scoring strictly higher (ties favour the label).
        let rank = row.iter().filter(|&&x| x > target).count();
        for (h, &k) in hits.iter_mut().zip(ks) {
            if rank < k {
                *h += 1;
            }
        }
    }
    Ok(hits)
}

pub struct JsonLog {
    file: std::fs::File,
}

impl JsonLog {
    pub fn append(path: &Path) -> Result<JsonLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| crate::Error::Io {
                path: path.display().to_string(),
                source: e,
            })?;
        Ok(JsonLog { file })
    }
    pub fn write(&mut self, value: &serde_json::Value) -> Result<()> {
        let mut line = serde_json::to_string(value).expect("json");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(|e| crate::Error::Io {
                path: "metrics log".into(),
                source: e,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topk_counts_ranks() {
        let logits = Tensor::from_vec(
            vec![0.1f32, 0.5, 0.4, 0.9, 0.0, 0.2],
            [2, 3],
            crate::Device::Cpu,
        )
        .unwrap();
        assert_eq!(topk_correct(&logits, &[1, 2], &[1, 2]).unwrap(), vec![1, 2]);
        assert_eq!(topk_correct(&logits, &[0, 1], &[1, 2]).unwrap(), vec![0, 0]);
    }
}
