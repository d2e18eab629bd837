//! The seam every training-free kind of evidence plugs into (docs/design.md §2.2).
//!
//! A [`Signal`] is fitted on the detector's input and yields, per row, an optional [`Finding`]
//! and a fitted [`Screen`] that judges new samples by the same rule. The detector runs the
//! registered signals in order ([`crate::detect::registry`]) and folds their findings
//! (`detect::fold`): the first signal with a finding for a row decides it. The guard
//! holds the screens, saved one folder per signal. A fit scores and places its findings by its
//! screen's rule, so the filter and the guard agree in stage, score and box (on photos a
//! recurring patch's box is the merged carrier box in the fit, the matched window in the guard).

pub(crate) mod shared;

use std::any::Any;
use std::fmt::Debug;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};

use crate::detect::recurrence::ImageRows;
use crate::detect::{DetectorConfig, Stage};
use crate::error::Result;
use crate::image::{scale_box, Image, PixelBox};

/// What one signal says of one sample: the stage that decided, how strong the evidence is
/// (0 to 1) and where the trigger sits, where the signal locates one.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The signal that made it, as named in the removal log.
    pub stage: Stage,
    /// Strength of the evidence, 0 to 1 (1 for an exact match).
    pub score: f32,
    /// The trigger in working-size pixels.
    pub trigger_box: Option<PixelBox>,
    /// The same box in the sample's own pixels.
    pub original_box: Option<PixelBox>,
    /// Which of the signal's fitted patterns matched (a recurring patch's index), where it has
    /// several.
    pub pattern: Option<usize>,
}

impl Finding {
    /// A finding with no box (the whole sample is the evidence).
    pub fn whole(stage: Stage, score: f32) -> Self {
        Finding { stage, score, trigger_box: None, original_box: None, pattern: None }
    }

    /// A finding at `found`, a box in the pixels of an image of `native` size, also given in a
    /// `working`-size image's pixels.
    pub fn at(stage: Stage, score: f32, found: PixelBox, native: [usize; 2], working: [usize; 2]) -> Self {
        let trigger_box = Some(scale_box(found, native, working));
        Finding { stage, score, trigger_box, original_box: Some(found), pattern: None }
    }
}

/// One sample as a screen sees it: its image at its own size, and the SHA-256 of its stored
/// bytes where the item has any (a file's) and a screen asked for it.
pub struct Sample<'a> {
    /// The decoded image.
    pub image: &'a Image,
    /// SHA-256 of the item's bytes as stored.
    pub digest: Option<[u8; 32]>,
}

/// What a signal is fitted on: the readable rows at their own size, and the working size its
/// boxes are also given in.
pub struct SignalInput<'a> {
    /// The rows, with their sizes, pixels and stored bytes' digests.
    pub rows: &'a dyn ImageRows,
    /// `[height, width]` of the working size.
    pub working: [usize; 2],
    /// A row at a size the exhaustive recurrence miner can hold.
    pub read_capped: &'a (dyn Fn(usize) -> Result<Image> + Sync),
    /// This signal's [`Signal::measure`] of each row an earlier signal read (unset for the rest,
    /// and empty for a signal that measures nothing).
    pub measured: &'a [OnceLock<Measured>],
}

impl SignalInput<'_> {
    /// Row `row`'s measurement by `signal`: taken from an earlier decode, else by reading the row;
    /// none for a row that cannot be read (the rows report it, [`ImageRows::read`]).
    pub fn measured_by(&self, signal: &dyn Signal, row: usize) -> Measured {
        match self.measured.get(row).and_then(OnceLock::get) {
            Some(m) => m.clone(),
            None => self.rows.read(row).ok().and_then(|image| signal.measure(&image)),
        }
    }
}

/// A signal's statistics of one row, of a type only that signal reads back
/// ([`measurement`]), or `None` where the row cannot be measured (too small, grey).
pub type Measured = Option<Arc<dyn Any + Send + Sync>>;

/// `measured` as the `T` its signal stored; `None` where the row was not measurable or the
/// value is of another type.
pub fn measurement<T: Any + Send + Sync>(measured: &Measured) -> Option<&T> {
    measured.as_ref().and_then(|m| m.downcast_ref::<T>())
}

/// A kind of evidence, fitted on the detector's input.
pub trait Signal: Sync {
    /// Its name, as its stage and its folder in a saved guard are named.
    fn name(&self) -> &'static str;

    /// Whether it takes statistics of each of `rows` rows ([`Signal::measure`]) from any decode
    /// of it (a signal whose statistics are large declines past a number of rows).
    fn measures(&self, _rows: usize) -> bool {
        false
    }

    /// Its statistics of one decoded row, taken while an earlier signal reads the row.
    fn measure(&self, _image: &Image) -> Measured {
        None
    }

    /// Looks at every row: a finding per row (`None` where it found nothing), the screen that
    /// judges new samples the same way, and what it looked at for the report.
    fn fit(&self, input: &SignalInput) -> Result<Fitted>;

    /// Whether its fit looks at row `row` of `rows` through a measurement; a signal that looks
    /// at a sample of large data says which rows. A shard's index measures these rows only.
    fn measures_row(&self, _row: usize, rows: usize) -> bool {
        self.measures(rows)
    }

    /// A measurement as bytes, for a shard's index to store ([`Signal::decode`] reads it back);
    /// empty for a signal that measures nothing.
    fn encode(&self, _measured: &(dyn Any + Send + Sync)) -> Vec<u8> {
        Vec::new()
    }

    /// A measurement that [`Signal::encode`] wrote; a malformed one is an error.
    fn decode(&self, _bytes: &[u8]) -> Result<Measured> {
        Ok(None)
    }

    /// Its screen and summary alone, without a finding per row: what a shard reduce fits from
    /// the measurements, leaving each row to its shard's judge. A signal whose findings are its
    /// screen's judgements of the rows gives the same removals either way; the default fits
    /// in full and drops the findings.
    fn fit_screen(&self, input: &SignalInput) -> Result<(Box<dyn Screen>, serde_json::Value)> {
        let fitted = self.fit(input)?;
        Ok((fitted.screen, fitted.summary))
    }
}

/// A fitted signal.
pub struct Fitted {
    /// One entry per row.
    pub findings: Vec<Option<Finding>>,
    /// The rule, for new samples.
    pub screen: Box<dyn Screen>,
    /// What the signal looked at and why candidates were turned down, for the report.
    pub summary: serde_json::Value,
}

/// A fitted signal's rule for new samples.
pub trait Screen: Send + Sync + Debug {
    /// The signal it came from (its folder in a saved guard).
    fn name(&self) -> &'static str;

    /// Whether the fit left it anything to remove by; an unarmed screen passes every sample.
    fn is_armed(&self) -> bool;

    /// Whether it reads the sample's stored bytes ([`Sample::digest`]); decoding alone does not
    /// give them, so they are hashed only when a screen asks.
    fn needs_digest(&self) -> bool {
        false
    }

    /// Its finding on one sample; `working` is `[height, width]` of the fit's working size.
    fn judge(&self, sample: &Sample, working: [usize; 2]) -> Option<Finding>;

    /// Its finding from the measurement its signal took of the sample ([`Signal::measure`]),
    /// where that is enough (the same finding [`Screen::judge`] gives); `None` where it needs
    /// the image.
    fn judge_measured(
        &self,
        _measured: &Measured,
        _native: [usize; 2],
        _working: [usize; 2],
    ) -> Option<Option<Finding>> {
        None
    }

    /// Writes what it needs to judge into the empty folder `dir`.
    fn save(&self, dir: &Path) -> Result<()>;

    /// The screen itself, for a caller that knows its kind (a review sheet drawing templates).
    fn as_any(&self) -> &dyn std::any::Any;

    /// What it looks for, drawn for a person (a review sheet shows it before its removals);
    /// `None` where there is nothing to draw.
    fn drawn(&self) -> Option<Image> {
        None
    }
}

/// A signal's line in the report: its name, time, findings and summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SignalReport {
    /// The signal's name.
    pub name: String,
    /// Rows it had a finding for (before the fold: another signal may have decided some).
    pub found: usize,
    /// What it looked at, its own record.
    pub summary: serde_json::Value,
}

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

/// The first finding of `screens`, in order, on `sample`.
pub fn screen_all(screens: &[Box<dyn Screen>], sample: &Sample, working: [usize; 2]) -> Option<Finding> {
    screens.iter().find_map(|s| s.judge(sample, working))
}
