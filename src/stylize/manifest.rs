//! The record of a stylize job beside its outputs: `manifest.jsonl` (or `manifest.csv`), one line
//! per stylized image — content, style, output (each relative to its folder) and α — appended as
//! batches finish, plus a summary line at the end of every run; and `skipped.txt`, the files the
//! last run could not use.
//!
//! Invariants:
//! - Lines are appended and synced after each batch, after its images were written, so a crash
//!   loses at most the lines of the images written last; `Manifest::open` drops a torn last line
//!   and returns the contents already listed, so the job can add the lines of outputs that exist
//!   but are missing (recomputing their style, which is deterministic). An output made again
//!   (deleted, then resumed) adds no line unless its style or name changed (a changed style
//!   folder): the last line of a content is the one that holds.
//! - JSON lines have `"kind": "image"` or `"kind": "summary"`. The CSV has the header
//!   `content,style,output,alpha`, RFC 4180 quoting, and its summary lines start with `#`.
//! - `skipped.txt` (one `path<TAB>reason` a line) is rewritten atomically by every run.

use super::{Skipped, StylizeConfig, StylizeReport};
use crate::nn::state::write_atomic;
use crate::{Error, Result};
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// What a manifest lists: content → (style, output).
pub type Listed = HashMap<String, (String, String)>;

/// The manifest's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ManifestFormat {
    Jsonl,
    Csv,
}

impl ManifestFormat {
    pub fn file_name(self) -> &'static str {
        match self {
            ManifestFormat::Jsonl => "manifest.jsonl",
            ManifestFormat::Csv => "manifest.csv",
        }
    }
}

/// One stylized image.
pub struct Entry<'a> {
    pub content: &'a str,
    pub style: &'a str,
    pub output: &'a str,
    pub alpha: f64,
}

const CSV_HEADER: &str = "content,style,output,alpha\n";

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The fields of a CSV line (unquoted).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        let field = fields.last_mut().expect("one field at least");
        match (quoted, c) {
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => fields.push(String::new()),
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            _ => field.push(c),
        }
    }
    fields
}

/// An open manifest, appended to.
pub struct Manifest {
    path: PathBuf,
    file: std::fs::File,
    format: ManifestFormat,
}

impl Manifest {
    /// Opens (or creates) the manifest in `out_dir`, cutting a torn last line; returns it with the
    /// contents it already lists (the last line of each), as content → (style, output).
    pub fn open(out_dir: &Path, format: ManifestFormat) -> Result<(Manifest, Listed)> {
        let path = out_dir.join(format.file_name());
        let io = |e: std::io::Error| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(|e| {
            Error::Msg(format!(
                "{}: cannot read the manifest ({e}); move it away to start a new one",
                path.display()
            ))
        })?;
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        if whole < text.len() {
            file.set_len(whole as u64).map_err(io)?;
            text.truncate(whole);
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        let mut listed = Listed::new();
        for line in text.lines().filter(|l| !l.is_empty()) {
            match format {
                ManifestFormat::Jsonl => {
                    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| {
                        Error::Msg(format!("{}: not a JSON line: {e}: {line}", path.display()))
                    })?;
                    let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
                    if v["kind"] == "image" {
                        listed.insert(field("content"), (field("style"), field("output")));
                    }
                }
                ManifestFormat::Csv => {
                    if !line.starts_with('#') && line != CSV_HEADER.trim_end() {
                        let mut f = csv_fields(line).into_iter();
                        let mut next = || f.next().unwrap_or_default();
                        let (content, style, output) = (next(), next(), next());
                        listed.insert(content, (style, output));
                    }
                }
            }
        }
        let mut m = Manifest { path, file, format };
        if text.is_empty() && format == ManifestFormat::Csv {
            m.write(CSV_HEADER)?;
        }
        Ok((m, listed))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&mut self, text: &str) -> Result<()> {
        let io = |e: std::io::Error| Error::Io {
            path: self.path.display().to_string(),
            source: e,
        };
        self.file.write_all(text.as_bytes()).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Appends the lines of `entries` (one write, then synced).
    pub fn append(&mut self, entries: &[Entry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for e in entries {
            match self.format {
                ManifestFormat::Jsonl => {
                    text += &serde_json::json!({"kind": "image", "content": e.content, "style": e.style, "output": e.output, "alpha": e.alpha}).to_string();
                }
                ManifestFormat::Csv => {
                    text += &format!(
                        "{},{},{},{}",
                        csv_field(e.content),
                        csv_field(e.style),
                        csv_field(e.output),
                        e.alpha
                    );
                }
            }
            text.push('\n');
        }
        self.write(&text)
    }

    /// Appends the summary line of a run.
    pub fn summary(&mut self, r: &StylizeReport, cfg: &StylizeConfig) -> Result<()> {
        let line = match self.format {
            ManifestFormat::Jsonl => serde_json::json!({
                "kind": "summary",
                "done": r.done,
                "skipped_existing": r.skipped_existing,
                "skipped_bad": r.skipped_bad.len(),
                "listed_again": r.recorded,
                "contents": r.contents,
                "styles": r.styles,
                "excluded_styles": r.excluded_styles.len(),
                "interrupted": r.interrupted,
                "seconds": r.seconds,
                "images_per_s": r.images_per_s,
                "config": cfg,
            })
            .to_string(),
            ManifestFormat::Csv => format!(
                "# summary: {} done, {} skipped (output exists), {} skipped (bad), {} listed \
                 again, {:.2} images/s{}; seed {}, content {}, styles {}",
                r.done,
                r.skipped_existing,
                r.skipped_bad.len(),
                r.recorded,
                r.images_per_s,
                if r.interrupted { ", interrupted" } else { "" },
                cfg.seed,
                cfg.content_dir.display(),
                cfg.styles_dir.display(),
            ),
        };
        self.write(&(line + "\n"))
    }
}

/// Rewrites `<out_dir>/skipped.txt` with `skipped` (atomically); returns its path.
pub fn write_skipped(out_dir: &Path, skipped: &[&Skipped]) -> Result<PathBuf> {
    let path = out_dir.join("skipped.txt");
    let text: String = skipped
        .iter()
        .map(|s| format!("{}\t{}\n", s.path.display(), s.reason.replace('\n', " ")))
        .collect();
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quoting_round_trips() {
        for name in ["plain/a.jpg", "with,comma.jpg", "q\"uote.jpg", ""] {
            let line = format!("{},x,{},1", csv_field(name), csv_field(name));
            assert_eq!(csv_fields(&line), [name, "x", name, "1"], "{line}");
        }
    }

    #[test]
    fn open_cuts_a_torn_line_and_lists_contents() {
        let dir = std::env::temp_dir().join(format!("engine-manifest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("manifest.jsonl");
        std::fs::write(
            &path,
            "{\"kind\":\"image\",\"content\":\"a/1.jpg\"}\n{\"kind\":\"summary\"}\n{\"kind\":\"ima",
        )
        .unwrap();
        let (mut m, listed) = Manifest::open(&dir, ManifestFormat::Jsonl).unwrap();
        assert_eq!(listed.into_keys().collect::<Vec<_>>(), ["a/1.jpg"]);
        m.append(&[Entry {
            content: "b.jpg",
            style: "s.jpg",
            output: "b.png",
            alpha: 1.0,
        }])
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(text
            .lines()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
        let (_, csv_listed) = Manifest::open(&dir, ManifestFormat::Csv).unwrap();
        assert!(csv_listed.is_empty());
        let csv = std::fs::read_to_string(dir.join("manifest.csv")).unwrap();
        assert_eq!(csv, CSV_HEADER);
        std::fs::remove_dir_all(dir).ok();
    }
}
