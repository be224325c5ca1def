//! The PNG charts of a pix2pix run folder, redrawn from its `metrics.jsonl` after every epoch (so a
//! resumed run's charts cover the whole run): `loss_g.png` (G_GAN, G_L1, G_perc per iteration),
//! `loss_d.png` (D_real, D_fake per iteration), `val_l1.png` and `val_psnr.png` (per epoch).

use crate::viz::{draw_line_chart, jsonl, Chart};
use crate::Result;
use std::path::Path;

/// Redraws the four charts of a run folder.
pub fn write_pix2pix_plots(out_dir: &Path) -> Result<()> {
    let records = jsonl::read_records(&out_dir.join("metrics.jsonl"))?;
    let steps = |keys: &[&str]| {
        keys.iter()
            .map(|k| jsonl::series(&records, "step", "iteration", k, k))
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let chart = |title: &str, x: &str, y: &str, series| Chart {
        title: title.into(),
        x_label: x.into(),
        y_label: y.into(),
        series,
        log_y: false,
    };
    draw_line_chart(
        &out_dir.join("loss_g.png"),
        &chart(
            "generator losses (unweighted)",
            "iteration",
            "loss",
            steps(&["G_GAN", "G_L1", "G_perc"]),
        ),
    )?;
    draw_line_chart(
        &out_dir.join("loss_d.png"),
        &chart(
            "discriminator losses",
            "iteration",
            "BCE",
            steps(&["D_real", "D_fake"]),
        ),
    )?;
    for (file, key, title, unit) in [
        (
            "val_l1.png",
            "val_l1",
            "validation L1 ([-1, 1] units)",
            "L1",
        ),
        ("val_psnr.png", "val_psnr", "validation PSNR", "dB"),
    ] {
        draw_line_chart(
            &out_dir.join(file),
            &chart(
                title,
                "epoch",
                unit,
                vec![jsonl::series(&records, "epoch", "epoch", key, key)],
            ),
        )?;
    }
    Ok(())
}
