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
