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

#[derive(Clone, Debug)]
enum Value {
    Global(String, String),
    Text(String),
    Int(i64),
    Tuple(Vec<Value>),
    Storage { key: String, element: usize, len: Option<usize> },
    Mark,
    Other,
}

/// What one `_rebuild_tensor` asks of its storage.
#[derive(Debug)]
struct TensorUse {
    key: String,
    element: usize,
    declared: Option<usize>,
    needed: usize,
}

/// Checks the checkpoint at `path` (a zip, as `torch.save` writes since PyTorch 1.6).
pub(super) fn check(path: &Path) -> Result<(), CheckpointProblem> {
    let file = std::fs::File::open(path).map_err(|e| CheckpointProblem::Unreadable(e.to_string()))?;
    let mut archive = zip::ZipArchive::new(std::io::BufReader::new(file))
        .map_err(|e| CheckpointProblem::Unreadable(format!("not a whole zip archive ({e}); truncated?")))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let pickle_name = names
        .iter()
        .find(|n| *n == "data.pkl" || n.ends_with("/data.pkl"))
        .ok_or_else(|| CheckpointProblem::Unreadable("the archive holds no data.pkl".into()))?
        .clone();
    let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
    let mut pickle = Vec::new();
    archive
        .by_name(&pickle_name)
        .and_then(|mut f| f.read_to_end(&mut pickle).map_err(Into::into))
        .map_err(|e| CheckpointProblem::Unreadable(format!("{pickle_name}: {e}")))?;
    let uses = scan(&pickle)?;
    let mut sizes = HashMap::new();
    for name in &names {
        if let Some(key) = name.strip_prefix(&format!("{prefix}data/")) {
            let size = archive.by_name(name).map(|f| f.size() as usize).unwrap_or(0);
            sizes.insert(key.to_string(), size);
        }
    }
    for u in uses {
        let stored = sizes.get(&u.key).copied().unwrap_or(0);
        let declared = u.declared.unwrap_or(u.needed);
        if u.needed > declared || stored < declared * u.element {
            return Err(CheckpointProblem::ShortStorage {
                storage: u.key,
                needed_bytes: u.needed.max(declared) * u.element,
                stored_bytes: stored,
            });
        }
    }
    Ok(())
}

struct Machine<'a> {
    bytes: &'a [u8],
    at: usize,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
    uses: Vec<TensorUse>,
}

fn bad(at: usize, what: &str) -> CheckpointProblem {
    CheckpointProblem::Unreadable(format!("pickle byte {at}: {what}"))
}

/// Walks the opcodes of `bytes` and returns every tensor's use of its storage.
fn scan(bytes: &[u8]) -> Result<Vec<TensorUse>, CheckpointProblem> {
    let mut m = Machine { bytes, at: 0, stack: Vec::new(), memo: HashMap::new(), uses: Vec::new() };
    loop {
        let op = m.take(1)?[0];
        if op == b'.' {
            return Ok(m.uses);
        }
        m.step(op)?;
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

    fn line(&mut self) -> Result<String, CheckpointProblem> {
        let rest = &self.bytes[self.at..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or_else(|| bad(self.at, "a line without its end"))?;
        let text = String::from_utf8_lossy(&rest[..len]).into_owned();
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
        let text = String::from_utf8_lossy(self.take(n)?).into_owned();
        self.stack.push(Value::Text(text));
        Ok(())
    }

    fn global(&mut self, module: String, name: String) -> Result<(), CheckpointProblem> {
        if !allowed(&module, &name) {
            return Err(CheckpointProblem::RefusedGlobal(format!("{module}.{name}")));
        }
        self.stack.push(Value::Global(module, name));
        Ok(())
    }

    fn step(&mut self, op: u8) -> Result<(), CheckpointProblem> {
        match op {
            0x80 => drop(self.take(1)?),                         // PROTO
            0x95 => drop(self.take(8)?),                         // FRAME
            b'}' | b']' | 0x8f => self.stack.push(Value::Other), // EMPTY_DICT, EMPTY_LIST, EMPTY_SET
            b')' => self.stack.push(Value::Tuple(Vec::new())),
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
                self.stack.push(Value::Tuple(items));
            }
            0x85..=0x87 => {
                let n = (op - 0x84) as usize;
                if self.stack.len() < n {
                    return Err(bad(self.at, "a tuple of missing items"));
                }
                let items = self.stack.split_off(self.stack.len() - n);
                self.stack.push(Value::Tuple(items));
            }
            b'l' | b'd' => {
                self.pop_mark()?;
                self.stack.push(Value::Other);
            }
            b'a' | b's' => {
                for _ in 0..(if op == b'a' { 1 } else { 2 }) {
                    self.pop()?;
                }
            }
            b'e' | b'u' | 0x90 => drop(self.pop_mark()?), // APPENDS, SETITEMS, ADDITEMS
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
            b'R' | 0x81 | b'b' => self.apply(op)?,
            _ => {
                let what = format!("opcode 0x{op:02x}, which a torch.save checkpoint does not use");
                return Err(CheckpointProblem::Unreadable(format!("pickle byte {}: {what}", self.at - 1)));
            }
        }
        Ok(())
    }

    fn memoize(&mut self, k: u32) -> Result<(), CheckpointProblem> {
        let top = self.stack.last().cloned().ok_or_else(|| bad(self.at, "memoizes an empty stack"))?;
        self.memo.insert(k, top);
        Ok(())
    }

    /// REDUCE, NEWOBJ and BUILD: only a rebuilder or `OrderedDict` is ever called (the globals
    /// were checked when named); a tensor rebuild records what it reads of its storage.
    fn apply(&mut self, op: u8) -> Result<(), CheckpointProblem> {
        let args = self.pop()?;
        let callable = self.pop()?;
        if op == b'b' {
            self.stack.push(callable);
            return Ok(());
        }
        let Value::Global(module, name) = &callable else {
            return Err(bad(self.at, "calls something that is not a named global"));
        };
        if name.starts_with("_rebuild_tensor") {
            let Value::Tuple(args) = args else { return Err(bad(self.at, "tensor rebuilt without arguments")) };
            self.uses.push(tensor_use(&args).ok_or_else(|| bad(self.at, "tensor rebuilt from unreadable arguments"))?);
        } else if name == "_rebuild_parameter" || name == "_rebuild_from_type_v2" {
            // Wraps a tensor already rebuilt (and recorded) inside its arguments.
        } else if !(module == "collections" && name == "OrderedDict") {
            return Err(CheckpointProblem::RefusedGlobal(format!("{module}.{name}")));
        }
        self.stack.push(Value::Other);
        Ok(())
    }
}

/// `('storage', torch.FloatStorage, '0', 'cpu', numel)` as a storage.
fn storage_of(id: Value) -> Option<Value> {
    let Value::Tuple(parts) = id else { return None };
    let kind = match parts.get(1)? {
        Value::Global(_, name) => name.clone(),
        Value::Text(name) => name.clone(),
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
        Value::Tuple(items) => {
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
    Some(TensorUse { key: key.clone(), element: *element, declared: *len, needed })
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
        let ints = |v: &[i64]| Value::Tuple(v.iter().map(|&n| Value::Int(n)).collect());
        let u = tensor_use(&[storage, Value::Int(10), ints(&[2, 3]), ints(&[3, 1])]).unwrap();
        assert_eq!(u.needed, 10 + 1 + 3 + 2);
    }

    #[test]
    fn cut_short_pickles_are_errors_not_panics() {
        for p in [&[0x80u8][..], &[0x80, 2, b'X', 9, 0, 0, 0, b'a'], &[b'h', 3], b"R"] {
            assert!(scan(p).is_err(), "{p:?}");
        }
    }
}
