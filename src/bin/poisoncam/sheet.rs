//! `removed.png`: what a scan removed and what it suspected but kept, each image with the box
//! that decided, so that a person without ground truth can judge the removals by eye.

use std::path::Path;

use burn::data::dataset::Dataset;
use poisoncam::detect::Stage;
use poisoncam::image::scale_box;
use poisoncam::sim::suspects::{write_suspects, Suspect};
use poisoncam::{AsImage, PixelBox, PoisonFilter, Result};

/// Side of one tile: large enough to see a 50-px trigger on a photo.
const TILE: usize = 160;

/// Tiles shown at most; the removal log lists the rest.
pub const MAX_TILES: usize = 96;

/// Writes the sheet: removals (recurrence first, then the rest, each in dataset order) framed
/// red, then the kept suspicions framed grey; unreadable items have no picture.
pub fn write_removed_sheet<D: Dataset<I>, I: AsImage + Clone + Send + Sync>(
    path: &Path,
    filter: &PoisonFilter<D, I>,
) -> Result<usize> {
    let report = filter.report();
    let mut removals: Vec<_> = report.removals.iter().filter(|r| r.stage != Stage::Unreadable).collect();
    removals.sort_by_key(|r| (r.stage != Stage::Recurrence, r.index));
    let working = [report.working_size[1], report.working_size[2]];
    let mut tiles: Vec<(usize, Option<PixelBox>, bool)> =
        removals.iter().map(|r| (r.index, r.original_box.map(|[x, y, w, h]| PixelBox { x, y, w, h }), true)).collect();
    let suspicions = filter.suspicions();
    tiles.extend(suspicions.iter().filter(|s| !s.removed).map(|s| (s.index, Some(s.trigger_box), false)));
    tiles.truncate(MAX_TILES);
    let mut suspects = Vec::with_capacity(tiles.len());
    for (index, found, removed) in tiles {
        let Some(image) = filter.inner().get(index).and_then(|item| item.as_image().ok()) else { continue };
        let size = [image.height(), image.width()];
        // Removals carry their box in the image's own pixels, suspicions in working pixels.
        let own = found.map(|b| if removed { b } else { scale_box(b, working, size) });
        suspects.push(Suspect {
            image: image.resized(TILE, TILE),
            trigger_box: own.map(|b| scale_box(b, size, [TILE, TILE])),
            truly_poisoned: Some(removed),
        });
    }
    let shown = suspects.len();
    write_suspects(path, &suspects, [TILE, TILE], 8, 1)?;
    Ok(shown)
}
