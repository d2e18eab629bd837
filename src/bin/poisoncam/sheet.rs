//! `removed.png`: what a scan removed and what it suspected but kept, each image with the box
//! that decided, so that a person without ground truth can judge the removals by eye.
//!
//! Tiles, eight a row: each recurring patch (dark frame: the patch as it sits in its first
//! carrier, enlarged) followed by its carriers (red when removed, grey when a person cleared them
//! with `--keep`); then the removals by the masking signal (red); then the suspicions masking
//! located but kept (grey). Every image keeps its aspect in its tile.

use std::collections::HashMap;
use std::path::Path;

use burn::data::dataset::Dataset;
use poisoncam::detect::recurrence::PatchTemplate;
use poisoncam::detect::Stage;
use poisoncam::filter::report::Removal;
use poisoncam::image::scale_box;
use poisoncam::sim::suspects::{write_suspects, Suspect};
use poisoncam::{AsImage, Image, PixelBox, PoisonFilter, Result};

/// Side of one tile: large enough to see a 50-px trigger on a photo.
const TILE: usize = 160;

/// Tiles shown at most; the removal log lists the rest.
pub const MAX_TILES: usize = 96;

/// Tiles each patch gets at least, its own included, when there are many patches.
const MIN_TILES_PER_PATCH: usize = 16;

/// Background of the margins a tile's image does not fill: the sheet's white.
const MARGIN: f32 = 1.0;

/// What one tile shows.
enum Tile<'a> {
    /// A patch: its template, and the first carrier with the patch's box there, to show it whole.
    Patch { template: &'a PatchTemplate, first: Option<(usize, PixelBox)> },
    /// What another signal looks for, drawn (the spectral pattern, amplified).
    Drawn(&'a Image),
    /// A dataset item, its box in its own pixels or else in working pixels, and whether it was
    /// removed.
    Item { index: usize, own_box: Option<PixelBox>, working_box: Option<PixelBox>, removed: bool },
}

/// Writes the sheet and returns how many tiles it shows.
pub fn write_removed_sheet<D: Dataset<I>, I: AsImage + Clone + Send + Sync>(
    path: &Path,
    filter: &PoisonFilter<D, I>,
) -> Result<usize> {
    let report = filter.report();
    let detection = filter.detection();
    let by_index: HashMap<usize, &Removal> = report.removals.iter().map(|r| (r.index, r)).collect();
    let own = |r: &Removal| r.original_box.map(|[x, y, w, h]| PixelBox { x, y, w, h });
    let mut tiles = Vec::new();
    // Every patch gets its share of the sheet, so that one with many carriers hides no other.
    let per_patch = (MAX_TILES / detection.templates.len().max(1)).max(MIN_TILES_PER_PATCH) - 1;
    for (patch, template) in detection.templates.iter().enumerate() {
        let carriers: Vec<(usize, usize)> = (0..detection.evidence.len())
            .filter(|&row| detection.evidence[row].recurrence.is_some_and(|hit| hit.patch == patch))
            .filter_map(|row| filter.dataset_index(row).map(|index| (row, index)))
            .take(per_patch)
            .collect();
        let mut first = None;
        let mut items = Vec::with_capacity(carriers.len());
        for (row, index) in carriers {
            let removal = by_index.get(&index).filter(|r| r.stage == Stage::Recurrence);
            let own_box = removal.and_then(|r| own(r));
            if let (None, Some(b)) = (first, own_box) {
                first = Some((index, b));
            }
            let working_box = detection.evidence[row].recurrence.map(|hit| hit.patch_box);
            items.push(Tile::Item { index, own_box, working_box, removed: removal.is_some() });
        }
        tiles.push(Tile::Patch { template, first });
        tiles.extend(items);
    }
    // Each other drawn signal: what it looks for, then its removals.
    for (name, image) in &detection.drawn {
        tiles.push(Tile::Drawn(image));
        let removed = report.removals.iter().filter(|r| r.stage.name() == name).take(per_patch);
        tiles.extend(removed.map(|r| Tile::Item { index: r.index, own_box: own(r), working_box: None, removed: true }));
    }
    let drawn = |stage: Stage| detection.drawn.iter().any(|(name, _)| name == stage.name());
    let masked =
        report.removals.iter().filter(|r| !matches!(r.stage, Stage::Recurrence | Stage::Unreadable) && !drawn(r.stage));
    tiles.extend(masked.map(|r| Tile::Item { index: r.index, own_box: own(r), working_box: None, removed: true }));
    let suspicions = filter.suspicions();
    tiles.extend(suspicions.iter().filter(|s| !s.removed).map(|s| Tile::Item {
        index: s.index,
        own_box: None,
        working_box: Some(s.trigger_box),
        removed: false,
    }));
    tiles.truncate(MAX_TILES);
    let working = [report.working_size[1], report.working_size[2]];
    let mut suspects = Vec::with_capacity(tiles.len());
    for tile in tiles {
        match tile {
            Tile::Patch { template: t, first } => {
                let crop = first.and_then(|(index, b)| {
                    let image = filter.inner().get(index)?.as_image().ok()?;
                    image.crop(b)
                });
                let Some(image) = crop.or_else(|| Image::new(t.channels, t.side, t.side, t.values.clone()).ok()) else {
                    continue;
                };
                suspects.push(letterboxed(&image, None, None));
            }
            Tile::Drawn(image) => suspects.push(letterboxed(image, None, None)),
            Tile::Item { index, own_box, working_box, removed } => {
                let Some(image) = filter.inner().get(index).and_then(|item| item.as_image().ok()) else { continue };
                let size = [image.height(), image.width()];
                let found = own_box.or_else(|| working_box.map(|b| scale_box(b, working, size)));
                suspects.push(letterboxed(&image, found, Some(removed)));
            }
        }
    }
    let shown = suspects.len();
    write_suspects(path, &suspects, [TILE, TILE], 8, 1)?;
    Ok(shown)
}

/// `image` fitted into a `TILE` square at its own aspect, centred on a white margin, with
/// `found` (in the image's pixels) moved into the tile.
fn letterboxed(image: &Image, found: Option<PixelBox>, removed: Option<bool>) -> Suspect {
    let (h, w) = (image.height().max(1), image.width().max(1));
    let scale = TILE as f64 / h.max(w) as f64;
    let (th, tw) =
        (((h as f64 * scale).round() as usize).clamp(1, TILE), ((w as f64 * scale).round() as usize).clamp(1, TILE));
    let (oy, ox) = ((TILE - th) / 2, (TILE - tw) / 2);
    let channels = image.channels();
    let fitted = image.resized(th, tw);
    let tile = Image::new(channels, TILE, TILE, vec![MARGIN; channels * TILE * TILE]).map(|mut tile| {
        tile.paste(&fitted, ox, oy);
        tile
    });
    let trigger_box = found.map(|b| {
        let b = scale_box(b, [h, w], [th, tw]);
        PixelBox { x: b.x + ox, y: b.y + oy, ..b }
    });
    Suspect { image: tile.unwrap_or(fitted), trigger_box, truly_poisoned: removed }
}
