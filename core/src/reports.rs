//! The compliance report: what it says (`model`), how it is gathered (`build`) and the formats
//! it is rendered in (`render`).

pub mod build;
pub mod model;
pub mod render;

pub use build::build;
