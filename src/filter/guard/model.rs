//! The model a guard looks through: the threat model warm-started on the data, or the user's
//! own ResNet read from a checkpoint. Each is saved as a burn record beside the settings that
//! build an empty one of its shape.

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::Tensor;

use crate::detect::embed::Embed;
use crate::detect::resnet::{ResNet, ResNetConfig};
use crate::detect::threat::{load_model, save_model, Backbone, EncoderConfig};
use crate::error::Result;

/// A guard's model, with the settings it was built from.
#[derive(Debug)]
pub enum GuardModel<B: Backend> {
    /// The threat model the filter warm-started.
    WarmStarted(Backbone<B>, EncoderConfig),
    /// The user's encoder ([`crate::detect::resnet::EncoderFile::load`]).
    ResNet(ResNet<B>, ResNetConfig),
}

impl<B: Backend> GuardModel<B> {
    /// Length of its features.
    pub fn feature_dim(&self) -> usize {
        match self {
            GuardModel::WarmStarted(_, config) => config.feature_dim(),
            GuardModel::ResNet(_, config) => config.feature_dim(),
        }
    }

    /// Writes the model's record to `path` (`.mpk` added); returns the file written.
    pub(super) fn save(&self, path: &Path) -> Result<PathBuf> {
        match self {
            GuardModel::WarmStarted(backbone, _) => save_model(backbone, path),
            GuardModel::ResNet(resnet, _) => save_model(resnet, path),
        }
    }

    /// A model of the shape one of `warm` or `resnet` describes, its record read from `path`.
    pub(super) fn load(
        warm: Option<&EncoderConfig>,
        resnet: Option<&ResNetConfig>,
        path: &Path,
        device: &B::Device,
    ) -> Result<Option<Self>> {
        Ok(match (warm, resnet) {
            (_, Some(config)) => {
                Some(GuardModel::ResNet(load_model(config.init(device), path, device)?, config.clone()))
            }
            (Some(config), None) => {
                let backbone = load_model(config.init::<B>(device).backbone, path, device)?;
                Some(GuardModel::WarmStarted(backbone, config.clone()))
            }
            (None, None) => None,
        })
    }
}

impl<B: Backend> Embed<B> for GuardModel<B> {
    fn features(&self, images: Tensor<B, 4>) -> Tensor<B, 2> {
        match self {
            GuardModel::WarmStarted(backbone, _) => backbone.features(images),
            GuardModel::ResNet(resnet, _) => resnet.features(images),
        }
    }

    fn feature_map(&self, images: Tensor<B, 4>) -> Option<Tensor<B, 4>> {
        match self {
            GuardModel::WarmStarted(backbone, _) => Embed::feature_map(backbone, images),
            GuardModel::ResNet(resnet, _) => Embed::feature_map(resnet, images),
        }
    }
}
