//! Batching with prefetch. `Loader::epoch` starts a producer thread that decodes and augments samples
//! in parallel (rayon) and keeps up to `prefetch` batches ready in a bounded channel while the model
//! trains. Everything random is derived from (seed, epoch, batch or sample index) — the shuffle, each
//! sample's augmentation, mixup's λ and permutation — so a batch is the same whichever thread made it
//! and a run resumed at batch k sees exactly the batches an uninterrupted run would.
//! Samples that fail to decode are skipped and named in `Batch::skipped`.

use super::augment::{self, AugmentConfig};
use super::Dataset;
use crate::{Error, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use std::sync::mpsc;
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct LoaderConfig {
    pub batch_size: usize,
    pub shuffle: bool,
    pub drop_last: bool,
    pub seed: u64,
    pub augment: AugmentConfig,
    /// Mixup's Beta(α, α) parameter; 0 turns mixup off.
    pub mixup_alpha: f64,
    /// Blend mixup's images on the host (the loader's threads). When false the loader only draws λ
    /// and the permutation and leaves the images as they are, for a consumer that blends them on its
    /// device (`Tensor::mixup`, one kernel over images and targets).
    pub mixup_on_host: bool,
    /// Batches kept ready ahead of the consumer.
    pub prefetch: usize,
}

/// Mixup of a batch: `x = λ·x + (1 − λ)·x[perm]`, targets blended the same way.
#[derive(Clone, Debug)]
pub struct Mixup {
    pub lambda: f64,
    pub perm: Vec<usize>,
}

#[derive(Clone, Debug)]
pub struct Batch {
    /// `[N, C, H, W]` f32, normalised.
    pub images: Vec<f32>,
    pub dims: [usize; 4],
    pub labels: Vec<usize>,
    pub mixup: Option<Mixup>,
    /// Descriptions of samples that failed to decode, with the error.
    pub skipped: Vec<String>,
    /// Index of this batch within its epoch.
    pub index: usize,
}

impl Batch {
    /// Label-smoothed one-hot targets `[N, K]`, without the mixup blend (for `Tensor::mixup`).
    pub fn smoothed_targets(&self, classes: usize, smoothing: f64) -> Vec<f32> {
        let off = (smoothing / classes as f64) as f32;
        let on = (1.0 - smoothing) as f32 + off;
        let mut t = vec![off; self.labels.len() * classes];
        for (row, &label) in t.chunks_mut(classes).zip(&self.labels) {
            row[label] = on;
        }
        t
    }

    /// Soft targets `[N, K]`: label smoothing ε, then the mixup blend.
    pub fn soft_targets(&self, classes: usize, smoothing: f64) -> Vec<f32> {
        let n = self.labels.len();
        let off = (smoothing / classes as f64) as f32;
        let on = (1.0 - smoothing) as f32 + off;
        let mut t = vec![off; n * classes];
        let (lam, perm) = match &self.mixup {
            Some(m) => (m.lambda as f32, Some(&m.perm)),
            None => (1.0, None),
        };
        for i in 0..n {
            let row = &mut t[i * classes..(i + 1) * classes];
            row.iter_mut().for_each(|v| *v *= lam);
            row[self.labels[i]] += lam * (on - off);
            if let Some(p) = perm {
                let j = p[i];
                row.iter_mut().for_each(|v| *v += (1.0 - lam) * off);
                row[self.labels[j]] += (1.0 - lam) * (on - off);
            }
        }
        t
    }
}

/// A seed derived from `parts` (SplitMix64 over them): well-spread seeds for nearby indices, so
/// that anything random can be a pure function of (seed, epoch, index, purpose).
pub fn mix_seed(parts: &[u64]) -> u64 {
    let mut z = 0x9E37_79B9_7F4A_7C15u64;
    for &p in parts {
        z = z.wrapping_add(p).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
    }
    z
}

pub struct Loader {
    pub dataset: Arc<dyn Dataset>,
    pub config: LoaderConfig,
}

impl Loader {
    pub fn new(dataset: Arc<dyn Dataset>, config: LoaderConfig) -> Result<Loader> {
        if dataset.is_empty() {
            return Err(Error::Msg(
                "the dataset is empty: check the data path".into(),
            ));
        }
        if config.batch_size == 0 {
            return Err(Error::Msg("batch size must be at least 1".into()));
        }
        Ok(Loader { dataset, config })
    }

    pub fn batches_per_epoch(&self) -> usize {
        let n = self.dataset.len();
        if self.config.drop_last {
            (n / self.config.batch_size).max(1)
        } else {
            n.div_ceil(self.config.batch_size)
        }
    }

    /// The sample order of `epoch`.
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut idx: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix_seed(&[
                self.config.seed,
                epoch,
                1,
            ])));
        }
        idx
    }

    /// Builds batch `b` of `epoch` on the calling thread (samples in parallel).
    pub fn make_batch(&self, epoch: u64, order: &[usize], b: usize) -> Batch {
        let cfg = &self.config;
        let start = b * cfg.batch_size;
        let end = (start + cfg.batch_size).min(order.len());
        let results: Vec<(usize, Result<Vec<f32>>)> = order[start..end]
            .par_iter()
            .map(|&i| {
                let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[cfg.seed, epoch, i as u64, 2]));
                (
                    i,
                    self.dataset
                        .get(i)
                        .map(|img| augment::apply(&img, &cfg.augment, &mut rng)),
                )
            })
            .collect();
        let c = self.dataset.channels();
        let s = cfg.augment.size;
        let mut images = Vec::with_capacity(results.len() * c * s * s);
        let mut labels = Vec::with_capacity(results.len());
        let mut skipped = Vec::new();
        for (i, r) in results {
            match r {
                Ok(x) => {
                    images.extend(x);
                    labels.push(self.dataset.label(i));
                }
                Err(e) => {
                    // Errors of file-backed datasets already name the file.
                    let (what, msg) = (self.dataset.describe(i), e.to_string());
                    skipped.push(if msg.contains(&what) {
                        msg
                    } else {
                        format!("{what}: {msg}")
                    });
                }
            }
        }
        let n = labels.len();
        let mixup = if cfg.mixup_alpha > 0.0 && n > 1 {
            use rand_distr::Distribution;
            let mut rng = ChaCha8Rng::seed_from_u64(mix_seed(&[cfg.seed, epoch, b as u64, 3]));
            let lambda = rand_distr::Beta::new(cfg.mixup_alpha, cfg.mixup_alpha)
                .expect("alpha > 0")
                .sample(&mut rng);
            let mut perm: Vec<usize> = (0..n).collect();
            perm.shuffle(&mut rng);
            if cfg.mixup_on_host {
                let per = c * s * s;
                let src = images.clone();
                images.par_chunks_mut(per).enumerate().for_each(|(i, x)| {
                    let y = &src[perm[i] * per..(perm[i] + 1) * per];
                    for (a, b) in x.iter_mut().zip(y) {
                        *a = lambda as f32 * *a + (1.0 - lambda as f32) * b;
                    }
                });
            }
            Some(Mixup { lambda, perm })
        } else {
            None
        };
        Batch {
            images,
            dims: [n, c, s, s],
            labels,
            mixup,
            skipped,
            index: b,
        }
    }

    /// Batches `start_batch..` of `epoch`, produced ahead on a background thread.
    pub fn epoch(self: &Arc<Self>, epoch: u64, start_batch: usize) -> impl Iterator<Item = Batch> {
        let (tx, rx) = mpsc::sync_channel(self.config.prefetch.max(1));
        let me = Arc::clone(self);
        let total = self.batches_per_epoch();
        std::thread::spawn(move || {
            let order = me.order(epoch);
            for b in start_batch..total {
                if tx.send(me.make_batch(epoch, &order, b)).is_err() {
                    break; // consumer gone
                }
            }
        });
        rx.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::augment::Preprocess;
    use crate::data::Image;

    struct Toy {
        classes: Vec<String>,
    }
    impl Dataset for Toy {
        fn len(&self) -> usize {
            10
        }
        fn class_names(&self) -> &[String] {
            &self.classes
        }
        fn channels(&self) -> usize {
            1
        }
        fn label(&self, i: usize) -> usize {
            i % 3
        }
        fn get(&self, i: usize) -> Result<Image> {
            if i == 7 {
                return Err(Error::Msg("corrupt image".into()));
            }
            Ok(Image {
                width: 4,
                height: 4,
                channels: 1,
                data: vec![(i * 20) as u8; 16],
            })
        }
    }

    fn loader(mixup: f64) -> Arc<Loader> {
        loader_blending(mixup, true)
    }

    fn loader_blending(mixup: f64, mixup_on_host: bool) -> Arc<Loader> {
        let augment = AugmentConfig {
            size: 4,
            preprocess: Preprocess::PadCrop { pad: 1 },
            flip: true,
            jitter: 0.0,
            hue: false,
            lighting: 0.0,
            mean: vec![0.0],
            std: vec![1.0],
        };
        let ds = Arc::new(Toy {
            classes: vec!["a".into(), "b".into(), "c".into()],
        });
        Arc::new(
            Loader::new(
                ds,
                LoaderConfig {
                    batch_size: 4,
                    shuffle: true,
                    drop_last: false,
                    seed: 5,
                    augment,
                    mixup_alpha: mixup,
                    mixup_on_host,
                    prefetch: 2,
                },
            )
            .unwrap(),
        )
    }

    #[test]
    fn epochs_are_reproducible_resumable_and_skip_corrupt_samples() {
        let l = loader(0.0);
        assert_eq!(l.batches_per_epoch(), 3);
        let a: Vec<Batch> = l.epoch(0, 0).collect();
        let b: Vec<Batch> = l.epoch(0, 1).collect();
        assert_eq!(a.len(), 3);
        assert_eq!(b.len(), 2);
        assert_eq!(
            a[1].images, b[0].images,
            "resuming at batch 1 gives the same batch 1"
        );
        assert_eq!(a[2].labels, b[1].labels);
        let total: usize = a.iter().map(|x| x.labels.len()).sum();
        let skipped: Vec<&String> = a.iter().flat_map(|x| &x.skipped).collect();
        assert_eq!(total, 9);
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].contains("#7") && skipped[0].contains("corrupt"));
        let next: Vec<Batch> = l.epoch(1, 0).collect();
        assert_ne!(
            a[0].labels.iter().chain(&a[1].labels).collect::<Vec<_>>(),
            next[0]
                .labels
                .iter()
                .chain(&next[1].labels)
                .collect::<Vec<_>>()
        );
    }

    /// With `mixup_on_host` off the loader draws the same λ and permutation but leaves the images
    /// alone; `Tensor::mixup` of the raw images and the smoothed targets then gives the host blend:
    /// the images bit for bit (the same f32 arithmetic), the targets to f32 rounding (the host
    /// blends the smoothing terms in another order).
    #[test]
    fn device_side_mixup_reproduces_the_host_blend() {
        use crate::{Device, Tensor};
        let host: Vec<Batch> = loader_blending(0.4, true).epoch(0, 0).collect();
        let raw: Vec<Batch> = loader_blending(0.4, false).epoch(0, 0).collect();
        assert_eq!(host.len(), raw.len());
        let mut blended = 0;
        for (h, r) in host.iter().zip(&raw) {
            let (hm, rm) = (h.mixup.as_ref().unwrap(), r.mixup.as_ref().unwrap());
            assert_eq!((hm.lambda, &hm.perm), (rm.lambda, &rm.perm));
            assert_eq!(h.labels, r.labels);
            let n = r.labels.len();
            let x = Tensor::from_vec(r.images.clone(), r.dims.to_vec(), Device::Cpu).unwrap();
            let t = Tensor::from_vec(r.smoothed_targets(3, 0.1), [n, 3], Device::Cpu).unwrap();
            let (x, t) = x.mixup(&t, rm.lambda, &rm.perm).unwrap();
            assert_eq!(x.to_vec::<f32>().unwrap(), h.images, "images");
            blended += (r.images != h.images) as usize;
            for (a, b) in t
                .to_vec::<f32>()
                .unwrap()
                .iter()
                .zip(h.soft_targets(3, 0.1))
            {
                assert!((a - b).abs() < 1e-6, "targets: {a} against the host's {b}");
            }
        }
        assert!(
            blended > 0,
            "the host blend changed no batch: nothing was compared"
        );
    }

    #[test]
    fn mixup_blends_images_and_targets_consistently() {
        let l = loader(0.4);
        let batch = l.epoch(0, 0).next().unwrap();
        let m = batch.mixup.as_ref().expect("mixup on");
        assert!(m.lambda > 0.0 && m.lambda < 1.0);
        let t = batch.soft_targets(3, 0.1);
        for row in t.chunks(3) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "targets are distributions"
            );
        }
        let plain = loader(0.0).epoch(0, 0).next().unwrap();
        let t = plain.soft_targets(3, 0.1);
        let expect_on = 0.9 + 0.1 / 3.0;
        assert!((t[plain.labels[0]] - expect_on as f32).abs() < 1e-6);
    }
}
