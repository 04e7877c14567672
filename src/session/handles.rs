//! Opaque handles: what the wire carries instead of pointers.
//!
//! A handle packs a slab key with the generation of the entry it was issued for, so a forged
//! value, a freed handle and a handle whose slot was reused are all refused on use. Handles
//! are never 0 (the wire's "null"), and they are deterministic for a given sequence of
//! operations, which keeps golden-trace tests reproducible.

use slab::Slab;

use super::SessionError;

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: T,
}

/// A table of resources addressed by opaque `u64` handles.
#[derive(Debug)]
pub struct HandleTable<T> {
    slab: Slab<Entry<T>>,
    next_generation: u32,
    limit: usize,
}

impl<T> HandleTable<T> {
    /// A table that holds at most `limit` live entries.
    pub fn new(limit: usize) -> Self {
        HandleTable { slab: Slab::new(), next_generation: 1, limit: limit.min(u32::MAX as usize) }
    }

    pub fn len(&self) -> usize {
        self.slab.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// Stores `value` and returns its handle.
    pub fn insert(&mut self, value: T) -> Result<u64, SessionError> {
        if self.slab.len() >= self.limit {
            return Err(SessionError::TooManyHandles { limit: self.limit });
        }
        let generation = self.next_generation;
        self.next_generation = self.next_generation.checked_add(1).unwrap_or(1);
        let key = self.slab.insert(Entry { generation, value });
        Ok(encode(key, generation))
    }

    fn key_of(&self, handle: u64) -> Result<usize, SessionError> {
        let (key, generation) = decode(handle);
        match self.slab.get(key) {
            Some(entry) if entry.generation == generation => Ok(key),
            _ => Err(SessionError::UnknownHandle { handle }),
        }
    }

    pub fn get(&self, handle: u64) -> Result<&T, SessionError> {
        let key = self.key_of(handle)?;
        Ok(&self.slab[key].value)
    }

    pub fn get_mut(&mut self, handle: u64) -> Result<&mut T, SessionError> {
        let key = self.key_of(handle)?;
        Ok(&mut self.slab[key].value)
    }

    pub fn remove(&mut self, handle: u64) -> Result<T, SessionError> {
        let key = self.key_of(handle)?;
        Ok(self.slab.remove(key).value)
    }

    /// Mutable access to several entries at once, in the order of `handles`. Each handle
    /// may appear once; the caller checks aliasing first.
    pub fn get_disjoint_mut(&mut self, handles: &[u64]) -> Result<Vec<&mut T>, SessionError> {
        let mut keys = Vec::with_capacity(handles.len());
        for &h in handles {
            let key = self.key_of(h)?;
            if keys.contains(&key) {
                return Err(SessionError::InvalidArgument(format!(
                    "handle {h:#x} is used twice where distinct tensors are required"
                )));
            }
            keys.push(key);
        }
        let mut found: Vec<Option<&mut T>> = (0..handles.len()).map(|_| None).collect();
        for (key, entry) in self.slab.iter_mut() {
            if let Some(pos) = keys.iter().position(|&k| k == key) {
                found[pos] = Some(&mut entry.value);
            }
        }
        Ok(found.into_iter().map(|v| v.expect("every key was checked to exist")).collect())
    }

    pub fn values(&self) -> impl Iterator<Item = &T> {
        self.slab.iter().map(|(_, e)| &e.value)
    }

    pub fn clear(&mut self) {
        self.slab.clear();
    }
}

fn encode(key: usize, generation: u32) -> u64 {
    (u64::from(generation) << 32) | (key as u64 + 1)
}

fn decode(handle: u64) -> (usize, u32) {
    let low = handle & 0xFFFF_FFFF;
    // Low word 0 never encodes a key; map it past any real key so lookups fail.
    let key = if low == 0 { usize::MAX } else { (low - 1) as usize };
    (key, (handle >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_never_zero_and_resolve_to_their_value() {
        let mut table = HandleTable::new(8);
        let h = table.insert("a").unwrap();
        assert_ne!(h, 0);
        assert_eq!(*table.get(h).unwrap(), "a");
    }

    #[test]
    fn freed_handle_is_refused() {
        let mut table = HandleTable::new(8);
        let h = table.insert(1).unwrap();
        table.remove(h).unwrap();
        assert_eq!(table.get(h), Err(SessionError::UnknownHandle { handle: h }));
    }

    #[test]
    fn handle_of_a_reused_slot_is_refused() {
        let mut table = HandleTable::new(8);
        let old = table.insert(1).unwrap();
        table.remove(old).unwrap();
        let new = table.insert(2).unwrap();
        assert_ne!(old, new);
        assert!(table.get(old).is_err());
        assert_eq!(*table.get(new).unwrap(), 2);
    }

    #[test]
    fn forged_handles_are_refused() {
        let mut table = HandleTable::new(8);
        let h = table.insert(1).unwrap();
        for forged in [0, 1, h + 1, h ^ (1 << 40), u64::MAX, 0x7f00_dead_beef] {
            assert!(table.get(forged).is_err(), "{forged:#x}");
        }
    }

    #[test]
    fn insert_beyond_the_limit_is_refused() {
        let mut table = HandleTable::new(2);
        table.insert(1).unwrap();
        table.insert(2).unwrap();
        assert_eq!(table.insert(3), Err(SessionError::TooManyHandles { limit: 2 }));
    }

    #[test]
    fn disjoint_access_refuses_a_repeated_handle() {
        let mut table = HandleTable::new(8);
        let a = table.insert(1).unwrap();
        let b = table.insert(2).unwrap();
        let [x, y] = <[_; 2]>::try_from(table.get_disjoint_mut(&[b, a]).unwrap()).unwrap();
        assert_eq!((*x, *y), (2, 1));
        assert!(table.get_disjoint_mut(&[a, a]).is_err());
    }
}
