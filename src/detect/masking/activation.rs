//! Cluster activation (docs/design.md §3.3): the cosine between an image's backbone feature and a cluster
//! centroid, measured for many edited images at once. Masking and the paste test both reduce to it.

use burn::tensor::backend::Backend;
use burn::tensor::{Bool, Int, Tensor, TensorData};

use crate::detect::embed::Embed;
use crate::detect::masking::cluster::{cosines, Clusters};
use crate::image::PixelBox;

/// What one forward pass says about an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Activation {
    /// Cosine to the centroid the caller asked about.
    pub toward: f32,
    /// The image's nearest centroid (by cosine).
    pub nearest: usize,
}

/// One copy of an uploaded image with a window filled by the image's channel means (`None`:
/// the image as it is), measured toward one cluster.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaskedCopy {
    /// The image's position in the uploaded batch.
    pub image: usize,
    /// The window to fill.
    pub window: Option<PixelBox>,
    /// The cluster to measure toward.
    pub toward: usize,
}

/// A backbone and unit centroids on one device, ready to measure batches of images.
pub struct ActivationProbe<'a, B: Backend> {
    backbone: &'a dyn Embed<B>,
    centroids: Tensor<B, 2>,
    image_shape: [usize; 3],
    batch_size: usize,
    device: B::Device,
    forwards: std::cell::Cell<usize>,
}

impl<'a, B: Backend> ActivationProbe<'a, B> {
    /// A probe of `clusters` through `backbone` for images of `image_shape`, `batch_size` per forward.
    pub fn new(
        backbone: &'a dyn Embed<B>,
        clusters: &Clusters,
        image_shape: [usize; 3],
        batch_size: usize,
        device: &B::Device,
    ) -> Self {
        let centroids = clusters.centroid_tensor(device);
        Self {
            backbone,
            centroids,
            image_shape,
            batch_size: batch_size.max(1),
            device: device.clone(),
            forwards: std::cell::Cell::new(0),
        }
    }

    /// Forward passes so far.
    pub fn forwards(&self) -> usize {
        self.forwards.get()
    }

    /// Measures `pixels` (consecutive `C×H×W` images), the i-th toward cluster `toward[i]`.
    pub fn measure(&self, pixels: &[f32], toward: &[usize]) -> Vec<Activation> {
        let size: usize = self.image_shape.iter().product();
        let batches = pixels
            .chunks(self.batch_size * size)
            .zip(toward.chunks(self.batch_size))
            .map(|(chunk, targets)| self.activations(self.upload(chunk.to_vec()), targets));
        self.read_back(batches.collect())
    }

    /// Measures masked copies of `originals` (consecutive `C×H×W` images) built on the device:
    /// the originals are uploaded once, and each batch of copies is gathered and masked there,
    /// so no copy of an image crosses from the host. `fill` holds each original's channel means.
    ///
    /// On the host (Flex) each batch is copied and masked in place instead: burn's gather and
    /// masked fill there cost a twentieth of a masked forward (docs/warm-start.md, 2026-12-05).
    pub fn measure_masked(&self, originals: &[f32], fill: &[f32], copies: &[MaskedCopy]) -> Vec<Activation> {
        let [c, h, w] = self.image_shape;
        let on_device = (!crate::backend::is_host::<B>()).then(|| {
            let n = originals.len() / (c * h * w).max(1);
            let uploaded = Tensor::<B, 4>::from_data(TensorData::new(originals.to_vec(), [n, c, h, w]), &self.device);
            let means = Tensor::<B, 4>::from_data(TensorData::new(fill.to_vec(), [n, c, 1, 1]), &self.device);
            (uploaded, means)
        });
        let batches = copies.chunks(self.batch_size).map(|chunk| {
            let batch = match &on_device {
                Some((uploaded, means)) => masked_batch(uploaded, means, chunk, [h, w], &self.device),
                None => self.upload(masked_on_host(originals, fill, chunk, self.image_shape)),
            };
            let toward: Vec<usize> = chunk.iter().map(|copy| copy.toward).collect();
            self.activations(batch, &toward)
        });
        self.read_back(batches.collect())
    }

    /// Consecutive images of the probe's shape as one batch on its device.
    fn upload(&self, pixels: Vec<f32>) -> Tensor<B, 4> {
        let [c, h, w] = self.image_shape;
        let n = pixels.len() / (c * h * w).max(1);
        Tensor::<B, 4>::from_data(TensorData::new(pixels, [n, c, h, w]), &self.device)
    }

    /// The activations of one batch, left on the device: the cosine toward each target and the
    /// nearest centroid.
    fn activations(&self, images: Tensor<B, 4>, targets: &[usize]) -> (Tensor<B, 2>, Tensor<B, 2, Int>) {
        let n = targets.len();
        let k = self.centroids.dims()[0];
        let to_centroids = cosines(self.backbone.features(images), self.centroids.clone());
        let nearest = to_centroids.clone().argmax(1);
        let index = Tensor::<B, 1, Int>::from_data(
            TensorData::new(targets.iter().map(|&t| t.min(k - 1) as i64).collect::<Vec<_>>(), [n]),
            &self.device,
        )
        .reshape([n, 1]);
        self.forwards.set(self.forwards.get() + n);
        (to_centroids.gather(1, index), nearest)
    }

    /// Every batch's activations read back at once: on a GPU, a read-back waits for the device,
    /// so one per call instead of one per batch keeps it busy.
    fn read_back(&self, batches: Vec<(Tensor<B, 2>, Tensor<B, 2, Int>)>) -> Vec<Activation> {
        if batches.is_empty() {
            return Vec::new();
        }
        let (chosen, nearest): (Vec<_>, Vec<_>) = batches.into_iter().unzip();
        let chosen: Vec<f32> = Tensor::cat(chosen, 0).into_data().iter::<f32>().collect();
        let nearest: Vec<i64> = Tensor::cat(nearest, 0).into_data().iter::<i64>().collect();
        chosen
            .into_iter()
            .zip(nearest)
            .map(|(toward, nearest)| Activation { toward, nearest: nearest as usize })
            .collect()
    }
}

/// [`masked_batch`] on the host: the copies' pixels, each the image of `originals` (consecutive
/// `C×H×W` images) it names with its window set to that image's channel means in `fill`.
pub fn masked_on_host(originals: &[f32], fill: &[f32], copies: &[MaskedCopy], shape: [usize; 3]) -> Vec<f32> {
    let [c, h, w] = shape;
    let size = c * h * w;
    let mut pixels = Vec::with_capacity(copies.len() * size);
    for copy in copies {
        let start = pixels.len();
        pixels.extend_from_slice(&originals[copy.image * size..][..size]);
        if let Some(window) = &copy.window {
            mask_window(&mut pixels[start..], shape, window, &fill[copy.image * c..][..c]);
        }
    }
    pixels
}

/// The copies as one `M×C×H×W` batch: each the uploaded image it names, with its window set to
/// that image's channel means. Only indices and window corners are uploaded.
pub fn masked_batch<B: Backend>(
    uploaded: &Tensor<B, 4>,
    means: &Tensor<B, 4>,
    copies: &[MaskedCopy],
    [h, w]: [usize; 2],
    device: &B::Device,
) -> Tensor<B, 4> {
    let m = copies.len();
    let c = uploaded.dims()[1];
    let ints = |f: &dyn Fn(&MaskedCopy) -> i64| {
        Tensor::<B, 1, Int>::from_data(TensorData::new(copies.iter().map(f).collect::<Vec<i64>>(), [m]), device)
    };
    let rows = ints(&|copy| copy.image as i64);
    let base = uploaded.clone().select(0, rows.clone());
    let fill = means.clone().select(0, rows).expand([m, c, h, w]);
    // An unmasked copy gets an empty window.
    let corner = |f: fn(&PixelBox) -> usize| move |copy: &MaskedCopy| copy.window.as_ref().map_or(0, |b| f(b) as i64);
    let edge = |lo: Tensor<B, 1, Int>, hi: Tensor<B, 1, Int>, along: usize, shape: [usize; 4]| -> Tensor<B, 4, Bool> {
        let at = Tensor::<B, 1, Int>::arange(0..along as i64, device);
        let at = if shape[3] == 1 { at.reshape([1, 1, along, 1]) } else { at.reshape([1, 1, 1, along]) };
        let at = at.expand([m, 1, shape[2], shape[3]]);
        let lo = lo.reshape([m, 1, 1, 1]).expand([m, 1, shape[2], shape[3]]);
        let hi = hi.reshape([m, 1, 1, 1]).expand([m, 1, shape[2], shape[3]]);
        at.clone().greater_equal(lo).bool_and(at.lower(hi))
    };
    let x0 = ints(&corner(|b| b.x));
    let x1 = ints(&corner(|b| b.x + b.w));
    let y0 = ints(&corner(|b| b.y));
    let y1 = ints(&corner(|b| b.y + b.h));
    let inside_x = edge(x0, x1, w, [m, 1, 1, w]).expand([m, c, h, w]);
    let inside_y = edge(y0, y1, h, [m, 1, h, 1]).expand([m, c, h, w]);
    base.mask_where(inside_x.bool_and(inside_y), fill)
}

/// Fills `window` of a `C×H×W` image with each channel's mean: how the probe builds masked
/// copies on the host, and the reference the device-built batches are tested against.
pub(crate) fn mask_window(pixels: &mut [f32], shape: [usize; 3], window: &PixelBox, fill: &[f32]) {
    let [c, h, w] = shape;
    for (plane, &mean) in pixels.chunks_exact_mut((h * w).max(1)).zip(&fill[..c]) {
        for y in window.y..(window.y + window.h).min(h) {
            plane[y * w + window.x..y * w + (window.x + window.w).min(w)].fill(mean);
        }
    }
}

/// Per-channel means of a `C×H×W` image.
pub fn channel_means(pixels: &[f32], channels: usize) -> Vec<f32> {
    let size = pixels.len() / channels.max(1);
    pixels.chunks(size.max(1)).map(|ch| ch.iter().sum::<f32>() / size.max(1) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Compute;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    #[test]
    fn masked_batches_built_on_the_device_equal_the_host_built_ones() {
        let (n, c, h, w) = (3, 3, 9, 7);
        let mut rng = StdRng::seed_from_u64(5);
        let originals: Vec<f32> = (0..n * c * h * w).map(|_| rng.random::<f32>()).collect();
        let size = c * h * w;
        let fill: Vec<f32> = originals.chunks(size).flat_map(|image| channel_means(image, c)).collect();
        let mut copies = vec![MaskedCopy { image: 1, window: None, toward: 0 }];
        for _ in 0..40 {
            let (bw, bh) = (rng.random_range(1..=w), rng.random_range(1..=h));
            let window = PixelBox { x: rng.random_range(0..=w - bw), y: rng.random_range(0..=h - bh), w: bw, h: bh };
            copies.push(MaskedCopy { image: rng.random_range(0..n), window: Some(window), toward: 0 });
        }
        copies.push(MaskedCopy { image: 2, window: Some(PixelBox { x: 0, y: 0, w, h }), toward: 0 });

        let device = Default::default();
        let uploaded = Tensor::<Compute, 4>::from_data(TensorData::new(originals.clone(), [n, c, h, w]), &device);
        let means = Tensor::<Compute, 4>::from_data(TensorData::new(fill.clone(), [n, c, 1, 1]), &device);
        let on_device: Vec<f32> =
            masked_batch(&uploaded, &means, &copies, [h, w], &device).into_data().iter::<f32>().collect();

        let on_host = masked_on_host(&originals, &fill, &copies, [c, h, w]);
        assert_eq!(on_device, on_host, "bit for bit");
    }

    #[test]
    fn the_probe_measures_host_built_copies_as_the_device_built_batch() {
        use crate::detect::embed::embed;
        use crate::detect::masking::cluster::KMeansConfig;
        use crate::detect::threat::{init_model, EncoderConfig};
        use crate::image::ImageBatchSource;
        let (n, h, w) = (6, 10, 10);
        let device = Default::default();
        let model = init_model::<Compute>(&EncoderConfig::new(), 3, &device);
        let mut rng = StdRng::seed_from_u64(9);
        let originals: Vec<f32> = (0..n * h * w).map(|_| rng.random::<f32>()).collect();
        let images = ImageBatchSource::from_raw(originals.clone(), [n, 1, h, w]).unwrap();
        let clusters =
            KMeansConfig::new().with_k(Some(2)).fit::<Compute>(&embed(&model.backbone, &images, 4, &device), &device);
        let clusters = clusters.unwrap();
        let fill: Vec<f32> = originals.chunks(h * w).flat_map(|image| channel_means(image, 1)).collect();
        let copies: Vec<MaskedCopy> = (0..15)
            .map(|k| MaskedCopy {
                image: k % n,
                window: (k % 4 != 0).then(|| PixelBox { x: k % 7, y: (3 * k) % 6, w: 1 + k % 4, h: 2 + k % 3 }),
                toward: k % 2,
            })
            .collect();
        // A batch of 4 cuts the 15 copies unevenly.
        let probe = ActivationProbe::new(&model.backbone, &clusters, [1, h, w], 4, &device);
        let uploaded = Tensor::<Compute, 4>::from_data(TensorData::new(originals.clone(), [n, 1, h, w]), &device);
        let means = Tensor::<Compute, 4>::from_data(TensorData::new(fill.clone(), [n, 1, 1, 1]), &device);
        let built: Vec<f32> =
            masked_batch(&uploaded, &means, &copies, [h, w], &device).into_data().iter::<f32>().collect();
        let toward: Vec<usize> = copies.iter().map(|copy| copy.toward).collect();
        assert_eq!(probe.measure_masked(&originals, &fill, &copies), probe.measure(&built, &toward));
        assert_eq!(probe.forwards(), 30);
    }

    #[test]
    fn mask_fills_only_the_window() {
        let mut pixels: Vec<f32> = (0..2 * 4 * 4).map(|v| v as f32).collect();
        let fill = channel_means(&pixels, 2);
        assert_eq!(fill, vec![7.5, 23.5]);
        mask_window(&mut pixels, [2, 4, 4], &PixelBox { x: 1, y: 2, w: 2, h: 2 }, &fill);
        assert_eq!(pixels[2 * 4 + 1], 7.5);
        assert_eq!(pixels[16 + 3 * 4 + 2], 23.5);
        assert_eq!(pixels[0], 0.0);
        assert_eq!(pixels[16 + 3 * 4 + 3], 31.0);
    }
}
