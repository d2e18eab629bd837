//! Finding the groups that share a residual pattern. Per band: each image's nearest images by
//! residual cosine (on mixed sizes, among images of other sizes); the images with the strongest
//! mutual neighbours seed a group; the group's pattern is re-estimated from the images whose
//! projection on it stands out (each projected on the others); a group is kept when it is an
//! island (few images just below the bar), of images whose content differs (a key over
//! different photos, not an atlas's plates) and of several sizes (not one camera's or codec's
//! grid). The strongest groups are taken first; a group that mostly repeats a taken one is the
//! same pattern seen in another band.

use std::collections::BTreeSet;
use std::sync::Arc;

use rayon::prelude::*;
use serde::Serialize;

use super::bands::Residuals;
use super::pattern::Pattern;
use super::ResidualConfig;

/// Rounds of re-estimating a group's pattern.
const ROUNDS: usize = 4;

/// Share of a group already taken by a stronger one at which it is not taken again.
const OVERLAP: f64 = 0.25;

/// Why a group was turned down, or that it was taken, for the report.
#[derive(Clone, Debug, Serialize)]
pub(super) struct Considered {
    pub side: usize,
    pub carriers: usize,
    pub shoulder: usize,
    pub content: f32,
    pub sizes: usize,
    pub verdict: &'static str,
}

/// The rows (measured ones `Some`) and their sizes, as the search of one band sees them.
pub(super) struct Rows<'a> {
    pub residuals: &'a [Option<Arc<Residuals>>],
    pub sizes: &'a [[usize; 2]],
    /// Rows with a residual in the band.
    pub live: Vec<usize>,
    /// Whether those rows have at least three sizes.
    pub mixed: bool,
}

impl<'a> Rows<'a> {
    /// The rows with a residual in band `band`.
    pub fn in_band(residuals: &'a [Option<Arc<Residuals>>], sizes: &'a [[usize; 2]], band: usize) -> Self {
        let live: Vec<usize> =
            (0..residuals.len()).filter(|&r| residuals[r].as_ref().is_some_and(|x| x.norms[band] > 0.0)).collect();
        let mixed = live.iter().map(|&r| sizes[r]).collect::<BTreeSet<_>>().len() >= 3;
        Rows { residuals, sizes, live, mixed }
    }
}

/// The patterns found, strongest first, and every group considered.
pub(super) fn search(
    residuals: &[Option<Arc<Residuals>>],
    sizes: &[[usize; 2]],
    config: &ResidualConfig,
) -> (Vec<Pattern>, Vec<Considered>) {
    let mut candidates: Vec<(f32, Pattern, Vec<usize>)> = Vec::new();
    let mut considered = Vec::new();
    for band in 0..config.bands.len() {
        let rows = Rows::in_band(residuals, sizes, band);
        for (strength, mut pattern, members, seen) in band_groups(&rows, band, config) {
            let taken = seen.verdict == "kept";
            considered.push(seen);
            if taken {
                // Judged from here on by the final rule, in the units of the data's projections.
                let q: Vec<f32> = rows
                    .live
                    .par_iter()
                    .map(|&r| pattern.projection(residuals[r].as_ref().expect("live"), sizes[r], false))
                    .collect();
                (pattern.median, pattern.spread) = robust(&q);
                candidates.push((strength, pattern, members));
            }
        }
    }
    candidates.sort_by(|a, b| b.0.total_cmp(&a.0));
    let mut taken: BTreeSet<usize> = BTreeSet::new();
    let mut patterns = Vec::new();
    for (_, pattern, members) in candidates {
        let repeated = members.iter().filter(|m| taken.contains(m)).count();
        if (repeated as f64) < OVERLAP * members.len() as f64 {
            taken.extend(&members);
            patterns.push(pattern);
        }
    }
    (patterns, considered)
}

type Group = (f32, Pattern, Vec<usize>, Considered);

fn band_groups(rows: &Rows, band: usize, config: &ResidualConfig) -> Vec<Group> {
    let sample: Vec<usize> = strided(&rows.live, config.search_rows);
    let neighbours = mutual_neighbours(rows, &sample, band, config.neighbours);
    let mut order: Vec<usize> = (0..sample.len()).filter(|&i| neighbours[i].0.len() >= 2).collect();
    order.sort_by(|&a, &b| neighbours[b].1.total_cmp(&neighbours[a].1).then(a.cmp(&b)));
    let mut covered = vec![false; rows.residuals.len()];
    let mut out = Vec::new();
    for i in order {
        if out.len() >= config.seeds {
            break;
        }
        if covered[sample[i]] {
            continue;
        }
        let mut members: Vec<usize> =
            std::iter::once(sample[i]).chain(neighbours[i].0.iter().map(|&j| sample[j])).collect();
        members.sort_unstable();
        members.iter().for_each(|&m| covered[m] = true);
        let (group, z) = refine(rows, band, members, config);
        group.iter().for_each(|&m| covered[m] = true);
        out.push(judge_group(rows, band, group, &z, config));
    }
    out
}

/// At most `most` of `rows`, evenly strided.
fn strided(rows: &[usize], most: usize) -> Vec<usize> {
    if rows.len() <= most {
        return rows.to_vec();
    }
    (0..most).map(|k| rows[k * rows.len() / most]).collect()
}

/// Per sample image, its mutual nearest neighbours (indices into `sample`) and the sum of
/// their cosines.
fn mutual_neighbours(rows: &Rows, sample: &[usize], band: usize, k: usize) -> Vec<(Vec<usize>, f32)> {
    let n = sample.len();
    if n == 0 {
        return Vec::new();
    }
    let at = |i: usize| rows.residuals[sample[i]].as_ref().expect("live rows are measured");
    // Each pair once (the upper triangle), then mirrored.
    let upper: Vec<Vec<f32>> =
        (0..n).into_par_iter().map(|i| (i + 1..n).map(|j| at(i).cosine(at(j), band)).collect()).collect();
    let cosine = |i: usize, j: usize| if i < j { upper[i][j - i - 1] } else { upper[j][i - j - 1] };
    let nearest: Vec<Vec<usize>> = (0..n)
        .into_par_iter()
        .map(|i| {
            let mut scored: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i && !(rows.mixed && rows.sizes[sample[i]] == rows.sizes[sample[j]]))
                .map(|j| (cosine(i, j), j))
                .collect();
            scored.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
            scored.into_iter().take(k).map(|(_, j)| j).collect()
        })
        .collect();
    (0..n)
        .map(|i| {
            let mutual: Vec<usize> = nearest[i].iter().copied().filter(|&j| nearest[j].contains(&i)).collect();
            let strength = mutual.iter().map(|&j| cosine(i, j)).sum();
            (mutual, strength)
        })
        .collect()
}

/// Every live row's standing on `members`' pattern (each member on the others), in robust
/// units, and the rows standing out, re-estimated until the group holds.
fn refine(rows: &Rows, band: usize, mut members: Vec<usize>, config: &ResidualConfig) -> (Vec<usize>, Vec<f32>) {
    let mut z = Vec::new();
    for _ in 0..ROUNDS {
        let pattern = Pattern::of(band, &members, rows.residuals, rows.sizes, rows.mixed);
        let projections: Vec<f32> = rows
            .live
            .par_iter()
            .map(|&r| {
                let member = members.binary_search(&r).is_ok();
                pattern.projection(rows.residuals[r].as_ref().expect("live"), rows.sizes[r], member)
            })
            .collect();
        let (median, spread) = robust(&projections);
        z = projections.iter().map(|q| (q - median) / spread).collect();
        let next: Vec<usize> =
            rows.live.iter().zip(&z).filter(|(_, &z)| z > config.confirm_z).map(|(&r, _)| r).collect();
        let done = next == members || next.len() < config.min_carriers;
        members = next;
        if done {
            break;
        }
    }
    (members, z)
}

/// Median and 1.4826 · MAD of `values` (a spread of 0 becomes a tiny one).
pub(super) fn robust(values: &[f32]) -> (f32, f32) {
    let median_of = |mut v: Vec<f32>| {
        if v.is_empty() {
            return 0.0;
        }
        v.sort_by(f32::total_cmp);
        v[v.len() / 2]
    };
    let median = median_of(values.to_vec());
    let mad = median_of(values.iter().map(|v| (v - median).abs()).collect());
    (median, (1.4826 * mad).max(1e-9))
}

fn judge_group(rows: &Rows, band: usize, group: Vec<usize>, z: &[f32], config: &ResidualConfig) -> Group {
    let side = config.bands[band];
    let shoulder = z.iter().filter(|&&z| z > config.confirm_z / 2.0 && z <= config.confirm_z).count();
    let sizes = group.iter().map(|&m| rows.sizes[m]).collect::<BTreeSet<_>>().len();
    let content = mean_content_cosine(rows, &group);
    let most = (config.max_carrier_share * rows.live.len() as f64).floor() as usize;
    let verdict = if group.len() < config.min_carriers {
        "too few"
    } else if group.len() > most {
        "too common"
    } else if shoulder as f64 > config.island * group.len() as f64 {
        "not an island"
    } else if content > config.max_content {
        "same content"
    } else if rows.mixed && sizes < 3 {
        "one size"
    } else {
        "kept"
    };
    let mut member_z: Vec<f32> =
        rows.live.iter().zip(z).filter(|(r, _)| group.binary_search(r).is_ok()).map(|(_, &z)| z).collect();
    member_z.sort_by(f32::total_cmp);
    let low = member_z.get(member_z.len() / 10).copied().unwrap_or(0.0);
    let strength = low * (group.len() as f32).sqrt();
    let pattern = Pattern::of(band, &group, rows.residuals, rows.sizes, rows.mixed);
    let seen = Considered { side, carriers: group.len(), shoulder, content, sizes, verdict };
    (strength, pattern, group, seen)
}

/// Mean cosine of the members' content thumbnails, over pairs.
fn mean_content_cosine(rows: &Rows, group: &[usize]) -> f32 {
    let thumbs: Vec<&[f32]> =
        group.iter().filter_map(|&m| rows.residuals[m].as_deref()).map(|r| r.content.as_slice()).collect();
    let (mut sum, mut pairs) = (0f32, 0usize);
    for i in 0..thumbs.len() {
        for j in i + 1..thumbs.len() {
            sum += thumbs[i].iter().zip(thumbs[j]).map(|(a, b)| a * b).sum::<f32>();
            pairs += 1;
        }
    }
    if pairs == 0 {
        0.0
    } else {
        sum / pairs as f32
    }
}
