//! A shared residual pattern: the sum of its carriers' unit residuals, and the rule that
//! projects an image on it. On photos of mixed sizes an image is projected on the carriers of
//! other sizes only: a codec's block grid or a camera's pattern lives in native pixels and lines
//! up, in relative coordinates, only among images of one size, while a key resized to every
//! image lines up across all of them.

use serde::{Deserialize, Serialize};

use super::bands::Residuals;

/// Fewest carriers a projection is taken over.
const FEWEST: usize = 3;

/// One pattern, in one band.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Pattern {
    /// Index of its band in the config's `bands`.
    pub band: usize,
    /// Carriers it was estimated from.
    pub count: usize,
    /// Whether images are projected on the carriers of other sizes only.
    pub mixed: bool,
    /// The carriers' sizes `[height, width]` and how many carry each (mixed only).
    pub sizes: Vec<([usize; 2], usize)>,
    /// Median and spread (1.4826 · MAD) of the fit's projections: a projection is judged in
    /// these units.
    pub median: f32,
    pub spread: f32,
    /// Sum of the carriers' unit residuals, one value per kept value of the band (not saved inline).
    #[serde(skip)]
    pub total: Vec<f32>,
    /// The same sum per entry of `sizes`.
    #[serde(skip)]
    pub by_size: Vec<Vec<f32>>,
}

impl Pattern {
    /// The pattern of `members` (rows of `rows`, of `sizes`) in band `band`.
    pub fn of(
        band: usize,
        members: &[usize],
        rows: &[Option<std::sync::Arc<Residuals>>],
        sizes: &[[usize; 2]],
        mixed: bool,
    ) -> Self {
        let dim = members.iter().find_map(|&m| rows[m].as_ref()).map_or(0, |r| r.bands[band].len());
        let mut total = vec![0f32; dim];
        let mut grouped: Vec<([usize; 2], usize, Vec<f32>)> = Vec::new();
        for &m in members {
            let Some(r) = rows[m].as_ref() else { continue };
            let unit = r.unit(band);
            total.iter_mut().zip(&unit).for_each(|(t, u)| *t += u);
            if mixed {
                let at = match grouped.iter().position(|(s, _, _)| *s == sizes[m]) {
                    Some(at) => at,
                    None => {
                        grouped.push((sizes[m], 0, vec![0f32; dim]));
                        grouped.len() - 1
                    }
                };
                grouped[at].1 += 1;
                grouped[at].2.iter_mut().zip(&unit).for_each(|(t, u)| *t += u);
            }
        }
        grouped.sort_by_key(|(s, _, _)| *s);
        Pattern {
            band,
            count: members.len(),
            mixed,
            sizes: grouped.iter().map(|(s, n, _)| (*s, *n)).collect(),
            median: 0.0,
            spread: 1.0,
            total,
            by_size: grouped.into_iter().map(|(_, _, v)| v).collect(),
        }
    }

    /// An image's projection on the mean of the carriers it is judged by: those of other sizes
    /// (mixed), or all of them less itself where `member` (while the group is being found), or
    /// all of them.
    pub fn projection(&self, r: &Residuals, size: [usize; 2], member: bool) -> f32 {
        let along = r.along(self.band, &self.total);
        let (own, own_count) = if self.mixed {
            match self.sizes.iter().position(|(s, _)| *s == size) {
                Some(at) => (r.along(self.band, &self.by_size[at]), self.sizes[at].1),
                None => (0.0, 0),
            }
        } else if member {
            (1.0, 1)
        } else {
            (0.0, 0)
        };
        let count = self.count.saturating_sub(own_count);
        if count < FEWEST {
            return 0.0;
        }
        (along - own) / count as f32
    }

    /// [`Pattern::projection`] in units of the fit's spread (an image with no residual in the
    /// band stands nowhere).
    pub fn z(&self, r: &Residuals, size: [usize; 2]) -> f32 {
        if r.norms[self.band] == 0.0 {
            return f32::NEG_INFINITY;
        }
        (self.projection(r, size, false) - self.median) / self.spread
    }
}
