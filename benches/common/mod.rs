//! Set-up shared by the benches.

use poisoncam::data::FashionMnist;
use poisoncam::image::ImageBatchSource;
use poisoncam::Image;

/// The first `n` embedded Fashion-MNIST images, at their own size.
pub fn embedded_images(n: usize) -> ImageBatchSource {
    let data = FashionMnist::embedded().expect("embedded data");
    let images: Vec<Image> = data.items().iter().take(n).map(|i| i.image.clone()).collect();
    ImageBatchSource::with_natural_size(&images).expect("images")
}
