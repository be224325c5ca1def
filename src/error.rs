//! The engine's one error type. Every fallible public call returns `Result<T>`; messages name the op,
//! the tensor and the shapes involved and, where there is one, say what the user should do.

use crate::shape::Shape;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op}: shape mismatch: {msg} (got {lhs:?} and {rhs:?})")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        msg: String,
    },

    #[error("{op}: {msg}")]
    BadArgument { op: &'static str, msg: String },

    #[error("{op}: dtype mismatch: {msg}")]
    DType { op: &'static str, msg: String },

    #[error(
        "{op}: tensors live on different devices ({a} and {b}); move them with `to_device` first"
    )]
    DeviceMismatch {
        op: &'static str,
        a: String,
        b: String,
    },

    #[error("op `{0}` has no backward rule; run it under `no_grad` or detach its inputs")]
    NoBackward(&'static str),

    #[error("backward() needs a scalar (one-element) tensor, got shape {0:?}")]
    BackwardNotScalar(Shape),

    #[error(
        "backward reached op `{0}` whose graph a releasing backward (`backward_releasing`) already \
         freed; recompute the forward, or use `backward`, which keeps the graph, to walk it twice"
    )]
    GraphReleased(&'static str),

    #[error("CUDA is unavailable: {0}")]
    CudaUnavailable(String),

    #[error(
        "{device}: out of memory allocating {} (the engine has {} in use; the device has {} free of \
         {}). Lower the batch size (--batch-size; --batch for the benchmarks) or the image size, \
         train with --fp16 --channels-last, or stop other processes using the GPU (see nvidia-smi)",
        fmt_bytes(*requested),
        fmt_bytes(*in_use),
        fmt_bytes(*free),
        fmt_bytes(*total)
    )]
    OutOfMemory {
        device: String,
        requested: u64,
        in_use: u64,
        free: u64,
        total: u64,
    },

    #[error("op `{op}` is not implemented on {device}")]
    NotImplemented { op: &'static str, device: String },

    #[error("checkpoint {path}: {msg}")]
    Checkpoint { path: String, msg: String },

    #[error("io error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },

    #[error("{0}")]
    Msg(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn bad(op: &'static str, msg: impl Into<String>) -> Self {
        Error::BadArgument {
            op,
            msg: msg.into(),
        }
    }
    pub fn shape(op: &'static str, lhs: &Shape, rhs: &Shape, msg: impl Into<String>) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            msg: msg.into(),
        }
    }
}

/// Early-return with a `BadArgument` error: `bail!(op, "fmt", args..)`.
#[macro_export]
macro_rules! bail {
    ($op:expr, $($arg:tt)*) => {
        return Err($crate::Error::BadArgument { op: $op, msg: format!($($arg)*) })
    };
}

/// `bytes` in the largest binary unit that keeps the number at or above 1 (B, KiB, MiB, GiB, TiB).
pub fn fmt_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::{fmt_bytes, Error};

    #[test]
    fn byte_counts_read_in_binary_units() {
        assert_eq!(fmt_bytes(0), "0 B");
        assert_eq!(fmt_bytes(1023), "1023 B");
        assert_eq!(fmt_bytes(1536), "1.50 KiB");
        assert_eq!(fmt_bytes(3 << 30), "3.00 GiB");
        assert_eq!(fmt_bytes(5 << 40), "5.00 TiB");
        assert_eq!(fmt_bytes(u64::MAX), "16777216.00 TiB");
    }

    #[test]
    fn out_of_memory_says_what_to_do() {
        let e = Error::OutOfMemory {
            device: "cuda:0".into(),
            requested: 2 << 30,
            in_use: 70 << 30,
            free: 1 << 29,
            total: 80 << 30,
        };
        let m = e.to_string();
        for part in [
            "cuda:0: out of memory allocating 2.00 GiB",
            "70.00 GiB in use",
            "512.00 MiB free of 80.00 GiB",
            "--batch-size",
            "--fp16",
        ] {
            assert!(m.contains(part), "{m:?} lacks {part:?}");
        }
    }
}
