//! Where the AdaIN weights are found when no path is given (`engine stylize`, `shape-bias`,
//! `train-decoder` without `--vgg` / `--decoder`, pix2pix's `--perceptual vgg`): `$ENGINE_ADAIN_DIR`
//! (unless empty), else the copy that `scripts/setup.sh install_adain_weights` puts in this source
//! tree's `.toolchain/adain/` (naoto0804/pytorch-AdaIN's `vgg_normalised.pth` and `decoder.pth`,
//! converted to `vgg_normalised.safetensors` and `decoder.safetensors`). A path given on the command
//! line always wins; a missing file is an error that says how to get it. `content_fingerprint`
//! names a weight file by its bytes, for jobs that record what made their outputs.

use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// The folder searched for the installed weights.
pub fn installed_dir() -> PathBuf {
    match std::env::var_os("ENGINE_ADAIN_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".toolchain/adain"),
    }
}

/// `given`, or the installed `<stem>.safetensors` (`stem`: `vgg_normalised` or `decoder`), saying
/// on stderr which file it took. `how` says how a user gives the file (e.g. `--vgg FILE`), for the
/// error when there is none.
pub fn resolve(given: Option<&Path>, stem: &str, how: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return Ok(p.to_path_buf());
    }
    let path = installed_dir().join(format!("{stem}.safetensors"));
    if path.is_file() {
        eprintln!("{stem}: {} (the installed AdaIN weights)", path.display());
        return Ok(path);
    }
    Err(Error::Msg(format!(
        "no {stem} weights given and none installed at {}: run `scripts/setup.sh \
         install_adain_weights` (fetches and converts naoto0804/pytorch-AdaIN's {stem}.pth), set \
         ENGINE_ADAIN_DIR, or give {how} (a .pth converted by \
         `python3 tools/convert_adain_weights.py {stem}.pth {stem}.safetensors`)",
        path.display()
    )))
}

/// What identifies a weight file's contents in a job's recorded settings: its size and a 64-bit
/// FNV-1a hash of its bytes. The same bytes under another name or through a symlinked folder give
/// the same string; a file rewritten in place (a decoder trained further) gives another.
pub fn content_fingerprint(path: &Path) -> Result<String> {
    let io_err = |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let mut hash = super::files::Fnv1a::new();
    let len = std::io::copy(
        &mut std::io::BufReader::with_capacity(1 << 20, file),
        &mut hash,
    )
    .map_err(io_err)?;
    Ok(format!("{len} bytes, fnv1a64 {:016x}", hash.finish()))
}

/// The identity `content_fingerprint` gives an encoder/decoder pair, as jobs record it.
pub fn pair_identity(vgg: &Path, decoder: &Path) -> Result<String> {
    Ok(format!(
        "encoder {}; decoder {}",
        content_fingerprint(vgg)?,
        content_fingerprint(decoder)?
    ))
}

/// The encoder and decoder weights (`--vgg`, `--decoder`): [`resolve`] for each.
pub fn resolve_pair(vgg: Option<&Path>, decoder: Option<&Path>) -> Result<(PathBuf, PathBuf)> {
    Ok((
        resolve(vgg, "vgg_normalised", "--vgg FILE")?,
        resolve(decoder, "decoder", "--decoder FILE")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_follows_the_bytes_not_the_path() {
        let dir = std::env::temp_dir().join(format!("engine-weights-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        // Over a megabyte, so the hash runs across read boundaries.
        let bytes: Vec<u8> = (0..(1 << 20) + 4099u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        std::fs::write(dir.join("a.safetensors"), &bytes).unwrap();
        std::fs::write(dir.join("b.safetensors"), &bytes).unwrap();
        let a = content_fingerprint(&dir.join("a.safetensors")).unwrap();
        assert_eq!(a, content_fingerprint(&dir.join("b.safetensors")).unwrap());
        assert!(
            a.starts_with(&format!("{} bytes, fnv1a64 ", bytes.len())),
            "{a}"
        );
        // The reference: FNV-1a 64 of all the bytes at once.
        let want = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        assert!(a.ends_with(&format!("{want:016x}")), "{a}");
        let mut changed = bytes.clone();
        *changed.last_mut().unwrap() ^= 1;
        std::fs::write(dir.join("b.safetensors"), &changed).unwrap();
        assert_ne!(a, content_fingerprint(&dir.join("b.safetensors")).unwrap());
        let e = content_fingerprint(&dir.join("missing.safetensors")).unwrap_err();
        assert!(e.to_string().contains("missing.safetensors"), "{e}");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_given_path_wins_and_a_missing_install_says_how_to_get_it() {
        let given = Path::new("/somewhere/my_vgg.safetensors");
        assert_eq!(
            resolve(Some(given), "vgg_normalised", "--vgg").unwrap(),
            given
        );
        // A stem that is never installed: the error names the flag, the folder and the setup step.
        let err = resolve(None, "no_such_weights", "--vgg")
            .unwrap_err()
            .to_string();
        for part in [
            "--vgg",
            "install_adain_weights",
            "ENGINE_ADAIN_DIR",
            "no_such_weights.pth",
        ] {
            assert!(err.contains(part), "{part} missing from: {err}");
        }
    }
}
