//! A burn `Batcher` that stacks any [`AsImage`] items into an `N×C×H×W` tensor, so a filtered
//! dataset plugs straight into `DataLoaderBuilder`.

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::image::AsImage;

/// Resizes every item to `channels × height × width`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageBatcher {
    /// Channels of every batch (grey is repeated to RGB, RGB becomes its luma for grey).
    pub channels: usize,
    /// Rows every image is resized to.
    pub height: usize,
    /// Columns every image is resized to.
    pub width: usize,
}

impl<B: Backend, I: AsImage> Batcher<B, I, Tensor<B, 4>> for ImageBatcher {
    /// Items whose image cannot be read are left out of the batch (a `PoisonFilter` has already
    /// removed and logged them).
    fn batch(&self, items: Vec<I>, device: &B::Device) -> Tensor<B, 4> {
        let (c, h, w) = (self.channels, self.height, self.width);
        let mut values = Vec::with_capacity(items.len() * c * h * w);
        let mut n = 0;
        for image in items.iter().filter_map(|i| i.as_image().ok()) {
            values.extend_from_slice(image.with_channels(c).resized(h, w).pixels());
            n += 1;
        }
        Tensor::from_data(TensorData::new(values, [n, c, h, w]), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Compute;
    use crate::image::Image;

    #[test]
    fn stacks_resized_items() {
        let items =
            vec![Image::new(1, 2, 2, vec![0.0, 0.25, 0.5, 1.0]).unwrap(), Image::new(1, 4, 4, vec![1.0; 16]).unwrap()];
        let batcher = ImageBatcher { channels: 3, height: 2, width: 2 };
        let t: Tensor<Compute, 4> = batcher.batch(items, &Default::default());
        assert_eq!(t.dims(), [2, 3, 2, 2]);
        let v: Vec<f32> = t.into_data().iter::<f32>().collect();
        assert_eq!(&v[..4], &[0.0, 0.25, 0.5, 1.0]);
        assert_eq!(&v[4..8], &[0.0, 0.25, 0.5, 1.0], "grey is copied to every channel");
        assert!(v[12..].iter().all(|&x| (x - 1.0).abs() < 1e-6));
    }
}
