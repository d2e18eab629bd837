//! Cores that can never become a patch, dropped before verification reads any image for them.
//!
//! A patch is joined from at least `min_support` verified cores (`merge.rs`), and two verified
//! cores join only when they share at least `merge_overlap` of the smaller one's carriers, which
//! number at least `min_carriers`. Carriers are a subset of a core's images, so two cores that
//! share fewer than `merge_overlap × min_carriers` images never join. Nor do two whose shared
//! images hold their windows at offsets that scatter: merging counts the images whose offset lies
//! within a tolerance of the median one, so that many must lie within twice the tolerance of one
//! another. A core whose group of cores linked by such sharing is smaller than `min_support` ends
//! in no patch. On clean
//! photos most cores are such lone chance coincidences, and verification read 92% of the images
//! for them (docs/decode-floor.md). The test is necessary, not sufficient: every core it drops
//! would have been dropped after verification too, so the patches found are the same.

use super::index::{unpack, Core};
use super::merge::{root, ALIGN_TOLERANCE};

/// What a core needs of the others to be worth verifying.
#[derive(Clone, Copy)]
pub struct Joinable {
    /// Fewest carriers of a verified core.
    pub min_carriers: usize,
    /// Share of the smaller core's carriers two cores must share to join.
    pub merge_overlap: f64,
    /// Fewest cores a patch is joined from.
    pub min_support: usize,
}

/// `cores` less those whose group (cores linked by enough shared images) is smaller than
/// `min_support`, in their order; and how many were dropped.
pub fn joinable(cores: Vec<Core>, need: Joinable, factors: &[usize]) -> (Vec<Core>, usize) {
    if need.min_support <= 1 {
        return (cores, 0);
    }
    let shared_needed = need.merge_overlap * need.min_carriers as f64;
    // Which cores name each image: the pairs of cores that share images, counted image by image.
    let mut named: Vec<(u32, u32)> =
        cores.iter().enumerate().flat_map(|(c, core)| core.entries.iter().map(move |e| (e.image, c as u32))).collect();
    named.sort_unstable();
    let by_image: Vec<&[(u32, u32)]> = named.chunk_by(|a, b| a.0 == b.0).collect();
    let mut cores_of: Vec<Vec<u32>> = vec![Vec::new(); cores.len()];
    for (i, group) in by_image.iter().enumerate() {
        for &(_, c) in *group {
            cores_of[c as usize].push(i as u32);
        }
    }
    let mut parent: Vec<usize> = (0..cores.len()).collect();
    let mut shared = vec![0u32; cores.len()];
    let mut touched = Vec::new();
    for (a, images) in cores_of.iter().enumerate() {
        for &i in images {
            for &(_, b) in by_image[i as usize] {
                let b = b as usize;
                if b > a {
                    if shared[b] == 0 {
                        touched.push(b);
                    }
                    shared[b] += 1;
                }
            }
        }
        for b in touched.drain(..) {
            if f64::from(shared[b]) >= shared_needed && aligned(&cores[a], &cores[b], factors) as f64 >= shared_needed {
                let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
                parent[ra.max(rb)] = ra.min(rb);
            }
            shared[b] = 0;
        }
    }
    let mut size = vec![0usize; cores.len()];
    for c in 0..cores.len() {
        size[root(&mut parent, c)] += 1;
    }
    let keep: Vec<bool> = (0..cores.len()).map(|c| size[root(&mut parent, c)] >= need.min_support).collect();
    let before = cores.len();
    let kept: Vec<Core> = cores.into_iter().zip(keep).filter_map(|(core, k)| k.then_some(core)).collect();
    let dropped = before - kept.len();
    (kept, dropped)
}

/// Most images two cores share whose windows' offsets all lie within twice merging's tolerance of
/// one of them: at least as many as merging can ever count as aligned.
fn aligned(a: &Core, b: &Core, factors: &[usize]) -> usize {
    let native = |place: u32| {
        let (level, x, y) = unpack(place);
        let f = factors.get(level).copied().unwrap_or(1);
        ((x * f) as isize, (y * f) as isize, f)
    };
    let mut offsets: Vec<(isize, isize)> = Vec::new();
    // Merging's tolerance comes from one carrier's level of each core; the coarsest of all
    // bounds it.
    let coarsest = a.entries.iter().chain(&b.entries).map(|e| native(e.place).2).max().unwrap_or(1);
    let (mut i, mut j) = (0, 0);
    while i < a.entries.len() && j < b.entries.len() {
        match a.entries[i].image.cmp(&b.entries[j].image) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                let ((ax, ay, _), (bx, by, _)) = (native(a.entries[i].place), native(b.entries[j].place));
                offsets.push((bx - ax, by - ay));
                i += 1;
                j += 1;
            }
        }
    }
    // Merging counts offsets within its tolerance either way of their median: twice it apart.
    let reach = (2 * ALIGN_TOLERANCE * coarsest) as isize;
    offsets
        .iter()
        .map(|(x, y)| offsets.iter().filter(|(u, v)| (u - x).abs() <= reach && (v - y).abs() <= reach).count())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::index::{pack, Entry};
    use super::*;

    fn core(images: &[u32]) -> Core {
        Core { entries: images.iter().map(|&image| Entry { key: 0, image, place: 0, signature: 0 }).collect(), halo: 0 }
    }

    const NEED: Joinable = Joinable { min_carriers: 5, merge_overlap: 0.5, min_support: 4 };

    #[test]
    fn a_group_of_cores_sharing_images_is_kept_and_lone_cores_are_dropped() {
        let patch = [1, 2, 3, 4, 5, 6];
        let mut cores: Vec<Core> = (0..4).map(|_| core(&patch)).collect();
        // Chance cores: each shares two images with the patch's (under 0.5 × 5) and none with each other.
        cores.insert(1, core(&[1, 2, 20, 21, 22]));
        cores.push(core(&[30, 31, 32, 33, 34]));
        let (kept, dropped) = joinable(cores, NEED, &[1]);
        assert_eq!(dropped, 2);
        assert_eq!(kept.len(), 4);
        assert!(kept.iter().all(|c| c.entries.len() == patch.len()));
    }

    #[test]
    fn cores_sharing_images_at_scattered_offsets_do_not_join() {
        let at = |image: u32, x: usize| Entry { key: 0, image, place: pack(0, x, 0), signature: 0 };
        let cores_with = |step: usize| -> Vec<Core> {
            (0..4)
                .map(|k| Core { entries: (0..6).map(|i| at(i, 10 + k * step * i as usize)).collect(), halo: 0 })
                .collect()
        };
        // Windows of one patch keep their offsets in every image; chance look-alikes do not.
        assert_eq!(joinable(cores_with(0), NEED, &[2]).1, 0);
        assert_eq!(joinable(cores_with(20), NEED, &[2]).1, 4);
    }

    #[test]
    fn a_chain_of_cores_is_one_group() {
        // Each shares three images (≥ 2.5) with the next only: one group of four.
        let chain: Vec<Core> =
            (0..4).map(|k| core(&[10 * k, 10 * k + 1, 10 * k + 2, 10 * k + 10, 10 * k + 11, 10 * k + 12])).collect();
        let (kept, dropped) = joinable(chain.clone(), NEED, &[1]);
        assert_eq!((kept.len(), dropped), (4, 0));
        let (kept, dropped) = joinable(chain[..3].to_vec(), NEED, &[1]);
        assert_eq!((kept.len(), dropped), (0, 3), "three cores cannot reach a support of four");
    }
}
