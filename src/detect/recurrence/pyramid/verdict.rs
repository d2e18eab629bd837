//! One core's windows judged: the copies that agree in pixels are its carriers, unless they
//! are mostly one flat colour, or agree in their surroundings too (one image repeated).

use super::distance::{fitted_rms, rms};
use super::params::PyramidConfig;
use super::seen::{mean_of, Seen};

/// What one core's windows showed.
pub(crate) enum Verdict<'a> {
    /// No window of it could be cut.
    Unseen,
    /// Fewer than the least carriers agreed in pixels.
    Rejected,
    /// They agreed but were mostly one or two flat colours, or as close to themselves shifted.
    Flat,
    /// They agreed in their surroundings too: the rows of one image repeated.
    Repeated(Vec<usize>),
    /// Its carriers.
    Carriers(Vec<&'a Seen>),
}

/// The verdict on one core's windows (`members`, in image order).
pub(crate) fn verdict<'a>(members: &[&'a Seen], min_carriers: usize, config: &PyramidConfig) -> Verdict<'a> {
    if members.is_empty() {
        return Verdict::Unseen;
    }
    let carriers = agreeing(members, config.match_radius);
    if carriers.len() < min_carriers {
        return Verdict::Rejected;
    }
    let (one, two) = colour_shares(&mean_of(&carriers), FLAT_TOLERANCE);
    if one > config.max_flat_share
        || two > config.max_two_colour_share
        || median(carriers.iter().map(|s| s.self_distance)) < config.min_self_distance
    {
        return Verdict::Flat;
    }
    if repeated(&carriers, config.context_radius) {
        let mut group: Vec<usize> = carriers.iter().map(|s| s.image).collect();
        group.dedup();
        return Verdict::Repeated(group);
    }
    Verdict::Carriers(carriers)
}

/// Pixels this close on every channel count as one colour (about 15/255).
const FLAT_TOLERANCE: f32 = 0.06;

fn median(values: impl Iterator<Item = f32>) -> f32 {
    let mut v: Vec<f32> = values.collect();
    v.sort_by(f32::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// The shares of a `3 × s × s` window's pixels within `tolerance` (on every channel) of its most
/// common colour, and of its two most common colours together (the second counted among the
/// pixels the first left).
fn colour_shares(window: &[f32], tolerance: f32) -> (f64, f64) {
    let plane = window.len() / 3;
    let close = |i: usize, j: usize| (0..3).all(|c| (window[c * plane + i] - window[c * plane + j]).abs() <= tolerance);
    let count = |i: usize, left: &[bool]| (0..plane).filter(|&j| left[j] && close(i, j)).count();
    let all = vec![true; plane];
    let Some(first) = (0..plane).max_by_key(|&i| (count(i, &all), std::cmp::Reverse(i))) else { return (0.0, 0.0) };
    let left: Vec<bool> = (0..plane).map(|j| !close(first, j)).collect();
    let one = plane - left.iter().filter(|&&l| l).count();
    let two = one + (0..plane).filter(|&i| left[i]).map(|i| count(i, &left)).max().unwrap_or(0);
    (one as f64 / plane as f64, two as f64 / plane as f64)
}

/// The windows within `radius` of the members' mean, the mean taken again over those (one
/// refinement, so that a few natural look-alikes in the bucket do not drag it). Distances are
/// after a fitted gain and offsets: with raw distances a trigger blended at 80% and rescaled
/// ±20% kept 0.23 of its kept-aside poisons, with fitted ones 0.85 (docs/recurrence.md).
fn agreeing<'a>(members: &[&'a Seen], radius: f32) -> Vec<&'a Seen> {
    let mean = mean_of(members);
    let first: Vec<&Seen> = members.iter().copied().filter(|s| fitted_rms(&s.window, &mean) <= 2.0 * radius).collect();
    let mean = mean_of(&first);
    members.iter().copied().filter(|s| fitted_rms(&s.window, &mean) <= radius).collect()
}

/// Whether most carriers share their surroundings with another carrier: the window recurs
/// because the image does.
fn repeated(carriers: &[&Seen], radius: f32) -> bool {
    let twinned = carriers
        .iter()
        .filter(|a| carriers.iter().any(|b| b.image != a.image && same_ring(&a.context, &b.context, radius)))
        .count();
    2 * twinned >= carriers.len()
}

/// Fewest ring blocks two windows must both have for their surroundings to be compared.
const MIN_RING_BLOCKS: usize = 6;

/// A ring flatter than this (the spread of its block colours) shows nothing of the image it is
/// in: a white page or a black sky is alike in every image.
const MIN_CONTEXT_SPREAD: f32 = 0.02;

/// Whether two rings of surroundings are one image's: over the blocks both have, close, and close
/// against how much the ring itself varies (two pages of white with a little text are close, yet
/// not the same page). A flat ring is no evidence either way.
fn same_ring(a: &[Option<[f32; 3]>], b: &[Option<[f32; 3]>], radius: f32) -> bool {
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for (p, q) in a.iter().zip(b) {
        if let (Some(p), Some(q)) = (p, q) {
            x.extend_from_slice(p);
            y.extend_from_slice(q);
        }
    }
    if x.len() < 3 * MIN_RING_BLOCKS {
        return false;
    }
    let d = rms(&x, &y);
    let mean = x.iter().sum::<f32>() / x.len() as f32;
    let varies = (x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / x.len() as f32).sqrt();
    varies >= MIN_CONTEXT_SPREAD && d <= radius && d <= RING_LIKENESS * varies
}

/// Largest difference between two rings, as a share of the ring's own variation, that still
/// makes them one image: JPEG moves block means by far less than a tenth of a photo's variation.
const RING_LIKENESS: f32 = 0.25;

#[cfg(test)]
mod tests {
    use super::super::seen::tests::seen;
    use super::*;

    #[test]
    fn shared_surroundings_make_a_duplicate_only_where_they_vary() {
        let ring = |v: f32| (0..36).map(|k| Some([v + (k % 5) as f32 * 0.1; 3])).collect::<Vec<_>>();
        let flat = |v: f32| (0..36).map(|_| Some([v; 3])).collect::<Vec<_>>();
        assert!(same_ring(&ring(0.1), &ring(0.11), 0.06));
        assert!(!same_ring(&ring(0.1), &ring(0.3), 0.06), "different surroundings");
        assert!(!same_ring(&flat(0.95), &flat(0.96), 0.06), "two white pages are no evidence");
        let repeated: Vec<Seen> = (0..6).map(|i| seen(0, i, 20, ring(0.1))).collect();
        assert!(super::repeated(&repeated.iter().collect::<Vec<_>>(), 0.06));
        let pasted: Vec<Seen> = (0..6).map(|i| seen(0, i, 20, ring(0.1 * i as f32))).collect();
        assert!(!super::repeated(&pasted.iter().collect::<Vec<_>>(), 0.06));
    }
}
