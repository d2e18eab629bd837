//! The training-free signals, in the order their findings are folded: a listed hash is the
//! surest evidence, then a recurring patch. A new kind of evidence is one folder with a
//! [`Registration`] and one line here.

use std::path::Path;

use super::{Screen, Signal};
use crate::detect::DetectorConfig;
use crate::error::Result;

/// A signal the config asks for, borrowing it; `None` where it is off.
pub type Built<'a> = Result<Option<Box<dyn Signal + 'a>>>;

/// How a signal is built from the config and its screen read back from a saved guard.
pub struct Registration {
    /// The signal's name, as [`Signal::name`] and [`Screen::name`] give it.
    pub name: &'static str,
    /// The signal the config asks for, or `None` where it is off.
    pub build: for<'a> fn(&'a DetectorConfig) -> Built<'a>,
    /// The screen saved in a folder by [`Screen::save`].
    pub load: fn(&Path) -> Result<Box<dyn Screen>>,
}

/// Every training-free signal, in fold order.
#[rustfmt::skip]
pub const SIGNALS: &[Registration] = &[
    crate::detect::deny::REGISTRATION,
    crate::detect::recurrence::REGISTRATION,
    crate::detect::spectral::REGISTRATION,
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
