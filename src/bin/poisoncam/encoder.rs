//! `--encoder FILE` and the settings a checkpoint cannot say about itself, shared by `scan` and
//! `eval`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use poisoncam::detect::resnet::{Arch, EncoderFile, Normalization, Stem};
use poisoncam::{Error, Result};

#[derive(Args, Clone, Debug, Default)]
pub struct EncoderArgs {
    /// Your own SSL encoder: a torchvision ResNet state_dict (`.pth`, `.pt`, `.pth.tar`,
    /// `.ckpt`, or `.safetensors`). Masking looks through it instead of a warm-started model.
    #[arg(long)]
    pub encoder: Option<PathBuf>,
    /// The architecture; read off the checkpoint's keys when left out.
    #[arg(long, value_enum, requires = "encoder")]
    pub arch: Option<ArchArg>,
    /// The stem: `imagenet` (7×7, max-pool), `cifar` (3×3 padding 1, no max-pool) or
    /// `cifar-pad2` (solo-learn's CIFAR models). Needed when the first convolution is 3×3.
    #[arg(long, value_enum, requires = "encoder")]
    pub stem: Option<StemArg>,
    /// The words before torchvision's key names that pick one backbone when the file holds
    /// several (`encoder_q`, `backbone`).
    #[arg(long, requires = "encoder")]
    pub key_prefix: Option<String>,
    /// The side the encoder was trained at (images are resized to it). Required with --encoder.
    #[arg(long, requires = "encoder")]
    pub input_size: Option<usize>,
    /// How the encoder's training standardised pixels. Required with --encoder.
    #[arg(long, value_enum, requires = "encoder")]
    pub normalize: Option<NormArg>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ArchArg {
    Resnet18,
    Resnet34,
    Resnet50,
    Resnet101,
    Resnet152,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StemArg {
    Imagenet,
    Cifar,
    CifarPad2,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NormArg {
    Imagenet,
    Cifar,
    None,
}

impl EncoderArgs {
    /// The encoder file the flags describe, or `None` without `--encoder`.
    pub fn file(&self) -> Result<Option<EncoderFile>> {
        let Some(path) = &self.encoder else { return Ok(None) };
        let (Some(input_size), Some(normalize)) = (self.input_size, self.normalize) else {
            return Err(Error::Config(
                "--encoder needs --input-size and --normalize: the size and standardisation the encoder was \
                 trained with, which a checkpoint does not record"
                    .into(),
            ));
        };
        let normalization = match normalize {
            NormArg::Imagenet => Normalization::Imagenet,
            NormArg::Cifar => Normalization::Cifar,
            NormArg::None => Normalization::None,
        };
        let arch = self.arch.map(|a| match a {
            ArchArg::Resnet18 => Arch::ResNet18,
            ArchArg::Resnet34 => Arch::ResNet34,
            ArchArg::Resnet50 => Arch::ResNet50,
            ArchArg::Resnet101 => Arch::ResNet101,
            ArchArg::Resnet152 => Arch::ResNet152,
        });
        let stem = self.stem.map(|s| match s {
            StemArg::Imagenet => Stem::Imagenet,
            StemArg::Cifar => Stem::Cifar,
            StemArg::CifarPad2 => Stem::CifarPad2,
        });
        Ok(Some(
            EncoderFile::new(path.clone(), input_size, normalization)
                .with_arch(arch)
                .with_stem(stem)
                .with_key_prefix(self.key_prefix.clone()),
        ))
    }
}
