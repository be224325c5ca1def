//! Curves out of a run's `metrics.jsonl` (one JSON object a line, `"kind"` saying what it is). A
//! resumed run may log a step twice (once before the crash, once after resuming from the last
//! checkpoint); the later record wins, so curves show what the finished run computed.

use super::Series;
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The JSON objects of a JSON-lines file; unparsable lines (a line torn by a crash) are skipped.
pub fn read_records(path: &Path) -> Result<Vec<serde_json::Value>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// A number at a `/`-separated JSON pointer such as `metrics/top1` (without the leading `/`).
fn number(v: &serde_json::Value, pointer: &str) -> Option<f64> {
    v.pointer(&format!("/{pointer}")).and_then(|x| x.as_f64())
}

/// The (x, y) points of records of `kind`, x and y read at JSON pointers, sorted by x, one per x
/// (the last record wins).
pub fn series(records: &[serde_json::Value], kind: &str, x: &str, y: &str, label: &str) -> Series {
    let mut by_x: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
    for r in records.iter().filter(|r| r["kind"] == kind) {
        if let (Some(xv), Some(yv)) = (number(r, x), number(r, y)) {
            // Keyed on x at a millionth's resolution so floats order and dedupe.
            by_x.insert((xv * 1e6).round() as i64, (xv, yv));
        }
    }
    Series {
        label: label.to_string(),
        points: by_x.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_records_replace_earlier_ones_and_other_kinds_are_ignored() {
        let recs: Vec<serde_json::Value> = [
            r#"{"kind":"step","step":2,"loss":5.0}"#,
            r#"{"kind":"step","step":1,"loss":4.0}"#,
            r#"{"kind":"epoch","metrics":{"epoch":1,"top1":50.0}}"#,
            r#"{"kind":"step","step":2,"loss":3.0}"#,
        ]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
        let s = series(&recs, "step", "step", "loss", "train");
        assert_eq!(s.points, vec![(1.0, 4.0), (2.0, 3.0)]);
        let e = series(&recs, "epoch", "metrics/epoch", "metrics/top1", "top-1");
        assert_eq!(e.points, vec![(1.0, 50.0)]);
    }
}
