//! Where in a checkpoint's keys the backbone sits: the prefixes SSL trainers put before
//! torchvision's names (`module.`, `backbone.`, `encoder_q.`, `model.`, `state_dict.`, stacked).
//!
//! Prefixes are compared as whole dot-separated words, never as patterns, so a `--key-prefix`
//! holding regex metacharacters means exactly those characters.
//!
//! Besides torchvision's names, a backbone saved as `nn.Sequential(*list(resnet.children())[:-1])`
//! (lightly's recipe) numbers the children instead: `0` is `conv1`, `1` `bn1`, `4`–`7` the layers.

use super::CheckpointProblem;

/// Where a backbone's keys sit in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Found {
    /// What comes before the names, ending in a dot unless empty.
    pub prefix: String,
    /// The children are numbered (`nn.Sequential`), not named.
    pub numbered: bool,
}

impl Found {
    /// The file's key for torchvision's `name` (`layer1.0.conv1.weight`).
    pub fn key(&self, name: &str) -> String {
        let renamed = if self.numbered { numbered(name) } else { name.to_string() };
        format!("{}{renamed}", self.prefix)
    }

    /// The prefix as errors show it, without its last dot.
    fn shown(&self) -> String {
        self.prefix.trim_end_matches('.').to_string()
    }
}

/// torchvision's name with the top module as its index among a ResNet's children.
fn numbered(name: &str) -> String {
    let (head, rest) = name.split_once('.').unwrap_or((name, ""));
    let index = match head {
        "conv1" => "0",
        "bn1" => "1",
        "layer1" => "4",
        "layer2" => "5",
        "layer3" => "6",
        "layer4" => "7",
        other => other,
    };
    if rest.is_empty() {
        index.to_string()
    } else {
        format!("{index}.{rest}")
    }
}

/// Every place the file holds a ResNet's first keys (`conv1.weight` and
/// `layer1.0.conv1.weight`, named or numbered), sorted by prefix.
pub(super) fn candidates<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Vec<Found> {
    let mut out = Vec::new();
    for numbered in [false, true] {
        let first = if numbered { "0.weight" } else { "conv1.weight" };
        for prefix in keys.clone().filter_map(|k| k.strip_suffix(first)) {
            let found = Found { prefix: prefix.to_string(), numbered };
            let layer = found.key("layer1.0.conv1.weight");
            if (prefix.is_empty() || prefix.ends_with('.')) && keys.clone().any(|k| k == layer) {
                out.push(found);
            }
        }
    }
    out.sort_by(|a, b| a.prefix.cmp(&b.prefix));
    out.dedup();
    out
}

/// The one prefix to read: the only candidate, or the one whose last words are `wanted`'s.
pub(super) fn choose(candidates: &[Found], wanted: Option<&str>) -> Result<Found, CheckpointProblem> {
    let shown = || candidates.iter().map(Found::shown).collect::<Vec<_>>();
    let picked: Vec<&Found> = match wanted {
        None => candidates.iter().collect(),
        Some(w) => {
            let words: Vec<&str> = w.trim_end_matches('.').split('.').filter(|s| !s.is_empty()).collect();
            candidates
                .iter()
                .filter(|c| {
                    let have: Vec<&str> = c.prefix.split('.').filter(|s| !s.is_empty()).collect();
                    have.ends_with(&words)
                })
                .collect()
        }
    };
    match (picked.as_slice(), wanted) {
        ([one], _) => Ok((*one).clone()),
        ([], None) => Err(CheckpointProblem::NotResNet(
            "no `conv1.weight` with a `layer1.0.conv1.weight` beside it under any prefix".into(),
        )),
        ([], Some(w)) => Err(CheckpointProblem::PrefixNotFound { wanted: w.to_string(), candidates: shown() }),
        (_, _) => Err(CheckpointProblem::AmbiguousPrefix { candidates: picked.iter().map(|c| c.shown()).collect() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(prefixes: &[&str]) -> Vec<String> {
        prefixes
            .iter()
            .flat_map(|p| {
                ["conv1.weight", "layer1.0.conv1.weight", "fc.weight"].into_iter().map(move |k| format!("{p}{k}"))
            })
            .collect()
    }

    fn found(prefixes: &[&str], wanted: Option<&str>) -> Result<String, CheckpointProblem> {
        let k = keys(prefixes);
        choose(&candidates(k.iter().map(String::as_str)), wanted).map(|f| f.prefix)
    }

    #[test]
    fn one_backbone_is_found_under_stacked_prefixes() {
        assert_eq!(found(&[""], None).unwrap(), "");
        assert_eq!(found(&["state_dict.module.backbone."], None).unwrap(), "state_dict.module.backbone.");
    }

    #[test]
    fn two_backbones_need_a_prefix_that_picks_one_by_whole_words() {
        let moco = ["state_dict.module.encoder_q.", "state_dict.module.encoder_k."];
        match found(&moco, None) {
            Err(CheckpointProblem::AmbiguousPrefix { candidates }) => {
                assert_eq!(candidates, ["state_dict.module.encoder_k", "state_dict.module.encoder_q"])
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(found(&moco, Some("encoder_q")).unwrap(), "state_dict.module.encoder_q.");
        assert_eq!(found(&moco, Some("module.encoder_k.")).unwrap(), "state_dict.module.encoder_k.");
        // `backbone` is a word of neither `momentum_backbone` nor `encoder_q`.
        let solo = ["state_dict.backbone.", "state_dict.momentum_backbone."];
        assert_eq!(found(&solo, Some("backbone")).unwrap(), "state_dict.backbone.");
    }

    #[test]
    fn a_prefix_that_matches_nothing_lists_what_is_there() {
        for wanted in ["encoder_x", "encoder_(q|k)", "encoder_q.*", "["] {
            match found(&["module.encoder_q.", "module.encoder_k."], Some(wanted)) {
                Err(CheckpointProblem::PrefixNotFound { candidates, .. }) => assert_eq!(candidates.len(), 2),
                other => panic!("{wanted}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_sequential_of_the_children_is_read_by_index() {
        let k: Vec<String> = ["backbone.0.weight", "backbone.1.weight", "backbone.4.0.conv1.weight", "head.0.weight"]
            .map(String::from)
            .to_vec();
        let found = choose(&candidates(k.iter().map(String::as_str)), None).unwrap();
        assert_eq!(found, Found { prefix: "backbone.".into(), numbered: true });
        assert_eq!(found.key("layer3.1.downsample.0.weight"), "backbone.6.1.downsample.0.weight");
        assert_eq!(found.key("bn1.running_var"), "backbone.1.running_var");
    }

    #[test]
    fn a_file_without_a_resnet_says_so() {
        let k = ["features.0.weight".to_string(), "layer1.0.conv1.weight".to_string()];
        assert!(matches!(
            choose(&candidates(k.iter().map(String::as_str)), None),
            Err(CheckpointProblem::NotResNet(_))
        ));
    }
}
