//! The training images as one contiguous `N×C×H×W` buffer, from which batches are cut.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::error::{Error, Result};
use crate::image::Image;

/// Images resized to one working size and channel count.
#[derive(Clone, Debug)]
pub struct ImageBatchSource {
    data: Vec<f32>,
    shape: [usize; 4],
}

impl ImageBatchSource {
    /// Resizes every image to `height × width` and `channels` channels.
    pub fn new(images: &[Image], channels: usize, height: usize, width: usize) -> Result<Self> {
        if images.is_empty() {
            return Err(Error::NoInput("the working images"));
        }
        if channels == 0 || height == 0 || width == 0 {
            return Err(Error::Config(format!("working size {channels}×{height}×{width} is empty")));
        }
        let mut data = Vec::with_capacity(images.len() * channels * height * width);
        for image in images {
            data.extend_from_slice(image.with_channels(channels).resized(height, width).pixels());
        }
        Ok(Self { data, shape: [images.len(), channels, height, width] })
    }

    /// Uses the size of the first image, and RGB if any image is RGB.
    pub fn with_natural_size(images: &[Image]) -> Result<Self> {
        let first = images.first().ok_or(Error::NoInput("the working images"))?;
        let channels = images.iter().map(Image::channels).max().unwrap_or(1);
        Self::new(images, channels, first.height(), first.width())
    }

    /// Wraps an `N×C×H×W` buffer as it is.
    pub fn from_raw(data: Vec<f32>, shape: [usize; 4]) -> Result<Self> {
        let expected: usize = shape.iter().product();
        if data.len() != expected || expected == 0 {
            return Err(Error::ImageShape {
                channels: shape[1],
                height: shape[2],
                width: shape[3],
                expected,
                got: data.len(),
            });
        }
        Ok(Self { data, shape })
    }

    /// The pixels of image `i`, `C×H×W`.
    pub fn pixels(&self, i: usize) -> &[f32] {
        let size = self.shape[1] * self.shape[2] * self.shape[3];
        &self.data[i * size..(i + 1) * size]
    }

    /// The images at `rows`, in that order.
    pub fn subset(&self, rows: &[usize]) -> Result<Self> {
        let mut data = Vec::with_capacity(rows.len() * self.pixels(0).len());
        for &r in rows {
            data.extend_from_slice(self.pixels(r));
        }
        Self::from_raw(data, [rows.len(), self.shape[1], self.shape[2], self.shape[3]])
    }

    /// Image `i` as an [`Image`].
    pub fn image(&self, i: usize) -> Image {
        let [_, c, h, w] = self.shape;
        Image::new(c, h, w, self.pixels(i).to_vec()).expect("the buffer holds whole images")
    }

    /// The number of images.
    pub fn len(&self) -> usize {
        self.shape[0]
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.shape[0] == 0
    }

    /// `[N, C, H, W]`.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The images at `indices`, stacked on `device`.
    pub fn batch<B: Backend>(&self, indices: &[usize], device: &B::Device) -> Tensor<B, 4> {
        let [_, c, h, w] = self.shape;
        let size = c * h * w;
        let mut values = Vec::with_capacity(indices.len() * size);
        for &i in indices {
            values.extend_from_slice(&self.data[i * size..(i + 1) * size]);
        }
        Tensor::from_data(TensorData::new(values, [indices.len(), c, h, w]), device)
    }

    /// [`Image::fingerprint`] of image `i`: a sample's identity wherever it is judged.
    pub fn row_fingerprint(&self, i: usize) -> u64 {
        let [_, c, h, w] = self.shape;
        crate::image::content_fingerprint([c, h, w], self.pixels(i))
    }

    /// A 64-bit FNV-1a hash of shape and pixels: names the cache entry of a training run.
    pub fn fingerprint(&self) -> u64 {
        let mut hash = Fnv::default();
        for d in self.shape {
            hash.write(&(d as u64).to_le_bytes());
        }
        for v in &self.data {
            hash.write(&v.to_bits().to_le_bytes());
        }
        hash.0
    }
}

/// FNV-1a: tiny, stable across Rust versions (unlike `DefaultHasher`), good enough for cache keys.
pub(crate) struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::Flex;

    #[test]
    fn batches_pick_the_right_images_at_the_working_size() {
        let images: Vec<Image> = (0..3).map(|i| Image::new(1, 2, 2, vec![i as f32 / 10.0; 4]).unwrap()).collect();
        let source = ImageBatchSource::new(&images, 3, 4, 4).unwrap();
        let batch = source.batch::<Flex>(&[2, 0], &Default::default());
        assert_eq!(batch.dims(), [2, 3, 4, 4]);
        let values: Vec<f32> = batch.into_data().to_vec().unwrap();
        assert!((values[0] - 0.2).abs() < 1e-6 && values[48].abs() < 1e-6);
        let other = ImageBatchSource::new(&images[..2], 3, 4, 4).unwrap();
        assert_ne!(source.fingerprint(), other.fingerprint());
        assert!(ImageBatchSource::new(&[], 1, 2, 2).is_err());
    }
}
