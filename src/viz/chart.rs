//! Line charts as PNG files (plotters' bitmap backend; text drawn with the DejaVu Sans font that the
//! `dejavu` crate embeds, so no system font is needed). Non-finite points are dropped; an empty chart
//! still produces a valid PNG that says "no data".

use crate::nn::state::write_atomic;
use crate::{Error, Result};
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

/// One curve: a label for the legend and its (x, y) points.
#[derive(Clone, Debug, Default)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// A chart: title, axis labels, curves, and whether the y axis is logarithmic.
#[derive(Clone, Debug, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub series: Vec<Series>,
    pub log_y: bool,
}

const WIDTH: u32 = 800;
const HEIGHT: u32 = 480;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Registration fails only on a malformed font, and the embedded one is known good.
        let _ = plotters::style::register_font(
            "sans-serif",
            FontStyle::Normal,
            dejavu::sans::regular(),
        );
    });
}

fn chart_err(e: impl std::fmt::Display) -> Error {
    Error::Msg(format!("drawing a chart: {e}"))
}

/// Draws `chart` into an RGB8 buffer of `WIDTH`×`HEIGHT`.
fn render(chart: &Chart) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (WIDTH * HEIGHT * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(chart_err)?;
        let keep =
            |&(x, y): &(f64, f64)| x.is_finite() && y.is_finite() && (!chart.log_y || y > 0.0);
        let points: Vec<(f64, f64)> = chart
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied().filter(keep))
            .collect();
        if points.is_empty() {
            root.draw(&Text::new(
                format!("{}: no data", chart.title),
                (20, 20),
                ("sans-serif", 20).into_font(),
            ))
            .map_err(chart_err)?;
            root.present().map_err(chart_err)?;
            drop(root);
            return Ok(buf);
        }
        let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
        for &(x, y) in &points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if x1 <= x0 {
            x1 = x0 + 1.0;
        }
        if y1 <= y0 {
            let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
            y0 -= pad;
            y1 += pad;
        }
        let mut builder = ChartBuilder::on(&root);
        builder
            .caption(&chart.title, ("sans-serif", 22))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70);
        macro_rules! draw {
            ($cc:expr) => {{
                let mut cc = $cc;
                cc.configure_mesh()
                    .x_desc(chart.x_label.as_str())
                    .y_desc(chart.y_label.as_str())
                    .label_style(("sans-serif", 14))
                    .draw()
                    .map_err(chart_err)?;
                for (i, s) in chart.series.iter().enumerate() {
                    let color = PALETTE[i % PALETTE.len()];
                    let pts: Vec<(f64, f64)> = s.points.iter().copied().filter(keep).collect();
                    let style = color.stroke_width(2);
                    if pts.len() == 1 {
                        cc.draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                            .map_err(chart_err)?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| Circle::new((x + 10, y), 4, color.filled()));
                    } else {
                        cc.draw_series(LineSeries::new(pts, style))
                            .map_err(chart_err)?
                            .label(s.label.as_str())
                            .legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                            });
                    }
                }
                cc.configure_series_labels()
                    .background_style(WHITE.mix(0.85))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 14))
                    .draw()
                    .map_err(chart_err)?;
            }};
        }
        if chart.log_y {
            draw!(builder
                .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
                .map_err(chart_err)?);
        } else {
            draw!(builder
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(chart_err)?);
        }
        root.present().map_err(chart_err)?;
    }
    Ok(buf)
}

/// Renders `chart` and writes it to `path` as a PNG, atomically.
pub fn draw_line_chart(path: &Path, chart: &Chart) -> Result<()> {
    let rgb = render(chart)?;
    let png = super::grid::encode_png(WIDTH as usize, HEIGHT as usize, &rgb)?;
    write_atomic(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_valid_pngs_with_the_curve_drawn() {
        let dir = std::env::temp_dir().join(format!("engine-chart-{}", std::process::id()));
        let path = dir.join("loss.png");
        let chart = Chart {
            title: "loss".into(),
            x_label: "step".into(),
            y_label: "loss".into(),
            series: vec![Series {
                label: "train".into(),
                points: (0..50)
                    .map(|i| (i as f64, (-(i as f64) / 10.0).exp()))
                    .collect(),
            }],
            log_y: false,
        };
        draw_line_chart(&path, &chart).unwrap();
        let img = image::open(&path).unwrap().to_rgb8();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        // The first palette colour (the curve) appears, the background dominates.
        let blue = img.pixels().filter(|p| p.0 == [31, 119, 180]).count();
        assert!(blue > 100, "curve pixels: {blue}");
        // Log scale and empty charts render too.
        draw_line_chart(
            &path,
            &Chart {
                log_y: true,
                ..chart.clone()
            },
        )
        .unwrap();
        draw_line_chart(
            &path,
            &Chart {
                series: vec![],
                ..chart
            },
        )
        .unwrap();
        assert!(image::open(&path).is_ok());
        std::fs::remove_dir_all(dir).ok();
    }
}
