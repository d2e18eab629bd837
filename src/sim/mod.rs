//! Simulation and measurement around the detector: the attack simulator, the evaluation harness
//! and the suspects sheet. The detector never uses them.

pub mod attack;
pub mod eval;
pub mod photo;
pub mod stored;
#[doc(hidden)]
pub mod suspects;
pub mod trigger;
pub mod whole_image;
