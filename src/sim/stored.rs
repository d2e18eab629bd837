//! How the simulator stores every image, poison or not: the storage axis of an attack, apart
//! from its trigger. In memory, an image goes through the codec and back; on disk, it is
//! written in the format.

use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ExtendedColorType, ImageEncoder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::image::Image;

/// The format every image is stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StoredAs {
    /// JPEG at this quality (the HTBA recipe saves at Pillow's default, 75).
    Jpeg(u8),
    /// Lossless PNG (CorruptEncoder's poisons); in memory, the image as it is.
    Png,
}

impl StoredAs {
    /// Rejects a JPEG quality outside 1..=100.
    pub fn check(&self) -> Result<()> {
        match self {
            Self::Jpeg(q) if !(1..=100).contains(q) => {
                Err(Error::Attack(format!("JPEG quality {q} is outside 1..=100")))
            }
            _ => Ok(()),
        }
    }

    /// The file extension of the format.
    pub fn extension(&self) -> &'static str {
        match self {
            Self::Jpeg(_) => "jpg",
            Self::Png => "png",
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Self::Jpeg(_) => "JPEG",
            Self::Png => "PNG",
        }
    }

    /// `image` as a decoder gives it back after storing it.
    pub fn round_trip(&self, image: &Image) -> Result<Image> {
        match self {
            Self::Png => Ok(image.clone()),
            Self::Jpeg(_) => {
                let encoded = self
                    .encode(image, Vec::new())
                    .map_err(|e| Error::Attack(format!("{} encoding failed: {e}", self.name())))?;
                let decoded = image::load_from_memory(&encoded)
                    .map_err(|e| Error::Attack(format!("JPEG decoding failed: {e}")))?;
                let (c, h, w) = (image.channels(), image.height(), image.width());
                let raw = if c == 1 { decoded.to_luma8().into_raw() } else { decoded.to_rgb8().into_raw() };
                Image::from_hwc_u8(c, h, w, &raw)
            }
        }
    }

    /// Writes `image` to `path` in the format.
    pub fn write(&self, image: &Image, path: &Path) -> Result<()> {
        let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
        let mut writer = self
            .encode(image, std::io::BufWriter::new(file))
            .map_err(|e| Error::Attack(format!("{}: {e}", path.display())))?;
        std::io::Write::flush(&mut writer).map_err(|e| Error::io(path, e))
    }

    fn encode<W: std::io::Write>(&self, image: &Image, mut writer: W) -> image::ImageResult<W> {
        let (w, h) = (image.width() as u32, image.height() as u32);
        let color = if image.channels() == 1 { ExtendedColorType::L8 } else { ExtendedColorType::Rgb8 };
        let bytes = image.to_hwc_u8();
        let written = match self {
            Self::Jpeg(q) => JpegEncoder::new_with_quality(&mut writer, *q).write_image(&bytes, w, h, color),
            Self::Png => PngEncoder::new(&mut writer).write_image(&bytes, w, h, color),
        };
        written.map(|()| writer)
    }
}
