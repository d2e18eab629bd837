//! Localisers: where in an image the evidence for its cluster sits. Masking (cluster activation
//! masking, PoisonCAM's own) and Grad-CAM (the PatchSearch baseline's).

pub mod gradcam;
pub mod masking;
