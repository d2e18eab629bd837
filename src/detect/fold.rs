//! The training-free signals fitted in the registry's order and their findings folded: the first
//! signal with a finding for a row decides it.

use crate::detect::registry;
use crate::detect::signal::shared::MeasuredRows;
use crate::detect::signal::{Finding, Screen, SignalInput, SignalReport};
use crate::detect::{DetectorConfig, StageCost};
use crate::error::{Error, Result};

/// The registered signals the config switches on, fitted in order, and their findings folded:
/// the first signal with a finding for a row decides it. Returns one finding per row, the
/// screens, one report line and one cost each.
pub fn fit_all(config: &DetectorConfig, input: &SignalInput) -> Result<FittedSignals> {
    let mut out = FittedSignals {
        findings: vec![None; input.rows.len()],
        screens: Vec::new(),
        reports: Vec::new(),
        cost: Vec::new(),
    };
    let signals = registry::build(config)?;
    let rows = MeasuredRows::new(input.rows, &signals);
    for (s, signal) in signals.iter().enumerate() {
        let started = std::time::Instant::now();
        let input = SignalInput { rows: &rows, measured: &rows.slots[s], ..*input };
        let fitted = signal.fit(&input)?;
        if fitted.findings.len() != out.findings.len() {
            let (got, rows) = (fitted.findings.len(), out.findings.len());
            return Err(Error::Config(format!("the {} signal gave {got} findings for {rows} rows", signal.name())));
        }
        let found = fitted.findings.iter().filter(|f| f.is_some()).count();
        for (slot, finding) in out.findings.iter_mut().zip(fitted.findings) {
            if slot.is_none() {
                *slot = finding;
            }
        }
        out.cost.push(StageCost {
            stage: signal.name().into(),
            seconds: started.elapsed().as_secs_f64(),
            forwards_per_image: 0.0,
        });
        out.reports.push(SignalReport { name: signal.name().into(), found, summary: fitted.summary });
        out.screens.push(fitted.screen);
    }
    Ok(out)
}

/// Every training-free signal, fitted.
pub struct FittedSignals {
    /// The fold's finding per row.
    pub findings: Vec<Option<Finding>>,
    /// The screens, in the signals' order.
    pub screens: Vec<Box<dyn Screen>>,
    /// One line per signal.
    pub reports: Vec<SignalReport>,
    /// One cost per signal.
    pub cost: Vec<StageCost>,
}
