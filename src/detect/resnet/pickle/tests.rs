use super::*;

#[test]
fn a_global_outside_the_rebuilders_is_refused_by_name() {
    // PROTO 2, GLOBAL posix system, a string, TUPLE1, REDUCE, STOP: what pickling
    // `os.system("…")` as a value writes.
    let mut p = vec![0x80, 2];
    p.extend(b"cposix\nsystem\n");
    p.extend([0x8c, 4]);
    p.extend(b"true");
    p.extend([0x85, b'R', b'.']);
    match scan(&p) {
        Err(CheckpointProblem::RefusedGlobal(g)) => assert_eq!(g, "posix.system"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_view_reads_offset_plus_its_span() {
    let storage = Value::Storage { key: "0".into(), element: 4, len: Some(100) };
    let ints = |v: &[i64]| Value::Tuple(v.iter().map(|&n| Value::Int(n)).collect(), 1);
    let u = tensor_use(&[storage, Value::Int(10), ints(&[2, 3]), ints(&[3, 1])]).unwrap();
    assert_eq!(u.needed, 10 + 1 + 3 + 2);
}

fn limit_of(p: &[u8]) -> Option<&'static str> {
    match scan(p) {
        Err(CheckpointProblem::Limit { what, .. }) => Some(what),
        _ => None,
    }
}

#[test]
fn a_million_levels_of_nesting_are_refused_by_each_route_without_recursion() {
    let n = 1_000_000;
    // Lists inside lists through MARK and LIST.
    let mut marks = vec![0x80, 2];
    marks.extend(std::iter::repeat_n(b'(', n));
    marks.extend(std::iter::repeat_n(b'l', n));
    marks.push(b'.');
    // A 1-tuple of a 1-tuple of …, the stack one deep throughout.
    let mut tuples = vec![0x80, 2, b')'];
    tuples.extend(std::iter::repeat_n(0x85, n));
    tuples.push(b'.');
    // A new list that appends the previous one from the memo, the stack two deep throughout.
    let mut memo = vec![0x80, 2, b']', b'q', 0];
    for _ in 0..n {
        memo.extend([b'0', b']', b'h', 0, b'a', b'q', 0]);
    }
    memo.push(b'.');
    for (route, p) in [("marks", marks), ("tuples", tuples), ("memo", memo)] {
        assert_eq!(limit_of(&p), Some("levels of nesting in a pickle"), "{route}");
    }
}

#[test]
fn nesting_within_the_limit_is_walked() {
    let mut p = vec![0x80, 2, b')'];
    p.extend(std::iter::repeat_n(0x85, MAX_DEPTH - 1));
    p.push(b'.');
    assert!(scan(&p).is_ok());
    p.insert(p.len() - 1, 0x85);
    assert!(limit_of(&p).is_some(), "one level more is refused");
}

#[test]
fn a_container_changed_after_it_was_nested_is_refused() {
    // a = []; b = [a]; a.append(b): a cycle, built through the memo.
    let p = [0x80, 2, b']', b'q', 0, b']', b'h', 0, b'a', b'q', 1, b'0', b'h', 0, b'h', 1, b'a', b'.'];
    match scan(&p) {
        Err(CheckpointProblem::Unreadable(why)) => assert!(why.contains("already nested"), "{why}"),
        other => panic!("{other:?}"),
    }
    // a.append(a)
    let p = [0x80, 2, b']', b'q', 0, b'h', 0, b'a', b'.'];
    assert!(matches!(scan(&p), Err(CheckpointProblem::Unreadable(why)) if why.contains("inside itself")));
}

#[test]
fn memo_copies_of_a_large_value_share_it() {
    // A 100,000-item tuple read from the memo 1,000,000 times: shared, not copied, so the
    // walk takes seconds' worth of nothing, and the limit on the stack ends it.
    let mut p = vec![0x80, 2, b'('];
    p.extend(std::iter::repeat_n(b'N', 100_000));
    p.extend([b't', b'q', 0]);
    p.extend(std::iter::repeat_n([b'h', 0], 1_000_000).flatten());
    p.push(b'.');
    assert!(scan(&p).is_ok());
    let mut flood = vec![0x80, 2, b'N'];
    flood.extend(std::iter::repeat_n(b'2', MAX_VALUES + 1));
    flood.push(b'.');
    assert!(limit_of(&flood).is_some());
}

#[test]
fn cut_short_pickles_are_errors_not_panics() {
    for p in [&[0x80u8][..], &[0x80, 2, b'X', 9, 0, 0, 0, b'a'], &[b'h', 3], b"R"] {
        assert!(scan(p).is_err(), "{p:?}");
    }
}
