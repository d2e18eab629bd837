//! The training-free signals, in the order their findings are folded: a listed hash is the
//! surest evidence, then a recurring patch, then a shared frequency pattern, then a shared residual (a blended key). A new kind of evidence is one folder with a
//! [`Registration`] and one line here.

use crate::detect::signal::{Registration, Signal};
use crate::detect::DetectorConfig;
use crate::error::Result;

/// Every training-free signal, in fold order.
#[rustfmt::skip]
pub const SIGNALS: &[Registration] = &[
    crate::detect::deny::REGISTRATION,
    crate::detect::recurrence::REGISTRATION,
    crate::detect::spectral::REGISTRATION,
    crate::detect::residual::REGISTRATION,
];

/// The signals `config` switches on, in order.
pub fn build(config: &DetectorConfig) -> Result<Vec<Box<dyn Signal + '_>>> {
    let mut out = Vec::new();
    for registration in SIGNALS {
        out.extend((registration.build)(config)?);
    }
    Ok(out)
}

/// The registration named `name`, if any.
pub fn named(name: &str) -> Option<&'static Registration> {
    SIGNALS.iter().find(|r| r.name == name)
}
