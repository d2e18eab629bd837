//! What the pickle walker keeps of a value: enough to follow tensors to their storages and to
//! measure nesting, nothing that could run.

use std::rc::Rc;

/// Globals a `torch.save` of a `state_dict` names: what rebuilds a tensor, the storage types
/// and `OrderedDict`. Anything else could be code, and is refused by name.
pub(super) fn allowed(module: &str, name: &str) -> bool {
    match module {
        "torch._utils" => matches!(name, "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_parameter"),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch" => name.ends_with("Storage") || name == "Tensor",
        "collections" => name == "OrderedDict",
        _ => false,
    }
}

/// Bytes per element of a storage type (`FloatStorage` …).
fn element_size(storage: &str) -> Option<usize> {
    Some(match storage {
        "DoubleStorage" | "LongStorage" | "ComplexFloatStorage" => 8,
        "FloatStorage" | "IntStorage" => 4,
        "HalfStorage" | "BFloat16Storage" | "ShortStorage" => 2,
        "ByteStorage" | "CharStorage" | "BoolStorage" => 1,
        _ => return None,
    })
}

#[derive(Clone, Debug)]
pub(super) enum Value {
    Global(Rc<str>, Rc<str>),
    Text(Rc<str>),
    Int(i64),
    /// Items and nesting depth (an empty tuple is 1 deep).
    Tuple(Rc<[Value]>, usize),
    Storage {
        key: Rc<str>,
        element: usize,
        len: Option<usize>,
    },
    /// A container that can still change (a list, dict, set, or what REDUCE built), by its
    /// index among the walker's containers.
    Container(usize),
    Mark,
    Other,
}

/// A container's nesting depth and whether it sits inside another. Once nested it may not
/// change: a change could make a cycle or deepen every container that holds it, which the
/// walker would not see; `torch.save` fills each container before nesting it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Container {
    pub(super) depth: usize,
    pub(super) nested: bool,
}

/// What one `_rebuild_tensor` asks of its storage.
#[derive(Debug)]
pub(in crate::detect::resnet) struct TensorUse {
    pub(in crate::detect::resnet) key: String,
    pub(in crate::detect::resnet) element: usize,
    pub(in crate::detect::resnet) declared: Option<usize>,
    pub(in crate::detect::resnet) needed: usize,
}

/// `('storage', torch.FloatStorage, '0', 'cpu', numel)` as a storage.
pub(super) fn storage_of(id: Value) -> Option<Value> {
    let Value::Tuple(parts, _) = id else { return None };
    let kind = match parts.get(1)? {
        Value::Global(_, name) | Value::Text(name) => name.clone(),
        _ => return None,
    };
    let Value::Text(key) = parts.get(2)? else { return None };
    let len = match parts.get(4) {
        Some(Value::Int(n)) if *n >= 0 => Some(*n as usize),
        _ => None,
    };
    Some(Value::Storage { key: key.clone(), element: element_size(&kind)?, len })
}

/// `(storage, offset, size, stride, …)`: the elements a view reads, `offset + 1 + Σ (size − 1)·stride`.
pub(super) fn tensor_use(args: &[Value]) -> Option<TensorUse> {
    let Value::Storage { key, element, len } = args.first()? else { return None };
    let Value::Int(offset) = args.get(1)? else { return None };
    let ints = |v: &Value| match v {
        Value::Tuple(items, _) => {
            items.iter().map(|i| if let Value::Int(n) = i { usize::try_from(*n).ok() } else { None }).collect()
        }
        _ => None,
    };
    let size: Vec<usize> = ints(args.get(2)?)?;
    let stride: Vec<usize> = ints(args.get(3)?)?;
    let needed = if size.contains(&0) {
        0
    } else {
        let span =
            size.iter().zip(&stride).try_fold(1usize, |acc, (s, t)| acc.checked_add((s - 1).checked_mul(*t)?))?;
        usize::try_from(*offset).ok()?.checked_add(span)?
    };
    Some(TensorUse { key: key.to_string(), element: *element, declared: *len, needed })
}
