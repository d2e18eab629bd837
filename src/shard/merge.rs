//! `shard merge`: every shard's judgements as one report, removal log and kept lists, as one
//! scan writes them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::index::Indexed;
use super::judge::Judged;
use super::layout::{Plan, Work};
use super::reduce::read_decisions;
use super::tables::read_images;
use super::PART_ITEMS;
use crate::data::SkippedFile;
use crate::detect::recurrence::{PatchTemplate, TemplateScreen};
use crate::detect::StageCost;
use crate::error::Result;
use crate::filter::report::FilterReport;
use crate::filter::PoisonFilterConfig;
use crate::image::{Image, PixelBox};

/// Every shard's work, merged.
pub struct Merged {
    /// The report, as one scan's.
    pub report: FilterReport,
    /// Shards merged.
    pub shards: usize,
    /// The settings every phase ran with.
    pub config: PoisonFilterConfig,
    /// What the listing skipped.
    pub skipped: Vec<SkippedFile>,
    /// Every item's id, path and file-list line, by listing index.
    pub items: Vec<MergedItem>,
    /// The recurring patches' templates.
    pub templates: Vec<PatchTemplate>,
    /// What each other armed signal looks for, drawn.
    pub drawn: Vec<(String, Image)>,
    /// Listing index, patch and working box of each row recurrence decided.
    pub hits: Vec<(usize, usize, PixelBox)>,
}

/// One item of the listing.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MergedItem {
    /// Its id.
    pub id: String,
    /// Where its file is.
    pub path: std::path::PathBuf,
    /// Its file-list line.
    pub line: String,
}

/// Merges the judgements of every shard in `work`.
pub fn merge(work: &Path) -> Result<Merged> {
    let work = Work::at(work);
    let plan = Plan::read(&work)?;
    let (decisions, screens) = read_decisions(&work)?;
    let mut removals = Vec::new();
    let mut found = vec![0; decisions.signals.len()];
    let mut hits = Vec::new();
    let mut items = Vec::with_capacity(plan.items);
    let mut skipped = Vec::new();
    let mut cost = vec![0.0f64; 2];
    for k in 0..plan.shards {
        let indexed: Indexed = work.read_json(&work.indexed(k), &format!("index of shard {k}/{}", plan.shards))?;
        let judged: Judged = work.read_json(&work.judged(k), &format!("judgement of shard {k}/{}", plan.shards))?;
        if k == 0 {
            skipped = indexed.skipped.clone();
        }
        cost[0] += indexed.seconds;
        cost[1] += judged.seconds;
        removals.extend(judged.removals);
        for (total, f) in found.iter_mut().zip(&judged.found) {
            *total += f;
        }
        hits.extend(judged.hits);
        for j in 0..indexed.items.len().div_ceil(PART_ITEMS) {
            for r in read_images(&work.images_file(k, j), &[])? {
                items.push(MergedItem { id: r.id, path: r.path, line: r.line });
            }
        }
    }
    removals.sort_by_key(|r| r.index);
    hits.sort_by_key(|h| h.0);
    let mut reports = decisions.reports.clone();
    for (report, f) in reports.iter_mut().zip(found) {
        report.found = f;
    }
    let reduced: Option<super::Reduced> = work.read_json(&work.root_file("reduced.json"), "reduce timing").ok();
    let seconds = |stage: &str, s: f64| StageCost { stage: stage.into(), seconds: s, forwards_per_image: 0.0 };
    let mut costs = vec![seconds("shard index (summed over shards)", cost[0])];
    costs.extend(reduced.map(|r| seconds("shard reduce", r.seconds.iter().sum())));
    costs.push(seconds("shard judge (summed over shards)", cost[1]));
    let templates = screens
        .iter()
        .find_map(|s| s.as_any().downcast_ref::<TemplateScreen>())
        .map(|t| t.templates.clone())
        .unwrap_or_default();
    let drawn =
        screens.iter().filter(|s| s.is_armed()).filter_map(|s| Some((s.name().to_string(), s.drawn()?))).collect();
    let total = plan.items;
    let report = FilterReport {
        total,
        kept: total - removals.len(),
        removed: removals.len(),
        backend: "cpu (shards)".into(),
        working_size: decisions.working_size,
        warm_start: None,
        recurrence: decisions.recurrence.clone(),
        kept_clusters: Vec::new(),
        paste_threshold: None,
        classifier_validation: None,
        classifier_flagged: None,
        classifier_skipped: None,
        cost: costs,
        signals: reports,
        removals,
        duplicates: decisions
            .duplicate_indices
            .iter()
            .map(|g| {
                g.iter().map(|&i| items.get(i as usize).map_or_else(|| i.to_string(), |it| it.id.clone())).collect()
            })
            .collect(),
    };
    Ok(Merged { report, shards: plan.shards, config: plan.config, skipped, items, templates, drawn, hits })
}
