//! Recurrence behind the signal seam: fitted by mining the rows ([`RecurrenceConfig::find_rows`]),
//! applied by looking for the confirmed patches' templates ([`TemplateScreen`]).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{PatchTemplate, Recurrence, RecurrenceConfig};
use crate::detect::signal::{Built, Registration};
use crate::detect::signal::{Finding, Fitted, Sample, Screen, Signal, SignalInput};
use crate::detect::{DetectorConfig, Stage};
use crate::durable::write_atomic;
use crate::error::{Error, Result};
use crate::image::Image;

/// Its line in [`crate::detect::registry`]: on unless the config switches it off.
pub const REGISTRATION: Registration = Registration { name: "recurrence", build, load };

fn build(config: &DetectorConfig) -> Built<'_> {
    Ok(config.signals.recurrence.then(|| Box::new(RecurrenceSignal(&config.recurrence)) as Box<dyn Signal>))
}

fn load(dir: &Path) -> Result<Box<dyn Screen>> {
    Ok(Box::new(TemplateScreen::load(dir)?))
}

/// The recurrence signal, as configured.
pub struct RecurrenceSignal<'a>(pub &'a RecurrenceConfig);

impl Signal for RecurrenceSignal<'_> {
    fn name(&self) -> &'static str {
        "recurrence"
    }

    fn fit(&self, input: &SignalInput) -> Result<Fitted> {
        let found = self.0.find_rows(input.rows, input.read_capped)?;
        fitted(&found, self.0, input)
    }
}

/// The fit of the patches `found` in `input`'s rows: each carrier's finding, the templates'
/// screen and the summary (a shard reduce finds the patches its own way and ends here too).
pub(crate) fn fitted(found: &Recurrence, config: &RecurrenceConfig, input: &SignalInput) -> Result<Fitted> {
    let findings = findings_of(found, input);
    let screen = TemplateScreen::new(found.patches.iter().map(|p| p.template()).collect(), config);
    Ok(Fitted { findings, screen: Box::new(screen), summary: serde_json::to_value(&found.summary)? })
}

/// A carrier's finding: the score its screen would give it (radius / (radius + distance)), its box in
/// its own and in working pixels, its patch's index. A row carrying several patches is found by
/// the last in patch order.
fn findings_of(found: &Recurrence, input: &SignalInput) -> Vec<Option<Finding>> {
    let mut findings = vec![None; input.rows.len()];
    for (patch, carrier) in found.carriers() {
        let radius = found.patches[patch].radius;
        let native = input.rows.size(carrier.image);
        let mut finding =
            Finding::at(Stage::Recurrence, score(carrier.distance, radius), carrier.patch_box, native, input.working);
        finding.pattern = Some(patch);
        findings[carrier.image] = Some(finding);
    }
    findings
}

fn score(distance: f32, radius: f32) -> f32 {
    // Not 1 − d/r: a photo carrier is measured against the mean of all copies, and may lie past
    // the radius its windows were verified within.
    if radius > 0.0 && distance.is_finite() {
        radius / (radius + distance.max(0.0))
    } else {
        1.0
    }
}

/// The patches a recurrence fit confirmed: a sample carrying one is removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TemplateScreen {
    /// The confirmed patches, in the fit's order.
    pub templates: Vec<PatchTemplate>,
    /// The radius for templates saved without their own.
    pub default_radius: f32,
}

const FILE: &str = "templates.json";

impl TemplateScreen {
    /// The screen of `templates`, held to `config`'s radius where a template has none of its own.
    pub fn new(templates: Vec<PatchTemplate>, config: &RecurrenceConfig) -> Self {
        TemplateScreen { templates, default_radius: config.match_radius }
    }

    /// The screen saved in `dir` by [`Screen::save`], each template checked.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(FILE);
        let text = crate::bounded::read_text(&path)?;
        let bad = |reason: String| Error::format(&path, "poisoncam recurrence screen", reason);
        let screen: Self = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        if !(screen.default_radius.is_finite() && screen.default_radius > 0.0) {
            return Err(bad(format!("radius {} is not a positive number", screen.default_radius)));
        }
        for t in &screen.templates {
            Self::check_template(t).map_err(bad)?;
        }
        Ok(screen)
    }

    /// Why a saved template cannot be matched, if it cannot.
    pub(crate) fn check_template(t: &PatchTemplate) -> std::result::Result<(), String> {
        if t.channels == 0 || t.side == 0 || t.values.len() != t.channels * t.side * t.side {
            return Err(format!("a {}-channel template of side {} has {} values", t.channels, t.side, t.values.len()));
        }
        if t.factor == 0 || t.factor > t.side || (t.factor > 1 && t.channels != 3) {
            return Err(format!(
                "a {}-channel template of side {} compared at factor {}",
                t.channels, t.side, t.factor
            ));
        }
        if t.radius.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            return Err(format!("a template's radius {:?} is not a positive number", t.radius));
        }
        Ok(())
    }

    /// Where the first template that matches `image` lies, with its distance and radius.
    fn first_match(&self, image: &Image) -> Option<(usize, f32, crate::image::PixelBox, f32)> {
        self.templates.iter().enumerate().find_map(|(i, t)| {
            t.find_in(image, self.default_radius).map(|(d, b)| (i, d, b, t.radius_or(self.default_radius)))
        })
    }
}

impl Screen for TemplateScreen {
    fn name(&self) -> &'static str {
        "recurrence"
    }

    fn is_armed(&self) -> bool {
        !self.templates.is_empty()
    }

    fn judge(&self, sample: &Sample, working: [usize; 2]) -> Option<Finding> {
        let image = sample.image;
        let (patch, distance, found, radius) = self.first_match(image)?;
        let native = [image.height(), image.width()];
        let mut finding = Finding::at(Stage::Recurrence, score(distance, radius), found, native, working);
        finding.pattern = Some(patch);
        Some(finding)
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn save(&self, dir: &Path) -> Result<()> {
        write_atomic(&dir.join(FILE), &serde_json::to_vec(self)?)
    }
}
