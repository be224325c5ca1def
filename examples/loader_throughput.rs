//! Loader throughput: decoded + augmented images per second, in total and per core, on real image
//! files, with the ImageNet training augmentation (224 px random resized crop, flip, jitter 0.4,
//! PCA lighting 0.1, normalisation).
//!
//! ```text
//! cargo run --release --example loader_throughput -- [--jpeg] [--images N] [--threads 1,2] DIR_OR_FILE...
//! ```
//!
//! Every image file under the given folders is used (repeated to reach `--images`); `--jpeg`
//! re-encodes them as quality-90 JPEGs first, as ImageNet ships. For example, with scikit-image's
//! bundled photos (`pip install scikit-image`):
//! `cargo run --release --example loader_throughput -- --jpeg $(python3 -c 'import skimage,os;print(os.path.dirname(skimage.__file__)+"/data")')`

use engine::data::folder::{decode_image, is_image_file};
use engine::data::{Dataset, ImageFolder, Loader, LoaderConfig};
use engine::train::{Recipe, TrainConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

fn collect(p: &Path, out: &mut Vec<PathBuf>) {
    if p.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            collect(&e, out);
        }
    } else if is_image_file(p) {
        out.push(p.to_path_buf());
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (mut roots, mut jpeg, mut images, mut batch) = (Vec::new(), false, 512usize, 64usize);
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut threads: Vec<usize> = vec![1, all];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jpeg" => jpeg = true,
            "--images" => images = args.next().ok_or("--images N")?.parse()?,
            "--batch" => batch = args.next().ok_or("--batch N")?.parse()?,
            "--threads" => {
                threads = args
                    .next()
                    .ok_or("--threads 1,2,…")?
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<_, _>>()?
            }
            _ => roots.push(PathBuf::from(a)),
        }
    }
    threads.dedup();
    let mut files = Vec::new();
    for r in &roots {
        collect(r, &mut files);
    }
    // Only files that decode as RGB photos of a useful size (skips masks, tiny icons, …).
    files.retain(|p| decode_image(p, 3).is_ok_and(|i| i.width.min(i.height) >= 64));
    if files.is_empty() {
        eprintln!("no usable images given; usage: loader_throughput [--jpeg] [--images N] [--threads 1,2] DIR_OR_FILE...");
        std::process::exit(2);
    }
    let tmp = std::env::temp_dir().join(format!("loader-throughput-{}", std::process::id()));
    if jpeg {
        std::fs::create_dir_all(&tmp)?;
        let mut out = Vec::new();
        for (i, p) in files.iter().enumerate() {
            let img = image::open(p)?.into_rgb8();
            let q = tmp.join(format!("{i:03}.JPEG"));
            let mut w = std::io::BufWriter::new(std::fs::File::create(&q)?);
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut w, 90).encode_image(&img)?;
            out.push(q);
        }
        files = out;
    }
    let mut pixels = 0usize;
    for p in &files {
        let i = decode_image(p, 3)?;
        pixels += i.width * i.height;
    }
    println!(
        "{} distinct {} files, mean {:.0} kpixel; {images} samples per run, batch {batch}, 224 px ImageNet training augmentation",
        files.len(),
        if jpeg { "JPEG" } else { "image" },
        pixels as f64 / files.len() as f64 / 1000.0
    );
    let list: Vec<(PathBuf, usize)> = (0..images)
        .map(|i| (files[i % files.len()].clone(), 0))
        .collect();
    let ds: Arc<dyn Dataset> = Arc::new(ImageFolder::from_files(list, vec!["photos".into()])?);
    let cfg = TrainConfig::imagenet(Recipe::Baseline, vec![], vec![], 50, "unused".into());
    let loader = Arc::new(Loader::new(
        ds.clone(),
        LoaderConfig {
            batch_size: batch,
            shuffle: true,
            drop_last: false,
            seed: 0,
            augment: cfg.augment.clone(),
            mixup_alpha: 0.0,
            prefetch: 3,
        },
    )?);
    let nb = loader.batches_per_epoch();
    let order = loader.order(0);
    // Warm the page cache.
    let _ = loader.make_batch(0, &order, 0);
    println!(
        "{:>8} {:>14} {:>16} {:>16}",
        "threads", "images/s", "images/s/core", "decode-only/core"
    );
    for &t in &threads {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(t).build()?;
        let (n, secs) = pool.install(|| {
            let t0 = Instant::now();
            let n: usize = (0..nb)
                .map(|b| loader.make_batch(0, &order, b).labels.len())
                .sum();
            (n, t0.elapsed().as_secs_f64())
        });
        let decode = pool.install(|| {
            use rayon::prelude::*;
            let t0 = Instant::now();
            (0..images).into_par_iter().for_each(|i| {
                ds.get(i).unwrap();
            });
            images as f64 / t0.elapsed().as_secs_f64()
        });
        println!(
            "{t:>8} {:>14.1} {:>16.1} {:>16.1}",
            n as f64 / secs,
            n as f64 / secs / t as f64,
            decode / t as f64
        );
    }
    // The prefetching loader as training uses it (global rayon pool, background producer).
    let t0 = Instant::now();
    let n: usize = loader.epoch(1, 0).map(|b| b.labels.len()).sum();
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "prefetching loader (Loader::epoch, {} rayon threads): {:.1} images/s, {:.1} per core",
        rayon::current_num_threads(),
        n as f64 / secs,
        n as f64 / secs / rayon::current_num_threads() as f64
    );
    std::fs::remove_dir_all(&tmp).ok();
    Ok(())
}
