//! The items the pipeline reads: `AsImage` and its implementations for this crate's image and
//! burn's dataset items.

use burn::data::dataset::vision::{ImageDatasetItem, MnistItem, PixelDepth};

use super::Image;
use crate::error::{Error, Result};

/// Gives the pipeline a `C×H×W` f32 view of a dataset item.
///
/// Implement it for your own item type to use `PoisonFilter` on any burn `Dataset`.
pub trait AsImage {
    /// The item's image; an error marks the item unreadable (it is then removed and logged).
    fn as_image(&self) -> Result<Image>;

    /// The class label, where the item has one (used by `eval`, never by the detector).
    fn label(&self) -> Option<usize> {
        None
    }

    /// A stable identifier for logs (a file path, say); the index is used when there is none.
    fn id(&self) -> Option<String> {
        None
    }

    /// SHA-256 of the item's bytes as stored (a file's, before decoding), where it has any: the
    /// deny list matches known poisons by it.
    fn digest(&self) -> Option<Result<[u8; 32]>> {
        None
    }

    /// The item's channels and size as its stored header declares them, with a fingerprint of
    /// its stored bytes, read without decoding the pixels; `None` where the item is not stored
    /// (it is decoded already). The filter lists photos by it and decodes each once, later; a
    /// header that reads but a body that does not is reported unreadable then.
    fn header(&self) -> Option<Result<StoredHeader>> {
        None
    }
}

/// What a stored image's header declares, and a fingerprint of the stored bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredHeader {
    /// 1 (grey) or 3 (colour), as [`AsImage::as_image`] will give it.
    pub channels: usize,
    /// Rows of pixels.
    pub height: usize,
    /// Columns of pixels.
    pub width: usize,
    /// A hash of the stored bytes: the same file gives the same value on every run.
    pub fingerprint: u64,
}

impl AsImage for Image {
    fn as_image(&self) -> Result<Image> {
        Ok(self.clone())
    }
}

/// burn's `ImageFolderDataset` items: grey, grey+alpha, RGB or RGBA, at 8 or 16 bits or float.
///
/// Alpha is dropped, not composited: that is what PIL's `convert("RGB")`, and so most SSL
/// training loaders, do, and the detector should see the pixels the training will see.
///
/// ```
/// use burn::data::dataset::vision::{Annotation, ImageDatasetItem, PixelDepth};
/// use poisoncam::AsImage;
///
/// // One RGBA pixel: red, half transparent.
/// let item = ImageDatasetItem {
///     image: [255u8, 0, 0, 128].into_iter().map(PixelDepth::U8).collect(),
///     image_width: 1,
///     image_height: 1,
///     annotation: Annotation::Label(2),
///     image_path: "red.png".into(),
/// };
/// let image = item.as_image().unwrap();
/// assert_eq!((image.channels(), image.pixels()), (3, &[1.0, 0.0, 0.0][..]));
/// assert_eq!(item.label(), Some(2));
/// ```
impl AsImage for ImageDatasetItem {
    fn as_image(&self) -> Result<Image> {
        let plane = self.image_width * self.image_height;
        let channels = if plane == 0 { 0 } else { self.image.len() / plane };
        let shape_error = || Error::ImageShape {
            channels,
            height: self.image_height,
            width: self.image_width,
            expected: channels.max(1) * plane,
            got: self.image.len(),
        };
        if !matches!(channels, 1..=4) || channels * plane != self.image.len() {
            return Err(shape_error());
        }
        // Grey+alpha keeps one channel, RGBA three.
        let kept = if channels % 2 == 0 { channels - 1 } else { channels };
        // burn decodes 16-bit images to U16 and HDR ones to F32; normalise each to [0, 1].
        let bytes_or_floats: Vec<f32> = self
            .image
            .iter()
            .map(|p| match p {
                PixelDepth::U8(v) => f32::from(*v) / 255.0,
                PixelDepth::U16(v) => f32::from(*v) / 65535.0,
                PixelDepth::F32(v) => v.clamp(0.0, 1.0),
            })
            .collect();
        let mut pixels = vec![0.0; kept * plane];
        for (i, v) in bytes_or_floats.into_iter().enumerate() {
            let channel = i % channels;
            if channel < kept {
                pixels[channel * plane + i / channels] = v;
            }
        }
        Image::new(kept, self.image_height, self.image_width, pixels)
    }

    fn label(&self) -> Option<usize> {
        match self.annotation {
            burn::data::dataset::vision::Annotation::Label(l) => Some(l),
            _ => None,
        }
    }

    fn id(&self) -> Option<String> {
        Some(self.image_path.clone())
    }
}

/// burn's MNIST items: 28×28 grey, pixel values 0–255 as floats.
///
/// ```
/// use burn::data::dataset::vision::MnistItem;
/// use poisoncam::AsImage;
///
/// let mut item = MnistItem { image: [[0.0; 28]; 28], label: 7 };
/// item.image[3][5] = 255.0;
/// let image = item.as_image().unwrap();
/// assert_eq!((image.channels(), image.get(0, 3, 5)), (1, 1.0));
/// assert_eq!(item.label(), Some(7));
/// ```
impl AsImage for MnistItem {
    fn as_image(&self) -> Result<Image> {
        let pixels = self.image.iter().flatten().map(|v| (v / 255.0).clamp(0.0, 1.0)).collect();
        Image::new(1, self.image.len(), self.image[0].len(), pixels)
    }

    fn label(&self) -> Option<usize> {
        Some(usize::from(self.label))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder_item(channels: usize, values: &[u16]) -> ImageDatasetItem {
        ImageDatasetItem {
            image: values.iter().map(|&v| PixelDepth::U16(v)).collect(),
            image_width: values.len() / channels,
            image_height: 1,
            annotation: burn::data::dataset::vision::Annotation::Label(0),
            image_path: "x.png".into(),
        }
    }

    #[test]
    fn alpha_is_dropped_from_folder_items() {
        // Grey+alpha, two pixels: grey 0 and full, alpha anything.
        let grey = folder_item(2, &[0, 65535, 65535, 7]).as_image().unwrap();
        assert_eq!((grey.channels(), grey.width(), grey.pixels()), (1, 2, &[0.0, 1.0][..]));
        let rgba = folder_item(4, &[0, 65535, 0, 1, 65535, 0, 0, 2]).as_image().unwrap();
        assert_eq!(rgba.channels(), 3);
        assert_eq!(rgba.pixels(), &[0.0, 1.0, 1.0, 0.0, 0.0, 0.0]);
    }

    #[test]
    fn folder_items_with_five_channels_are_errors() {
        assert!(matches!(folder_item(5, &[0; 10]).as_image(), Err(Error::ImageShape { channels: 5, .. })));
    }
}
