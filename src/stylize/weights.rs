//! Where the AdaIN weights are found when no path is given (`engine stylize`, `shape-bias`,
//! `train-decoder` without `--vgg` / `--decoder`, pix2pix's `--perceptual vgg`): `$ENGINE_ADAIN_DIR`
//! (unless empty), else the copy that `scripts/setup.sh install_adain_weights` puts in this source
//! tree's `.toolchain/adain/` (naoto0804/pytorch-AdaIN's `vgg_normalised.pth` and `decoder.pth`,
//! converted to `vgg_normalised.safetensors` and `decoder.safetensors`). A path given on the command
//! line always wins; a missing file is an error that says how to get it.

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
