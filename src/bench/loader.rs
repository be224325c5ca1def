//! `engine bench-loader`: how fast the training input pipeline makes batches on this machine —
//! decode (an IDX array copy, a CIFAR record, or a JPEG/PNG file read and decoded) plus the recipe's
//! training augmentation plus batching (and mixup's blend when the recipe has it) — in images/s for
//! each thread count asked, and per core. It runs `Loader::make_batch`, the function the trainer's
//! producer thread calls, inside a rayon pool of the given size, so the numbers are the loader's own
//! with no model running beside it. A training step needs the loader to outpace it: compare the
//! per-core figure with the step's images/s to see how many cores the input pipeline needs.
//! Small datasets are cycled (the same file decoded again), which the OS page cache makes cheap; the
//! decode itself is always redone, as in training. Each row also times decoding alone over the same
//! draws, so the split between decode and augmentation shows.

use crate::data::{Dataset, Loader, LoaderConfig};
use crate::train::trainer::train_dataset;
use crate::train::TrainConfig;
use crate::{Error, Result};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Instant;

/// Times at least `batches` batches and at least `min_seconds` (after one untimed batch) for each
/// entry of `threads` (`engine bench-loader` asks for 2 s, so that fast pipelines are not timed on
/// a handful of milliseconds).
pub fn bench_loader(
    cfg: &TrainConfig,
    batches: usize,
    min_seconds: f64,
    threads: &[usize],
) -> Result<Value> {
    let dataset: Arc<dyn Dataset> = train_dataset(cfg)?;
    if dataset.is_empty() {
        return Err(Error::Msg(format!(
            "no training images in {}",
            cfg.data.describe()
        )));
    }
    let batch_size = cfg.batch_size;
    let loader = Loader::new(
        dataset.clone(),
        LoaderConfig {
            batch_size,
            shuffle: true,
            drop_last: false,
            seed: cfg.seed,
            augment: cfg.augment.clone(),
            mixup_alpha: cfg.mixup_alpha,
            mixup_on_host: true,
            prefetch: 1,
        },
    )?;
    // One epoch's shuffled order, cycled; batch b is drawn as batch 0 of "epoch" b, so every batch
    // gets its own augmentation and mixup draws.
    let epoch_order = loader.order(0);
    let batch_indices = |b: usize| -> Vec<usize> {
        (0..batch_size)
            .map(|k| epoch_order[(b * batch_size + k) % epoch_order.len()])
            .collect()
    };
    let mut rows = Vec::new();
    for &t in threads {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(t)
            .build()
            .map_err(|e| Error::Msg(format!("cannot start a pool of {t} threads: {e}")))?;
        let (seconds, images, skipped) = pool.install(|| {
            let _ = loader.make_batch(0, &batch_indices(0), 0);
            let start = Instant::now();
            let (mut images, mut skipped, mut b) = (0, 0, 1);
            while b <= batches || start.elapsed().as_secs_f64() < min_seconds {
                let batch = loader.make_batch(b as u64, &batch_indices(b), 0);
                images += batch.labels.len();
                skipped += batch.skipped.len();
                b += 1;
            }
            (start.elapsed().as_secs_f64(), images, skipped)
        });
        // Decoding alone (no augmentation, no batching) over the same draws, for the split.
        let drawn: Vec<usize> = (1..=images.div_ceil(batch_size).max(1))
            .flat_map(batch_indices)
            .collect();
        let decode_seconds = pool.install(|| {
            use rayon::prelude::*;
            let start = Instant::now();
            drawn.par_iter().for_each(|&i| {
                let _ = dataset.get(i);
            });
            start.elapsed().as_secs_f64()
        });
        let decode_ips = drawn.len() as f64 / decode_seconds.max(1e-9);
        let ips = images as f64 / seconds.max(1e-9);
        eprintln!(
            "bench-loader: {t} thread(s): {ips:.0} images/s ({:.0} per core; decoding alone {:.0} per core), {images} images in {seconds:.2} s",
            ips / t as f64,
            decode_ips / t as f64
        );
        rows.push(json!({"threads": t, "images": images, "seconds": seconds,
            "images_per_s": ips, "images_per_s_per_core": ips / t as f64,
            "decode_only_images_per_s_per_core": decode_ips / t as f64, "skipped": skipped}));
    }
    Ok(json!({
        "kind": "bench-loader",
        "status": "ok",
        "data": cfg.data.describe(),
        "dataset_images": dataset.len(),
        "recipe": cfg.recipe.name(),
        "batch_size": batch_size,
        "augment": serde_json::to_value(&cfg.augment).expect("augment config serialises"),
        "mixup_alpha": cfg.mixup_alpha,
        "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "rows": rows,
    }))
}
