//! `suspects.png`: the top suspects enlarged, with their located trigger boxes drawn.

use std::path::Path;

use image::{Rgb, RgbImage};

use crate::error::{Error, Result};
use crate::image::{Image, PixelBox};

/// One tile of the picture.
pub struct Suspect {
    /// The image, at the size its box is measured in (the filter's working size).
    pub image: Image,
    /// The located trigger, drawn as a yellow frame.
    pub trigger_box: Option<PixelBox>,
    /// Frames the tile red (`Some(true)`: a poison, where the truth is known, or a removal in a
    /// scan's `removed.png`) or grey (`Some(false)`: clean, or suspected and kept).
    pub truly_poisoned: Option<bool>,
}

const BOX: Rgb<u8> = Rgb([255, 215, 0]);
const POISON: Rgb<u8> = Rgb([220, 30, 30]);
const CLEAN: Rgb<u8> = Rgb([150, 150, 150]);
const UNKNOWN: Rgb<u8> = Rgb([40, 40, 40]);

/// Renders `suspects` in a grid of `columns`, each image resized to `[h, w]` (their common size;
/// boxes are drawn in it) and enlarged `scale` times.
pub fn render_suspects(suspects: &[Suspect], [h, w]: [usize; 2], columns: usize, scale: usize) -> RgbImage {
    let (h, w) = (h.max(1), w.max(1));
    let (scale, columns) = (scale.max(1), columns.max(1));
    let frame = 3;
    let (tile_w, tile_h) = (w * scale + 2 * frame, h * scale + 2 * frame);
    let rows = suspects.len().div_ceil(columns).max(1);
    let mut out = RgbImage::from_pixel((columns * tile_w) as u32, (rows * tile_h) as u32, Rgb([255, 255, 255]));
    for (n, s) in suspects.iter().enumerate() {
        let (ox, oy) = ((n % columns) * tile_w, (n / columns) * tile_h);
        let colour = match s.truly_poisoned {
            Some(true) => POISON,
            Some(false) => CLEAN,
            None => UNKNOWN,
        };
        fill_rect(&mut out, ox, oy, tile_w, tile_h, colour);
        let image = if [s.image.height(), s.image.width()] == [h, w] { s.image.clone() } else { s.image.resized(h, w) };
        let (c, pixels) = (image.channels(), image.pixels());
        for y in 0..h * scale {
            for x in 0..w * scale {
                let at = |ch: usize| pixels[ch.min(c - 1) * h * w + (y / scale) * w + x / scale];
                let v = |ch| (at(ch).clamp(0.0, 1.0) * 255.0).round() as u8;
                out.put_pixel((ox + frame + x) as u32, (oy + frame + y) as u32, Rgb([v(0), v(1), v(2)]));
            }
        }
        if let Some(b) = s.trigger_box {
            outline(&mut out, ox + frame + b.x * scale, oy + frame + b.y * scale, b.w * scale, b.h * scale, BOX);
        }
    }
    out
}

/// Renders and writes the picture.
pub fn write_suspects(path: &Path, suspects: &[Suspect], size: [usize; 2], columns: usize, scale: usize) -> Result<()> {
    if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    render_suspects(suspects, size, columns, scale)
        .save(path)
        .map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

fn fill_rect(img: &mut RgbImage, x: usize, y: usize, w: usize, h: usize, colour: Rgb<u8>) {
    for yy in y..y + h {
        for xx in x..x + w {
            img.put_pixel(xx as u32, yy as u32, colour);
        }
    }
}

/// A two-pixel rectangle outline.
fn outline(img: &mut RgbImage, x: usize, y: usize, w: usize, h: usize, colour: Rgb<u8>) {
    let (iw, ih) = (img.width() as usize, img.height() as usize);
    for t in 0..2 {
        for xx in x..(x + w).min(iw) {
            for yy in [y + t, (y + h).saturating_sub(1 + t)] {
                if yy < ih {
                    img.put_pixel(xx as u32, yy as u32, colour);
                }
            }
        }
        for yy in y..(y + h).min(ih) {
            for xx in [x + t, (x + w).saturating_sub(1 + t)] {
                if xx < iw {
                    img.put_pixel(xx as u32, yy as u32, colour);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_frames_and_boxes_land_where_expected() {
        let grey = Image::new(1, 4, 4, vec![0.5; 16]).unwrap();
        let larger = Image::new(1, 8, 8, vec![0.5; 64]).unwrap();
        let suspects = [
            Suspect { image: grey, trigger_box: Some(PixelBox { x: 1, y: 1, w: 2, h: 2 }), truly_poisoned: Some(true) },
            Suspect { image: larger, trigger_box: None, truly_poisoned: Some(false) },
        ];
        let img = render_suspects(&suspects, [4, 4], 2, 5);
        assert_eq!((img.width(), img.height()), (2 * 26, 26));
        assert_eq!(*img.get_pixel(0, 0), POISON);
        assert_eq!(*img.get_pixel(26, 0), CLEAN);
        assert_eq!(*img.get_pixel(3 + 5, 3 + 5), BOX);
        assert_eq!(*img.get_pixel(3 + 12, 3 + 12), Rgb([128, 128, 128]));
        assert_eq!(*img.get_pixel(26 + 3 + 5, 3 + 5), Rgb([128, 128, 128]));
    }
}
