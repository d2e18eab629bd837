//! The pickle half of the read-only pass over a PyTorch zip checkpoint before burn-store reads
//! it ([`super::archive`] is the zip half).
//!
//! burn-store's pickle reader runs no code, but it fills a tensor whose storage is short or
//! missing with zeros, without a word, and it recurses on nesting. This walk follows the
//! pickle's opcodes without building any object, refuses every global that is not a tensor
//! rebuilder or a storage type (naming it), refuses nesting past [`MAX_DEPTH`] and cycles, and
//! returns what every tensor reads of its storage, for the archive to hold each storage to.

#[cfg(test)]
mod tests;
mod value;

use std::collections::HashMap;
use std::rc::Rc;

use super::problem::CheckpointProblem;
pub(super) use value::TensorUse;
use value::{allowed, storage_of, tensor_use, Container, Value};

/// The deepest nesting of containers a pickle may build: a Lightning checkpoint nests a few
/// levels. burn-store's reader recurses on nesting, so a deeper pickle would overflow its stack.
const MAX_DEPTH: usize = 100;
/// The most values on the walker's stack, in its memo, or containers built.
const MAX_VALUES: usize = 1 << 22;

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

/// Walks a pickle as the checkpoint check does, for the fuzzer: `Ok` when the walker clears it.
pub(crate) fn walk(bytes: &[u8]) -> Result<(), CheckpointProblem> {
    scan(bytes).map(drop)
}

/// Walks the opcodes of `bytes` and returns every tensor's use of its storage. The walk is a
/// loop over the bytes, never a recursion, and each opcode's work is bounded by the stack.
pub(super) fn scan(bytes: &[u8]) -> Result<Vec<TensorUse>, CheckpointProblem> {
    let mut m =
        Machine { bytes, at: 0, stack: Vec::new(), memo: HashMap::new(), containers: Vec::new(), uses: Vec::new() };
    loop {
        let op = m.take(1)?[0];
        if op == b'.' {
            return Ok(m.uses);
        }
        m.step(op)?;
        if m.stack.len() > MAX_VALUES || m.memo.len() > MAX_VALUES || m.containers.len() > MAX_VALUES {
            return Err(CheckpointProblem::limit(
                "values on a pickle's stack, in its memo, or containers",
                MAX_VALUES as u64,
            ));
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
            return Err(CheckpointProblem::limit("levels of nesting in a pickle", MAX_DEPTH as u64));
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
