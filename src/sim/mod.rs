//! Simulation and measurement around the detector: the attack simulator, the evaluation harness
//! and the suspects sheet. The detector never uses them.

pub mod attack;
pub mod eval;
pub mod photo;
#[doc(hidden)]
pub mod suspects;
pub mod whole_image;
