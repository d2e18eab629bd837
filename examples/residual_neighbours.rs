//! Does a trigger without a patch leave a signal in the images' high-pass residuals? For each
//! poison and for 500 clean images, the 5 nearest training images by the cosine of their
//! residuals (image − Gaussian blur σ 1.5, unit length), and how many of those are poisons.
//! If the poisons' neighbours are poisons and the clean images' are not, a shared additive
//! pattern is visible without a model (docs/whole-image.md).
//!
//! `cargo run --release --features cli --example residual_neighbours -- [--seed 0]`

use poisoncam::data::FashionMnist;
use poisoncam::sim::attack::{poison, AttackConfig};
use poisoncam::sim::whole_image::{BlendKey, WholeImageTrigger};
use poisoncam::Image;

const NEIGHBOURS: usize = 5;

/// `image − blur(image)` over every channel, scaled to unit length.
fn residual(image: &Image) -> Vec<f32> {
    let (c, h, w) = (image.channels(), image.height(), image.width());
    let sigma = 1.5f32;
    let radius = 4i64;
    let kernel: Vec<f32> = (-radius..=radius).map(|d| (-(d * d) as f32 / (2.0 * sigma * sigma)).exp()).collect();
    let total: f32 = kernel.iter().sum();
    let blur_line = |get: &dyn Fn(i64) -> f32, n: i64, at: i64| -> f32 {
        kernel.iter().zip(-radius..=radius).map(|(k, d)| k * get((at + d).clamp(0, n - 1))).sum::<f32>() / total
    };
    let mut out = Vec::with_capacity(c * h * w);
    for ch in 0..c {
        let mut rows = vec![0f32; h * w];
        for y in 0..h {
            for x in 0..w {
                rows[y * w + x] = blur_line(&|i| image.get(ch, y, i as usize), w as i64, x as i64);
            }
        }
        for y in 0..h {
            for x in 0..w {
                let blurred = blur_line(&|i| rows[i as usize * w + x], h as i64, y as i64);
                out.push(image.get(ch, y, x) - blurred);
            }
        }
    }
    let norm = out.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
    out.iter_mut().for_each(|v| *v /= norm);
    out
}

fn main() -> poisoncam::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seed: u64 = args.iter().position(|a| a == "--seed").and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(0);
    let images = FashionMnist::embedded()?.slice(0..8000);
    let attacks = [
        ("blend noise α 0.2", WholeImageTrigger::Blend { key: BlendKey::Noise { seed: seed ^ 0x6b65 }, alpha: 0.2 }),
        ("blend noise α 0.1", WholeImageTrigger::Blend { key: BlendKey::Noise { seed: seed ^ 0x6b65 }, alpha: 0.1 }),
        ("SIG Δ 20 f 6", WholeImageTrigger::Sig { delta: 20.0, frequency: 6.0 }),
        ("perturbation ±8", WholeImageTrigger::Perturbation { bound: 8.0, seed: seed ^ 0x7065 }),
    ];
    println!("| attack (seed {seed}) | poisons' 5-NN that are poisons | clean images' 5-NN that are poisons | poisons' mean top cosine | clean images' mean top cosine |");
    println!("|---|---|---|---|---|");
    for (name, trigger) in attacks {
        let config = AttackConfig { rate: 0.01, seed, whole_image: Some(trigger), ..AttackConfig::default() };
        let set = poison(&images, &config)?;
        let residuals: Vec<Vec<f32>> = set.dataset.items().iter().map(|i| residual(&i.image)).collect();
        let is_poison = |i: usize| set.truth.is_poisoned(i);
        let clean: Vec<usize> = (0..residuals.len()).filter(|&i| !is_poison(i)).step_by(15).take(500).collect();
        let poisons: Vec<usize> = set.truth.poisoned.iter().map(|(i, _)| *i).collect();
        let neighbours = |i: usize| {
            let mut scored: Vec<(f32, usize)> = (0..residuals.len())
                .filter(|&j| j != i)
                .map(|j| (residuals[i].iter().zip(&residuals[j]).map(|(a, b)| a * b).sum::<f32>(), j))
                .collect();
            scored.select_nth_unstable_by(NEIGHBOURS, |a, b| b.0.total_cmp(&a.0));
            scored.truncate(NEIGHBOURS);
            scored.sort_by(|a, b| b.0.total_cmp(&a.0));
            scored
        };
        let summarise = |group: &[usize]| {
            let (mut hits, mut top) = (0usize, 0f32);
            for &i in group {
                let near = neighbours(i);
                hits += near.iter().filter(|(_, j)| is_poison(*j)).count();
                top += near[0].0;
            }
            (hits as f64 / (group.len() * NEIGHBOURS) as f64, top / group.len() as f32)
        };
        let (p_share, p_top) = summarise(&poisons);
        let (c_share, c_top) = summarise(&clean);
        println!("| {name} | {:.3} | {:.3} | {p_top:.3} | {c_top:.3} |", p_share, c_share);
    }
    Ok(())
}
