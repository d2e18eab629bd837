//! A read-only pass over a PyTorch zip checkpoint before burn-store reads it.
//!
//! burn-store's pickle reader runs no code, but it fills a tensor whose storage is short or
//! missing with zeros, without a word. A checkpoint cut short would then load as a model with
//! silently zeroed weights. This pass walks the pickle's opcodes without building any object,
//! refuses every global that is not a tensor rebuilder or a storage type (naming it), and checks
//! that every tensor fits inside its storage and every storage inside the archive.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::rc::Rc;

use super::CheckpointProblem;

/// Globals a `torch.save` of a `state_dict` names: what rebuilds a tensor, the storage types
/// and `OrderedDict`. Anything else could be code, and is refused by name.
fn allowed(module: &str, name: &str) -> bool {
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

/// The most bytes of a checkpoint file (a torch zip or safetensors): several times a
/// ResNet-152 with a momentum twin and optimiser state. Also the most its entries inflate to.
pub(super) const MAX_CHECKPOINT_BYTES: u64 = 4 << 30;
/// The most bytes of its pickle (`data.pkl`): a ResNet-152 `state_dict`'s is about 40 KB.
const MAX_PICKLE_BYTES: u64 = 64 << 20;
/// The most bytes of any other small entry (`version`, `byteorder`, `.format_version`).
const MAX_SMALL_ENTRY_BYTES: u64 = 1 << 20;
/// The deepest nesting of containers a pickle may build: a Lightning checkpoint nests a few
/// levels. burn-store's reader recurses on nesting, so a deeper pickle would overflow its stack.
const MAX_DEPTH: usize = 100;
/// The most values on the walker's stack, in its memo, or containers built.
const MAX_VALUES: usize = 1 << 22;

#[derive(Clone, Debug)]
enum Value {
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
struct Container {
    depth: usize,
    nested: bool,
}

/// What one `_rebuild_tensor` asks of its storage.
#[derive(Debug)]
struct TensorUse {
    key: String,
    element: usize,
    declared: Option<usize>,
    needed: usize,
}

/// A checkpoint problem for a value past one of the walker's limits.
fn limit(what: &'static str, limit: u64) -> CheckpointProblem {
    CheckpointProblem::Limit { what, limit }
}

/// Checks the checkpoint at `path` (a zip, as `torch.save` writes since PyTorch 1.6), reading at
/// most what its entries declare: the pickle is walked, and every entry's declared size is checked
/// against what its tensors need before any is inflated; then each is inflated once, capped at its
/// declared size, so an entry that lies about its size cannot inflate past it.
pub(super) fn check(path: &Path) -> Result<(), CheckpointProblem> {
    let file = crate::bounded::open_capped(path, MAX_CHECKPOINT_BYTES).map_err(|e| match e {
        crate::Error::TooLarge { .. } => limit("bytes in a checkpoint file", MAX_CHECKPOINT_BYTES),
        other => CheckpointProblem::Unreadable(other.to_string()),
    })?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| CheckpointProblem::Unreadable(format!("not a whole zip archive ({e}); truncated?")))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pickle_name = names
        .iter()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .ok_or_else(|| CheckpointProblem::Unreadable("the archive holds no data.pkl".into()))?
        .clone();
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let pickle = read_entry(&mut archive, &pickle_name, MAX_PICKLE_BYTES)?;
    let uses = scan(&pickle)?;
    let needs = storage_needs(&uses)?;
    let mut total = 0u64;
    for name in &names {
        let declared = archive.by_name(name).map(|f| f.size()).unwrap_or(0);
        let expected = match name.strip_prefix(&format!("{prefix}data/")) {
            Some(key) => *needs.get(key).ok_or_else(|| CheckpointProblem::EntrySize {
                entry: name.clone(),
                declared_bytes: declared,
                needed_bytes: 0,
            })?,
            None if *name == pickle_name || name.ends_with('/') => continue,
            None if declared > MAX_SMALL_ENTRY_BYTES => {
                return Err(CheckpointProblem::EntrySize {
                    entry: name.clone(),
                    declared_bytes: declared,
                    needed_bytes: 0,
                })
            }
            None => declared,
        };
        if declared < expected {
            return Err(CheckpointProblem::ShortStorage {
                storage: name.strip_prefix(&format!("{prefix}data/")).unwrap_or(name).to_string(),
                needed_bytes: expected as usize,
                stored_bytes: declared as usize,
            });
        }
        if declared > expected {
            return Err(CheckpointProblem::EntrySize {
                entry: name.clone(),
                declared_bytes: declared,
                needed_bytes: expected,
            });
        }
        total = total.saturating_add(declared);
        if total > MAX_CHECKPOINT_BYTES {
            return Err(limit("bytes in a checkpoint's entries, inflated", MAX_CHECKPOINT_BYTES));
        }
    }
    for name in names.iter().filter(|n| !n.ends_with('/')) {
        let declared = archive.by_name(name).map(|f| f.size()).unwrap_or(0);
        let got = read_entry_len(&mut archive, name, declared)?;
        if got != declared {
            return Err(CheckpointProblem::Inflates {
                entry: name.clone(),
                declared_bytes: declared,
                inflated_bytes: got,
            });
        }
    }
    let missing = needs.keys().find(|key| !names.contains(&format!("{prefix}data/{key}")));
    if let Some(key) = missing {
        return Err(CheckpointProblem::ShortStorage {
            storage: key.clone(),
            needed_bytes: needs[key] as usize,
            stored_bytes: 0,
        });
    }
    Ok(())
}

/// Bytes each storage must hold: its declared length (or, where it names none, the most any of
/// its tensors reads) times its element size; a tensor that reads past a declared length is
/// refused here.
fn storage_needs(uses: &[TensorUse]) -> Result<HashMap<String, u64>, CheckpointProblem> {
    let mut needs: HashMap<String, u64> = HashMap::new();
    for u in uses {
        let declared = u.declared.unwrap_or(u.needed);
        let bytes = (declared as u64).checked_mul(u.element as u64);
        if u.needed > declared || bytes.is_none() {
            return Err(CheckpointProblem::ShortStorage {
                storage: u.key.clone(),
                needed_bytes: u.needed.saturating_mul(u.element),
                stored_bytes: declared.saturating_mul(u.element),
            });
        }
        let need = needs.entry(u.key.clone()).or_default();
        *need = (*need).max(bytes.unwrap_or(u64::MAX));
    }
    Ok(needs)
}

/// One entry, whole, of at most `cap` bytes however much it would inflate to.
fn read_entry<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    cap: u64,
) -> Result<Vec<u8>, CheckpointProblem> {
    let unreadable = |e: &dyn std::fmt::Display| CheckpointProblem::Unreadable(format!("{name}: {e}"));
    let entry = archive.by_name(name).map_err(|e| unreadable(&e))?;
    if entry.size() > cap {
        return Err(CheckpointProblem::EntrySize {
            entry: name.into(),
            declared_bytes: entry.size(),
            needed_bytes: cap,
        });
    }
    let mut bytes = Vec::new();
    crate::bounded::Capped::new(entry, cap).read_to_end(&mut bytes).map_err(|e| unreadable(&e))?;
    Ok(bytes)
}

/// How many bytes an entry inflates to, counted up to one past `declared` and never kept.
fn read_entry_len<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    name: &str,
    declared: u64,
) -> Result<u64, CheckpointProblem> {
    let entry = archive.by_name(name).map_err(|e| CheckpointProblem::Unreadable(format!("{name}: {e}")))?;
    std::io::copy(&mut entry.take(declared.saturating_add(1)), &mut std::io::sink())
        .map_err(|e| CheckpointProblem::Unreadable(format!("{name}: {e}")))
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    containers: Vec<Container>,
    uses: Vec<TensorUse>,
}

fn bad(at: usize, what: &str) -> CheckpointProblem {
    CheckpointProblem::Unreadable(format!("pickle byte {at}: {what}"))
}

/// Walks a pickle as [`check`] does, for the fuzzer: `Ok` when the walker clears it.
pub(crate) fn walk(bytes: &[u8]) -> Result<(), CheckpointProblem> {
    scan(bytes).map(drop)
}

/// Walks the opcodes of `bytes` and returns every tensor's use of its storage. The walk is a
/// loop over the bytes, never a recursion, and each opcode's work is bounded by the stack.
fn scan(bytes: &[u8]) -> Result<Vec<TensorUse>, CheckpointProblem> {
    let mut m =
        Machine { bytes, at: 0, stack: Vec::new(), memo: HashMap::new(), containers: Vec::new(), uses: Vec::new() };
    loop {
        let op = m.take(1)?[0];
        if op == b'.' {
            return Ok(m.uses);
        }
        m.step(op)?;
        if m.stack.len() > MAX_VALUES || m.memo.len() > MAX_VALUES || m.containers.len() > MAX_VALUES {
            return Err(limit("values on a pickle's stack, in its memo, or containers", MAX_VALUES as u64));
        }
    }
}

impl Machine<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], CheckpointProblem> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(|| bad(self.at, "cut short"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn uint(&mut self, n: usize) -> Result<usize, CheckpointProblem> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0usize, |acc, &x| (acc << 8) | x as usize))
    }

    fn line(&mut self) -> Result<Rc<str>, CheckpointProblem> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad(self.at, "a line without its end"))?;
        let text = String::from_utf8_lossy(&rest[..len]).into();
        self.at += len + 1;
        Ok(text)
    }

    fn pop(&mut self) -> Result<Value, CheckpointProblem> {
        self.stack.pop().ok_or_else(|| bad(self.at, "pops an empty stack"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>, CheckpointProblem> {
        let mark = self.stack.iter().rposition(|v| matches!(v, Value::Mark)).ok_or_else(|| bad(self.at, "no mark"))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn text(&mut self, len_bytes: usize) -> Result<(), CheckpointProblem> {
        let n = self.uint(len_bytes)?;
        let text = String::from_utf8_lossy(self.take(n)?).into();
        self.stack.push(Value::Text(text));
        Ok(())
    }

    fn global(&mut self, module: Rc<str>, name: Rc<str>) -> Result<(), CheckpointProblem> {
        if !allowed(&module, &name) {
            return Err(CheckpointProblem::RefusedGlobal(format!("{module}.{name}")));
        }
        self.stack.push(Value::Global(module, name));
        Ok(())
    }

    fn depth(&self, v: &Value) -> usize {
        match v {
            Value::Tuple(_, depth) => *depth,
            Value::Container(i) => self.containers[*i].depth,
            _ => 0,
        }
    }

    /// Marks `items` as nested in a new value and returns that value's depth.
    fn nest(&mut self, items: &[Value]) -> Result<usize, CheckpointProblem> {
        let depth = 1 + items.iter().map(|v| self.depth(v)).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(limit("levels of nesting in a pickle", MAX_DEPTH as u64));
        }
        for item in items {
            if let Value::Container(i) = item {
                self.containers[*i].nested = true;
            }
        }
        Ok(depth)
    }

    /// A new container holding `items`.
    fn container(&mut self, items: &[Value]) -> Result<(), CheckpointProblem> {
        let depth = self.nest(items)?;
        self.containers.push(Container { depth, nested: false });
        self.stack.push(Value::Container(self.containers.len() - 1));
        Ok(())
    }

    /// APPEND, SETITEM(S), ADDITEMS and BUILD: `items` go into the container on top of the stack.
    fn put(&mut self, items: &[Value]) -> Result<(), CheckpointProblem> {
        let Some(Value::Container(target)) = self.stack.last() else {
            return Err(bad(self.at, "adds items to something that is not a container"));
        };
        let target = *target;
        if self.containers[target].nested {
            return Err(bad(self.at, "changes a container already nested in another (a cycle, or depth unseen)"));
        }
        if items.iter().any(|v| matches!(v, Value::Container(i) if *i == target)) {
            return Err(bad(self.at, "puts a container inside itself"));
        }
        let depth = self.nest(items)?;
        let own = &mut self.containers[target].depth;
        *own = (*own).max(depth);
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<(), CheckpointProblem> {
        match op {
            0x80 => drop(self.take(1)?),                // PROTO
            0x95 => drop(self.take(8)?),                // FRAME
            b'}' | b']' | 0x8f => self.container(&[])?, // EMPTY_DICT, EMPTY_LIST, EMPTY_SET
            b')' => self.stack.push(Value::Tuple(Rc::from(Vec::new()), 1)),
            b'(' => self.stack.push(Value::Mark),
            b'N' | 0x88 | 0x89 => self.stack.push(Value::Other), // NONE, NEWTRUE, NEWFALSE
            b'K' => {
                let v = self.uint(1)? as i64;
                self.stack.push(Value::Int(v));
            }
            b'M' => {
                let v = self.uint(2)? as i64;
                self.stack.push(Value::Int(v));
            }
            b'J' => {
                let v = self.uint(4)? as u32 as i32 as i64;
                self.stack.push(Value::Int(v));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes.
                let n = self.uint(1)?;
                let b = self.take(n)?.to_vec();
                let v = if n == 0 || n > 8 {
                    Value::Other
                } else {
                    let mut raw = [if b[n - 1] & 0x80 != 0 { 0xff } else { 0 }; 8];
                    raw[..n].copy_from_slice(&b);
                    Value::Int(i64::from_le_bytes(raw))
                };
                self.stack.push(v);
            }
            b'G' => {
                self.take(8)?;
                self.stack.push(Value::Other);
            }
            b'X' => self.text(4)?,
            0x8c => self.text(1)?,
            0x8d => self.text(8)?,
            b'U' | b'C' => {
                let n = self.uint(1)?;
                self.take(n)?;
                self.stack.push(Value::Other);
            }
            b'T' | b'B' => {
                let n = self.uint(4)?;
                self.take(n)?;
                self.stack.push(Value::Other);
            }
            0x8e => {
                let n = self.uint(8)?;
                self.take(n)?;
                self.stack.push(Value::Other);
            }
            b'c' => {
                let (module, name) = (self.line()?, self.line()?);
                self.global(module, name)?;
            }
            0x93 => {
                let name = self.pop()?;
                let module = self.pop()?;
                match (module, name) {
                    (Value::Text(m), Value::Text(n)) => self.global(m, n)?,
                    _ => return Err(bad(self.at, "STACK_GLOBAL without two names")),
                }
            }
            b'q' => {
                let k = self.uint(1)? as u32;
                self.memoize(k)?;
            }
            b'r' => {
                let k = self.uint(4)? as u32;
                self.memoize(k)?;
            }
            0x94 => {
                let k = self.memo.len() as u32;
                self.memoize(k)?;
            }
            b'h' | b'j' => {
                let k = self.uint(if op == b'h' { 1 } else { 4 })? as u32;
                let v = self.memo.get(&k).cloned().ok_or_else(|| bad(self.at, "reads an unset memo slot"))?;
                self.stack.push(v);
            }
            b't' => {
                let items = self.pop_mark()?;
                self.tuple(items)?;
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(bad(self.at, "a tuple of missing items"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.tuple(items)?;
            }
            b'l' | b'd' => {
                let items = self.pop_mark()?;
                self.container(&items)?;
            }
            b'a' => {
                let item = self.pop()?;
                self.put(&[item])?;
            }
            b's' => {
                let value = self.pop()?;
                let key = self.pop()?;
                self.put(&[key, value])?;
            }
            b'e' | b'u' | 0x90 => {
                // APPENDS, SETITEMS, ADDITEMS
                let items = self.pop_mark()?;
                self.put(&items)?;
            }
            b'0' => drop(self.pop()?),
            b'1' => drop(self.pop_mark()?),
            b'2' => {
                let top = self.stack.last().cloned().ok_or_else(|| bad(self.at, "DUP on an empty stack"))?;
                self.stack.push(top);
            }
            b'Q' => {
                let id = self.pop()?;
                let storage = storage_of(id).ok_or_else(|| bad(self.at, "a persistent id that is not a storage"))?;
                self.stack.push(storage);
            }
            b'b' => {
                // BUILD: the state goes into the object below it.
                let state = self.pop()?;
                self.put(&[state])?;
            }
            b'R' | 0x81 => self.apply()?,
            _ => {
                let what = format!("opcode 0x{op:02x}, which a torch.save checkpoint does not use");
                return Err(CheckpointProblem::Unreadable(format!("pickle byte {}: {what}", self.at - 1)));
            }
        }
        Ok(())
    }

    fn tuple(&mut self, items: Vec<Value>) -> Result<(), CheckpointProblem> {
        let depth = self.nest(&items)?;
        self.stack.push(Value::Tuple(Rc::from(items), depth));
        Ok(())
    }

    fn memoize(&mut self, k: u32) -> Result<(), CheckpointProblem> {
        let top = self.stack.last().cloned().ok_or_else(|| bad(self.at, "memoizes an empty stack"))?;
        self.memo.insert(k, top);
        Ok(())
    }

    /// REDUCE and NEWOBJ: only a rebuilder or `OrderedDict` is ever called (the globals were
    /// checked when named); a tensor rebuild records what it reads of its storage.
    fn apply(&mut self) -> Result<(), CheckpointProblem> {
        let args = self.pop()?;
        let callable = self.pop()?;
        let Value::Global(module, name) = &callable else {
            return Err(bad(self.at, "calls something that is not a named global"));
        };
        if name.starts_with("_rebuild_tensor") {
            let Value::Tuple(items, _) = &args else { return Err(bad(self.at, "tensor rebuilt without arguments")) };
            self.uses.push(tensor_use(items).ok_or_else(|| bad(self.at, "tensor rebuilt from unreadable arguments"))?);
        } else if &**name == "_rebuild_parameter" || &**name == "_rebuild_from_type_v2" {
            // Wraps a tensor already rebuilt (and recorded) inside its arguments.
        } else if !(&**module == "collections" && &**name == "OrderedDict") {
            return Err(CheckpointProblem::RefusedGlobal(format!("{module}.{name}")));
        }
        self.container(&[args])
    }
}

/// `('storage', torch.FloatStorage, '0', 'cpu', numel)` as a storage.
fn storage_of(id: Value) -> Option<Value> {
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
fn tensor_use(args: &[Value]) -> Option<TensorUse> {
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

#[cfg(test)]
mod tests {
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
}
