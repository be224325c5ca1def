//! Pictures a run leaves behind: PNG line charts of its curves (`chart`, fed from metrics.jsonl by
//! `jsonl`) and PNG grids of images
//! such as (content, style, result) or (input, output, target) rows (`grid`). Every file is written
//! atomically (encoded in memory, then `nn::state::write_atomic`), so a crash never leaves a torn PNG.

pub mod chart;
pub mod grid;
pub mod jsonl;

pub use chart::{draw_line_chart, Chart, Series};
pub use grid::{encode_png, save_png, tensor_to_rgb8, ImageGrid, PixelRange, Rgb8, GRID_MIN_CELL};
