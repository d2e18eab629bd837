//! The shape of one host convolution, shared by its column builders.

/// The shape of one 2-D convolution: groups 1, dilation 1, symmetric padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub channels_in: usize,
    /// Output channels.
    pub channels_out: usize,
    /// Input height and width.
    pub input: [usize; 2],
    /// Kernel height and width.
    pub kernel: [usize; 2],
    /// Stride along height and width.
    pub stride: [usize; 2],
    /// Zero padding on each side, along height and width.
    pub padding: [usize; 2],
}

impl ConvShape {
    /// Output height and width; `None` when the kernel does not fit the padded input.
    pub fn output(&self) -> Option<[usize; 2]> {
        let side = |d: usize| {
            let padded = self.input[d] + 2 * self.padding[d];
            (padded >= self.kernel[d] && self.stride[d] > 0).then(|| (padded - self.kernel[d]) / self.stride[d] + 1)
        };
        Some([side(0)?, side(1)?])
    }

    pub(super) fn patch_len(&self) -> usize {
        self.channels_in * self.kernel[0] * self.kernel[1]
    }

    pub(super) fn image_len(&self) -> usize {
        self.channels_in * self.input[0] * self.input[1]
    }
}
