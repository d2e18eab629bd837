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
use poisoncam::filter::report::{FilterReport, Removal, Suspicion};
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

/// What a sheet is drawn from: a report, what the signals look for, and the images.
pub struct SheetInput<'a> {
    pub report: &'a FilterReport,
    /// The recurring patches' templates.
    pub templates: &'a [PatchTemplate],
    /// What each other armed signal looks for, drawn.
    pub drawn: &'a [(String, Image)],
    /// Dataset index, patch and working-size box of each item recurrence decided, by index.
    pub hits: Vec<(usize, usize, PixelBox)>,
    /// What masking located, removed or kept.
    pub suspicions: Vec<Suspicion>,
    /// An item's image.
    pub image: &'a dyn Fn(usize) -> Option<Image>,
}

/// Writes the sheet of a filter's run and returns how many tiles it shows.
pub fn write_removed_sheet<D: Dataset<I>, I: AsImage + Clone + Send + Sync>(
    path: &Path,
    filter: &PoisonFilter<D, I>,
) -> Result<usize> {
    let detection = filter.detection();
    let hits = (0..detection.evidence.len())
        .filter_map(|row| {
            let hit = detection.evidence[row].recurrence?;
            Some((filter.dataset_index(row)?, hit.patch, hit.patch_box))
        })
        .collect();
    let image = |index: usize| filter.inner().get(index).and_then(|item| item.as_image().ok());
    let input = SheetInput {
        report: filter.report(),
        templates: &detection.templates,
        drawn: &detection.drawn,
        hits,
        suspicions: filter.suspicions(),
        image: &image,
    };
    write_sheet(path, &input)
}

/// Writes the sheet of `input` and returns how many tiles it shows.
pub fn write_sheet(path: &Path, input: &SheetInput) -> Result<usize> {
    let report = input.report;
    let by_index: HashMap<usize, &Removal> = report.removals.iter().map(|r| (r.index, r)).collect();
    let own = |r: &Removal| r.original_box.map(|[x, y, w, h]| PixelBox { x, y, w, h });
    let mut tiles = Vec::new();
    // Every patch gets its share of the sheet, so that one with many carriers hides no other.
    let per_patch = (MAX_TILES / input.templates.len().max(1)).max(MIN_TILES_PER_PATCH) - 1;
    for (patch, template) in input.templates.iter().enumerate() {
        let mut first = None;
        let mut items = Vec::new();
        for &(index, _, working_box) in input.hits.iter().filter(|h| h.1 == patch).take(per_patch) {
            let removal = by_index.get(&index).filter(|r| r.stage == Stage::Recurrence);
            let own_box = removal.and_then(|r| own(r));
            if let (None, Some(b)) = (first, own_box) {
                first = Some((index, b));
            }
            items.push(Tile::Item { index, own_box, working_box: Some(working_box), removed: removal.is_some() });
        }
        tiles.push(Tile::Patch { template, first });
        tiles.extend(items);
    }
    // Each other drawn signal: what it looks for, then its removals.
    for (name, image) in input.drawn {
        tiles.push(Tile::Drawn(image));
        let removed = report.removals.iter().filter(|r| r.stage.name() == name).take(per_patch);
        tiles.extend(removed.map(|r| Tile::Item { index: r.index, own_box: own(r), working_box: None, removed: true }));
    }
    let drawn = |stage: Stage| input.drawn.iter().any(|(name, _)| name == stage.name());
    let masked =
        report.removals.iter().filter(|r| !matches!(r.stage, Stage::Recurrence | Stage::Unreadable) && !drawn(r.stage));
    tiles.extend(masked.map(|r| Tile::Item { index: r.index, own_box: own(r), working_box: None, removed: true }));
    tiles.extend(input.suspicions.iter().filter(|s| !s.removed).map(|s| Tile::Item {
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
                let crop = first.and_then(|(index, b)| (input.image)(index)?.crop(b));
                let Some(image) = crop.or_else(|| Image::new(t.channels, t.side, t.side, t.values.clone()).ok()) else {
                    continue;
                };
                suspects.push(letterboxed(&image, None, None));
            }
            Tile::Drawn(image) => suspects.push(letterboxed(image, None, None)),
            Tile::Item { index, own_box, working_box, removed } => {
                let Some(image) = (input.image)(index) else { continue };
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
