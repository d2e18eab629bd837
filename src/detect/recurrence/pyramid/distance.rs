//! How far two windows are apart. A trigger blended at opacity α over a background b gives
//! α·t + (1 − α)·b: over a window where the background is smooth that is the trigger scaled by
//! one gain and shifted by one offset per channel. So copies are compared after fitting that
//! gain (bounded, so that a flat window cannot fit a pattern by a gain near 0) and the offsets.

/// RMS difference of two equal-length value lists.
pub fn rms(a: &[f32], b: &[f32]) -> f32 {
    (a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f32>() / a.len().max(1) as f32).sqrt()
}

/// Gains a copy may have against the mean of its copies: blended copies share their opacity, so
/// against their own mean they stay near 1; the bound keeps a dim look-alike out.
const MAX_GAIN: f32 = 1.5;

/// RMS difference of `window` from `template` (both `3 × s × s`, channel-major) after the best
/// gain g ∈ [1/MAX_GAIN, MAX_GAIN] shared by the channels and an offset per channel are applied
/// to the template.
pub fn fitted_rms(window: &[f32], template: &[f32]) -> f32 {
    let plane = window.len() / 3;
    if plane == 0 || template.len() != window.len() {
        return rms(window, template);
    }
    let mean = |v: &[f32]| v.iter().sum::<f32>() / plane as f32;
    let (mut cov, mut var) = (0.0f32, 0.0f32);
    let mut centred = Vec::with_capacity(6);
    for c in 0..3 {
        let (w, t) = (&window[c * plane..(c + 1) * plane], &template[c * plane..(c + 1) * plane]);
        let (mw, mt) = (mean(w), mean(t));
        cov += w.iter().zip(t).map(|(a, b)| (a - mw) * (b - mt)).sum::<f32>();
        var += t.iter().map(|b| (b - mt) * (b - mt)).sum::<f32>();
        centred.push((mw, mt));
    }
    let gain = if var > 0.0 { (cov / var).clamp(1.0 / MAX_GAIN, MAX_GAIN) } else { 1.0 };
    let mut sum = 0.0f32;
    for (c, (mw, mt)) in centred.into_iter().enumerate() {
        let (w, t) = (&window[c * plane..(c + 1) * plane], &template[c * plane..(c + 1) * plane]);
        sum += w.iter().zip(t).map(|(a, b)| (a - mw - gain * (b - mt)).powi(2)).sum::<f32>();
    }
    (sum / window.len() as f32).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> Vec<f32> {
        (0..3 * 16).map(|i| ((i * 7919) % 13) as f32 / 13.0).collect()
    }

    #[test]
    fn a_blend_over_a_smooth_background_fits_and_another_pattern_does_not() {
        let t = pattern();
        // 80% opacity over a different flat colour per channel.
        let blended: Vec<f32> = t.iter().enumerate().map(|(i, v)| 0.8 * v + 0.2 * [0.9, 0.1, 0.5][i / 16]).collect();
        assert!(rms(&blended, &t) > 0.06, "raw pixels are far: {}", rms(&blended, &t));
        assert!(fitted_rms(&blended, &t) < 1e-5);
        let other: Vec<f32> = (0..3 * 16).map(|i| ((i * 104_729) % 11) as f32 / 11.0).collect();
        assert!(fitted_rms(&other, &t) > 0.15, "{}", fitted_rms(&other, &t));
        // A flat window cannot match a pattern by shrinking it away.
        let flat = vec![0.5; 48];
        assert!(fitted_rms(&flat, &t) > 0.15);
    }
}
