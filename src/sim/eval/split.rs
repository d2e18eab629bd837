//! A seeded train/test split that keeps every class's share in both halves.

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::data::ImageDataset;
use crate::error::{Error, Result};

/// Splits `all` so that `train` items go to the training half, each class contributing in
/// proportion to its size (rounded; the last class takes the remainder), chosen under `seed`.
/// Both halves keep the input order. Folders are read class by class, so a split of the front
/// would put whole classes on one side.
pub fn stratified_split(all: &ImageDataset, train: usize, seed: u64) -> Result<(ImageDataset, ImageDataset)> {
    let n = all.items().len();
    if train == 0 || train >= n {
        return Err(Error::Config(format!("train size {train} leaves no test images out of {n}")));
    }
    let mut by_class: Vec<Vec<usize>> = Vec::new();
    for (index, item) in all.items().iter().enumerate() {
        let label = item.label.ok_or(Error::MissingLabel { index, needed: "the stratified split" })?;
        if by_class.len() <= label {
            by_class.resize(label + 1, Vec::new());
        }
        by_class[label].push(index);
    }
    let mut rng = StdRng::seed_from_u64(seed ^ 0x7370_6c69_74);
    let mut is_train = vec![false; n];
    let mut taken = 0;
    let classes: Vec<&mut Vec<usize>> = by_class.iter_mut().filter(|c| !c.is_empty()).collect();
    let last = classes.len() - 1;
    for (c, members) in classes.into_iter().enumerate() {
        members.shuffle(&mut rng);
        let share =
            if c == last { train - taken } else { ((members.len() * train) as f64 / n as f64).round() as usize };
        let share = share.min(members.len()).min(train - taken);
        for &i in &members[..share] {
            is_train[i] = true;
        }
        taken += share;
    }
    let pick = |keep: bool| {
        ImageDataset::new(
            all.items().iter().zip(&is_train).filter(|(_, &t)| t == keep).map(|(i, _)| i.clone()).collect(),
        )
    };
    Ok((pick(true), pick(false)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::ImageItem;
    use crate::image::Image;

    fn sorted_by_class(per_class: usize, classes: usize) -> ImageDataset {
        let items = (0..per_class * classes)
            .map(|i| ImageItem {
                id: i.to_string(),
                image: Image::new(1, 1, 1, vec![0.0]).unwrap(),
                label: Some(i / per_class),
            })
            .collect();
        ImageDataset::new(items)
    }

    #[test]
    fn every_class_is_on_both_sides_in_proportion() {
        let all = sorted_by_class(50, 4);
        let (train, test) = stratified_split(&all, 160, 3).unwrap();
        assert_eq!((train.items().len(), test.items().len()), (160, 40));
        for class in 0..4 {
            let count = |d: &ImageDataset| d.items().iter().filter(|i| i.label == Some(class)).count();
            assert_eq!((count(&train), count(&test)), (40, 10), "class {class}");
        }
        let (again, _) = stratified_split(&all, 160, 3).unwrap();
        assert_eq!(again.items(), train.items(), "same seed, same split");
        let (other, _) = stratified_split(&all, 160, 4).unwrap();
        assert_ne!(other.items(), train.items(), "the seed picks the members");
    }

    #[test]
    fn impossible_sizes_and_missing_labels_are_errors() {
        let all = sorted_by_class(5, 2);
        assert!(stratified_split(&all, 0, 0).is_err());
        assert!(stratified_split(&all, 10, 0).is_err());
        let mut items = all.items().to_vec();
        items[3].label = None;
        assert!(matches!(stratified_split(&ImageDataset::new(items), 5, 0), Err(Error::MissingLabel { index: 3, .. })));
    }
}
