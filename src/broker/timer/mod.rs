//! Timer messages (placeholder while wiring).
pub mod wheel;
