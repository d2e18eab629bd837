//! Reading a torchvision ResNet out of a checkpoint: burn-store reads the tensors, this file
//! decides which are the backbone's, checks each against the shape the architecture needs, and
//! folds the batch norms in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use burn::config::Config;
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::{ModuleStore, PytorchStore, SafetensorsStore, TensorSnapshot};

use super::blocks::{Block, ConvNorm};
use super::problem::CheckpointProblem;
use super::{archive, keys, Arch, Normalization, ResNet, ResNetConfig, Stem};
use crate::error::{Error, Result};

/// torchvision's `BatchNorm2d` ε, which a state_dict does not store.
const BATCH_NORM_EPS: f64 = 1e-5;

/// The user's encoder: where the checkpoint is, and what the file cannot say about it.
#[derive(Config, Debug, PartialEq)]
pub struct EncoderFile {
    /// A `state_dict` saved by `torch.save` (PyTorch ≥ 1.6: `.pth`, `.pt`, `.pth.tar`, a
    /// Lightning `.ckpt` of tensors and plain values) or a `.safetensors` file.
    pub path: PathBuf,
    /// The architecture; read off the keys when `None`, and an error when the keys disagree.
    #[config(default = "None")]
    pub arch: Option<Arch>,
    /// The stem; a 7×7 first convolution is `imagenet`, a 3×3 one must be named (its padding
    /// and the missing max-pool leave no weights).
    #[config(default = "None")]
    pub stem: Option<Stem>,
    /// The words before torchvision's key names that pick one backbone (`encoder_q`,
    /// `backbone`); needed only when the file holds more than one.
    #[config(default = "None")]
    pub key_prefix: Option<String>,
    /// The side the encoder was trained at.
    pub input_size: usize,
    /// The standardisation the encoder was trained with.
    pub normalization: Normalization,
}

impl EncoderFile {
    /// Reads the checkpoint into a ResNet on `device`, with the settings it was built from.
    pub fn load<B: Backend>(&self, device: &B::Device) -> Result<(ResNet<B>, ResNetConfig)> {
        let fail = |problem| Error::Checkpoint { path: self.path.clone(), problem };
        crate::check::at_least("encoder.input_size", self.input_size, 1, "at least 1")?;
        let tensors = read_tensors(&self.path).map_err(fail)?;
        let found = keys::choose(&keys::candidates(tensors.keys().map(String::as_str)), self.key_prefix.as_deref())
            .map_err(fail)?;
        let weights = Weights { tensors: &tensors, found };
        let config = weights.config(self).map_err(fail)?;
        let model = weights.build(&config, device).map_err(fail)?;
        Ok((model, config))
    }
}

/// Every tensor of the file by its full key: a torch zip is checked first (`pickle::check`).
fn read_tensors(path: &Path) -> Result<BTreeMap<String, TensorSnapshot>, CheckpointProblem> {
    let mut head = [0u8; 9];
    let mut file = archive::open(path)?;
    let read = std::io::Read::read(&mut file, &mut head).map_err(|e| CheckpointProblem::Unreadable(e.to_string()))?;
    let unreadable = |e: &dyn std::fmt::Display| CheckpointProblem::Unreadable(e.to_string());
    if read >= 4 && head[..4] == *b"PK\x03\x04" {
        archive::check(path)?;
        // burn-store renumbers gaps in indices by default (`0, 2, 4` to `0, 1, 2`), which would
        // move an nn.Sequential's children onto each other's names.
        let mut store = PytorchStore::from_file(path).map_indices_contiguous(false);
        return store.get_all_snapshots().cloned().map_err(|e| unreadable(&e));
    }
    // safetensors: an 8-byte little-endian header length, then the JSON header.
    if read == 9 && head[8] == b'{' {
        let mut store = SafetensorsStore::from_file(path);
        return store.get_all_snapshots().cloned().map_err(|e| unreadable(&e));
    }
    Err(CheckpointProblem::Unreadable(
        "neither a PyTorch zip checkpoint (torch.save since PyTorch 1.6) nor safetensors; see the README for \
         converting an older file to safetensors"
            .into(),
    ))
}

/// The file's tensors seen through one backbone's keys.
struct Weights<'a> {
    tensors: &'a BTreeMap<String, TensorSnapshot>,
    found: keys::Found,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Option<&TensorSnapshot> {
        self.tensors.get(&self.found.key(name))
    }

    fn dims(&self, name: &str) -> Result<Vec<usize>, CheckpointProblem> {
        self.get(name).map(|t| t.shape.to_vec()).ok_or_else(|| self.missing(name))
    }

    fn missing(&self, name: &str) -> CheckpointProblem {
        CheckpointProblem::MissingTensor(self.found.key(name))
    }

    /// The architecture, stem and widths the keys show, checked against what `file` asks.
    fn config(&self, file: &EncoderFile) -> Result<ResNetConfig, CheckpointProblem> {
        let bottleneck = self.get("layer1.0.conv3.weight").is_some();
        let mut layers = [0usize; 4];
        for (stage, count) in layers.iter_mut().enumerate() {
            while self.get(&format!("layer{}.{}.conv1.weight", stage + 1, *count)).is_some() {
                *count += 1;
            }
        }
        let block = if bottleneck { "Bottleneck" } else { "BasicBlock" };
        let found = Arch::ALL.into_iter().find(|a| a.bottleneck() == bottleneck && a.layers() == layers);
        let shown = found.map_or(format!("{block}s in stages of {layers:?}"), |a| a.name().to_string());
        let arch = match (file.arch, found) {
            (Some(given), Some(found)) if given == found => given,
            (Some(given), _) => {
                return Err(CheckpointProblem::ArchMismatch { given: given.name().into(), found: shown });
            }
            (None, Some(found)) => found,
            (None, None) => return Err(CheckpointProblem::NotResNet(format!("{shown} is no torchvision ResNet"))),
        };
        let mut widths = [0usize; 4];
        for (stage, width) in widths.iter_mut().enumerate() {
            *width = self.dims(&format!("layer{}.0.conv1.weight", stage + 1))?[0];
        }
        let kernel = self.dims("conv1.weight")?.last().copied().unwrap_or(0);
        let stem = match (file.stem, kernel) {
            (Some(stem), k) if stem.kernel() == k => stem,
            (Some(stem), k) => {
                return Err(CheckpointProblem::Stem(format!(
                    "the {stem:?} stem has a {0}×{0} first convolution, the file's is {k}×{k}",
                    stem.kernel()
                )))
            }
            (None, 7) => Stem::Imagenet,
            (None, 3) => {
                return Err(CheckpointProblem::Stem(
                    "the first convolution is 3×3: name the stem, `cifar` (padding 1) or `cifar-pad2` \
                     (padding 2, solo-learn)"
                        .into(),
                ))
            }
            (None, k) => return Err(CheckpointProblem::NotResNet(format!("a {k}×{k} first convolution"))),
        };
        Ok(ResNetConfig::new(arch, stem, file.input_size, file.normalization).with_widths(widths))
    }

    /// A tensor of exactly the `expected` shape, as f32.
    fn tensor<B: Backend, const D: usize>(
        &self,
        name: &str,
        expected: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>, CheckpointProblem> {
        let key = self.found.key(name);
        let snapshot = self.get(name).ok_or_else(|| self.missing(name))?;
        if snapshot.shape.to_vec() != expected {
            return Err(CheckpointProblem::Shape { key, expected: expected.to_vec(), found: snapshot.shape.to_vec() });
        }
        if !matches!(snapshot.dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16) {
            let reason = format!("holds {:?}, not floats", snapshot.dtype);
            return Err(CheckpointProblem::Values { key, reason });
        }
        let data =
            snapshot.to_data().map_err(|e| CheckpointProblem::Values { key: key.clone(), reason: e.to_string() })?;
        let values: Vec<f32> = data
            .convert::<f32>()
            .into_vec()
            .map_err(|e| CheckpointProblem::Values { key: key.clone(), reason: format!("{e:?}") })?;
        if values.iter().any(|v| !v.is_finite()) {
            return Err(CheckpointProblem::Values { key, reason: "holds a value that is not finite".into() });
        }
        Ok(Tensor::from_data(TensorData::new(values, expected), device))
    }

    /// `conv` (torchvision's name of the convolution, e.g. `layer1.0.conv1`) and `norm` (its
    /// batch norm) folded into `target`.
    fn conv_norm<B: Backend>(
        &self,
        target: ConvNorm<B>,
        conv: &str,
        norm: &str,
        device: &B::Device,
    ) -> Result<ConvNorm<B>, CheckpointProblem> {
        let dims = target.kernel_dims();
        let weight = self.tensor(&format!("{conv}.weight"), dims, device)?;
        let out = [dims[0]];
        let part = |p: &str| self.tensor::<B, 1>(&format!("{norm}.{p}"), out, device);
        let statistics = [part("weight")?, part("bias")?, part("running_mean")?, part("running_var")?];
        let var = statistics[3].clone().into_data().into_vec::<f32>().unwrap_or_default();
        if var.iter().any(|&v| v < 0.0) {
            let reason = "a running variance is negative".into();
            return Err(CheckpointProblem::Values { key: self.found.key(&format!("{norm}.running_var")), reason });
        }
        Ok(target.fold(weight, statistics, BATCH_NORM_EPS))
    }

    fn build<B: Backend>(&self, config: &ResNetConfig, device: &B::Device) -> Result<ResNet<B>, CheckpointProblem> {
        let mut model = config.init::<B>(device);
        model.stem = self.conv_norm(model.stem, "conv1", "bn1", device)?;
        let stages = std::mem::take(&mut model.stages);
        for (s, stage) in stages.into_iter().enumerate() {
            let mut loaded = Vec::with_capacity(stage.len());
            for (b, block) in stage.into_iter().enumerate() {
                loaded.push(self.block(block, &format!("layer{}.{b}", s + 1), device)?);
            }
            model.stages.push(loaded);
        }
        Ok(model)
    }

    fn block<B: Backend>(
        &self,
        block: Block<B>,
        name: &str,
        device: &B::Device,
    ) -> Result<Block<B>, CheckpointProblem> {
        let mut convs = Vec::with_capacity(block.convs.len());
        for (i, conv) in block.convs.into_iter().enumerate() {
            convs.push(self.conv_norm(
                conv,
                &format!("{name}.conv{}", i + 1),
                &format!("{name}.bn{}", i + 1),
                device,
            )?);
        }
        let downsample = match block.downsample {
            Some(d) => {
                Some(self.conv_norm(d, &format!("{name}.downsample.0"), &format!("{name}.downsample.1"), device)?)
            }
            None if self.get(&format!("{name}.downsample.0.weight")).is_some() => {
                return Err(CheckpointProblem::Shape {
                    key: self.found.key(&format!("{name}.downsample.0.weight")),
                    expected: Vec::new(),
                    found: self.dims(&format!("{name}.downsample.0.weight"))?,
                });
            }
            None => None,
        };
        Ok(Block { convs, downsample })
    }
}
