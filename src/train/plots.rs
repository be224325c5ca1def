//! The PNG charts `engine train` keeps in its run folder, redrawn from `metrics.jsonl` after every
//! epoch (so a resumed run's charts cover the whole run): `loss.png` (per-step and per-epoch training
//! loss), `accuracy.png` (validation top-1 and top-5 per epoch), `lr.png` (learning rate per step).

use crate::viz::{draw_line_chart, jsonl, Chart, Series};
use crate::Result;
use std::path::Path;

/// Redraws the three charts of a run folder from its `metrics.jsonl`.
pub fn write_training_plots(out_dir: &Path) -> Result<()> {
    let records = jsonl::read_records(&out_dir.join("metrics.jsonl"))?;
    // Steps per epoch, to draw per-epoch points on the step axis.
    let steps = jsonl::series(&records, "step", "step", "epoch", "");
    let epochs = jsonl::series(&records, "epoch", "metrics/epoch", "metrics/train_loss", "");
    let last_step_of = |epoch: f64| {
        steps
            .points
            .iter()
            .filter(|&&(_, e)| e <= epoch)
            .map(|&(s, _)| s)
            .fold(f64::NAN, f64::max)
    };
    let epoch_loss = Series {
        label: "epoch mean".into(),
        points: epochs
            .points
            .iter()
            .map(|&(e, l)| (last_step_of(e), l))
            .collect(),
    };
    draw_line_chart(
        &out_dir.join("loss.png"),
        &Chart {
            title: "training loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![
                jsonl::series(&records, "step", "step", "loss", "step"),
                epoch_loss,
            ],
            log_y: false,
        },
    )?;
    draw_line_chart(
        &out_dir.join("accuracy.png"),
        &Chart {
            title: "validation accuracy".into(),
            x_label: "epoch".into(),
            y_label: "%".into(),
            series: vec![
                jsonl::series(&records, "epoch", "metrics/epoch", "metrics/top1", "top-1"),
                jsonl::series(&records, "epoch", "metrics/epoch", "metrics/top5", "top-5"),
            ],
            log_y: false,
        },
    )?;
    draw_line_chart(
        &out_dir.join("lr.png"),
        &Chart {
            title: "learning rate".into(),
            x_label: "step".into(),
            y_label: "lr".into(),
            series: vec![jsonl::series(&records, "step", "step", "lr", "lr")],
            log_y: false,
        },
    )
}
