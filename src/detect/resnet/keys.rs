//! Where in a checkpoint's keys the backbone sits: the prefixes SSL trainers put before
//! torchvision's names (`module.`, `backbone.`, `encoder_q.`, `model.`, `state_dict.`, stacked).
//!
//! Prefixes are compared as whole dot-separated words, never as patterns, so a `--key-prefix`
//! holding regex metacharacters means exactly those characters.

use super::CheckpointProblem;

/// Every prefix `P` under which the file holds a ResNet's first keys (`P` + `conv1.weight` and
/// `P` + `layer1.0.conv1.weight`), each ending in a dot unless empty, sorted.
pub(super) fn candidates<'a>(keys: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    let mut out: Vec<String> = keys
        .clone()
        .filter_map(|k| k.strip_suffix("conv1.weight"))
        .filter(|p| p.is_empty() || p.ends_with('.'))
        .filter(|p| {
            let layer = format!("{p}layer1.0.conv1.weight");
            keys.clone().any(|k| k == layer)
        })
        .map(str::to_string)
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The one prefix to read: the only candidate, or the one whose last words are `wanted`'s.
pub(super) fn choose(candidates: &[String], wanted: Option<&str>) -> Result<String, CheckpointProblem> {
    let shown = || candidates.iter().map(|c| c.trim_end_matches('.').to_string()).collect::<Vec<_>>();
    let picked: Vec<&String> = match wanted {
        None => candidates.iter().collect(),
        Some(w) => {
            let words: Vec<&str> = w.trim_end_matches('.').split('.').filter(|s| !s.is_empty()).collect();
            candidates
                .iter()
                .filter(|c| {
                    let have: Vec<&str> = c.split('.').filter(|s| !s.is_empty()).collect();
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
        (_, _) => Err(CheckpointProblem::AmbiguousPrefix {
            candidates: picked.iter().map(|c| c.trim_end_matches('.').to_string()).collect(),
        }),
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
        choose(&candidates(k.iter().map(String::as_str)), wanted)
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
    fn a_file_without_a_resnet_says_so() {
        let k = ["features.0.weight".to_string(), "layer1.0.conv1.weight".to_string()];
        assert!(matches!(
            choose(&candidates(k.iter().map(String::as_str)), None),
            Err(CheckpointProblem::NotResNet(_))
        ));
    }
}
