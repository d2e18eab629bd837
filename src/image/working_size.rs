//! The one policy for the size every image is resized to before the threat model sees it.

use super::Image;

/// The median shorter side of images of these `[height, width]` sizes (the upper median of an
/// even count); `None` for none. One definition, so that every decision made on it (photo index
/// or exhaustive miner, the listing's decode, the scan's default) agrees.
pub fn median_short_side(sizes: impl IntoIterator<Item = [usize; 2]>) -> Option<usize> {
    let mut sides: Vec<usize> = sizes.into_iter().map(|[h, w]| h.min(w)).collect();
    sides.sort_unstable();
    sides.get(sides.len() / 2).copied()
}

/// Default cap on the working size's short side, in pixels. The threat model is a small conv net
/// with global pooling: large photos cost time and memory quadratically and add detail a
/// 6–30 px trigger does not need.
pub const DEFAULT_MAX_SHORT_SIDE: usize = 224;

/// `[channels, height, width]` for `images`: the requested `[height, width]` as given, or else the
/// most common size (the earliest seen on ties), scaled down with its aspect ratio kept so that
/// its short side is at most `max_short_side`. Channels are the most any image has, so RGB stays
/// RGB when a grey image is mixed in.
pub fn working_size<'a>(
    images: impl IntoIterator<Item = &'a Image>,
    requested: Option<[usize; 2]>,
    max_short_side: usize,
) -> [usize; 3] {
    working_size_of(images.into_iter().map(|i| (i.channels(), [i.height(), i.width()])), requested, max_short_side)
}

/// [`working_size`] from `(channels, [height, width])` of each image, so that it can be chosen
/// without holding the images.
pub fn working_size_of(
    shapes: impl IntoIterator<Item = (usize, [usize; 2])>,
    requested: Option<[usize; 2]>,
    max_short_side: usize,
) -> [usize; 3] {
    let mut channels = 1;
    let mut counts: Vec<([usize; 2], usize)> = Vec::new();
    for (c, size) in shapes {
        channels = channels.max(c);
        match counts.iter_mut().find(|(s, _)| *s == size) {
            Some((_, n)) => *n += 1,
            None => counts.push((size, 1)),
        }
    }
    let best = counts.iter().map(|(_, n)| *n).max().unwrap_or(0);
    let most_common = counts.iter().find(|(_, n)| *n == best).map_or([1, 1], |(s, _)| *s);
    let [h, w] = requested.unwrap_or_else(|| capped_size(most_common, max_short_side));
    [channels, h, w]
}

/// `[h, w]` scaled down, aspect ratio kept, so that its short side is at most `max_short_side`
/// (0: no cap).
pub fn capped_size([h, w]: [usize; 2], max_short_side: usize) -> [usize; 2] {
    let short = h.min(w);
    if short <= max_short_side || max_short_side == 0 {
        return [h, w];
    }
    let scale = |side: usize| ((side * max_short_side) as f64 / short as f64).round().max(1.0) as usize;
    [scale(h), scale(w)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(c: usize, h: usize, w: usize) -> Image {
        Image::new(c, h, w, vec![0.0; c * h * w]).unwrap()
    }

    #[test]
    fn the_most_common_size_wins_and_channels_are_the_most_seen() {
        let images = vec![image(1, 10, 12), image(1, 28, 28), image(3, 28, 28), image(1, 10, 12), image(1, 28, 28)];
        assert_eq!(working_size(&images, None, 224), [3, 28, 28]);
        assert_eq!(working_size(&images[..2], None, 224), [1, 10, 12], "ties go to the earliest");
    }

    #[test]
    fn large_photos_are_scaled_to_the_cap_with_their_aspect_ratio() {
        let photos = vec![image(3, 3000, 4000), image(3, 3000, 4000)];
        assert_eq!(working_size(&photos, None, 224), [3, 224, 299]);
        assert_eq!(working_size(&photos, None, 0), [3, 3000, 4000], "0 turns the cap off");
    }

    #[test]
    fn a_requested_size_is_taken_as_given() {
        let photos = vec![image(3, 3000, 4000)];
        assert_eq!(working_size(&photos, Some([512, 512]), 224), [3, 512, 512]);
    }
}
