//! The parsers of untrusted bytes under the seeded mutation fuzzer (poisoncam::fuzz), a few
//! thousand inputs each: none may panic, and each refusal is a typed error. examples/fuzz.rs
//! runs the same at 10^6 inputs; docs/hostile-inputs.md has its counts.

use poisoncam::fuzz::{corpus, input, parse, run, Target};

/// Inputs per target here; the checkpoint targets build a model for every accepted input, so
/// they run fewer.
fn inputs(target: Target) -> u64 {
    match target {
        Target::Pth | Target::PthPickle | Target::Safetensors | Target::Guard => 500,
        _ => 3000,
    }
}

#[test]
fn no_parser_panics_on_mutated_inputs_and_each_corpus_is_valid() {
    for target in Target::ALL {
        let dir = tempfile::tempdir().unwrap();
        let corpus = corpus(target, dir.path()).unwrap();
        // The corpus is what the parser accepts, so mutations start from deep inside it
        // (the refusal fixtures of the checkpoint targets excepted).
        let valid = corpus.iter().filter(|bytes| parse(target, bytes, dir.path()).is_ok()).count();
        assert!(valid >= 1, "{}: no corpus input parses", target.name());
        let outcome = run(target, &corpus, inputs(target), 7, dir.path());
        assert!(outcome.panics.is_empty(), "{}: {:?}", target.name(), outcome.panics);
        assert_eq!(outcome.accepted + outcome.refused, outcome.inputs);
        assert!(outcome.refused > 0, "{}: the mutations were all harmless", target.name());
    }
}

#[test]
fn an_input_is_made_again_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = corpus(Target::Config, dir.path()).unwrap();
    assert_eq!(input(Target::Config, &corpus, 41), input(Target::Config, &corpus, 41));
    assert_ne!(input(Target::Config, &corpus, 41), input(Target::Config, &corpus, 42));
}
