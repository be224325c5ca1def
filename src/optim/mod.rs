//! Optimisers, learning-rate schedules and dynamic loss scaling.

pub mod loss_scale;
pub mod schedule;
pub mod sgd;

pub use loss_scale::DynamicLossScaler;
pub use schedule::{LrSchedule, ScheduleKind};
pub use sgd::{Sgd, SgdConfig};
