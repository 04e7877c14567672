//! The tensor cache of `-c/--cache [DIR]`: weights a client uploaded with SET_TENSOR's cache
//! flag, kept as files named by the FNV-1a hash of their bytes, so that the client's next
//! load of the same model sends only the hash (SET_TENSOR_HASH) instead of the bytes.
//!
//! Unlike ggml's rpc-server, which wrote every upload and read back whatever file had the
//! name: files are written to a temporary name and renamed into place once complete (so no
//! reader, in this server or another sharing the directory, ever sees half a file); a file's
//! bytes are hashed again before they are used (a truncated, corrupted or swapped file is
//! removed and reported as not cached, and the client uploads again); and the directory is
//! kept under a size bound, least recently used files out first.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// FNV-1a, 64 bits: the hash ggml's client names cached data by (`fnv_hash` in ggml-rpc.cpp).
#[derive(Debug, Clone, Copy)]
pub struct Fnv1a(u64);

impl Default for Fnv1a {
    fn default() -> Self {
        Fnv1a(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv1a {
    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    pub fn finish(&self) -> u64 {
        self.0
    }

    pub fn of(bytes: &[u8]) -> u64 {
        let mut hash = Fnv1a::default();
        hash.update(bytes);
        hash.finish()
    }
}

/// A directory of cached tensor data, bounded to `max_bytes`.
#[derive(Debug)]
pub struct TensorCache {
    dir: PathBuf,
    max_bytes: u64,
}

/// The default bound of a cache directory.
pub const DEFAULT_CACHE_MAX: u64 = 20 << 30;

/// A cache file's name: the hash in 16 hex digits, as ggml's server names them.
fn file_name(hash: u64) -> String {
    format!("{hash:016x}")
}

fn is_cache_file(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

impl TensorCache {
    /// Opens (creating it if needed) the cache directory `dir`.
    pub fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(TensorCache { dir, max_bytes })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The data cached under `hash`, if a file of at most `max_len` bytes has it: its bytes
    /// are hashed again, and a file whose bytes do not hash to its name is removed.
    pub fn get(&self, hash: u64, max_len: u64) -> io::Result<Option<Vec<u8>>> {
        let path = self.dir.join(file_name(hash));
        let mut file = match File::open(&path) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let len = file.metadata()?.len();
        if len > max_len {
            return Ok(None);
        }
        let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
        Read::by_ref(&mut file).take(max_len.saturating_add(1)).read_to_end(&mut data)?;
        if data.len() as u64 > max_len || Fnv1a::of(&data) != hash {
            log::warn!(
                "tensor cache: {} does not hold the data its name says; removed",
                path.display()
            );
            let _ = fs::remove_file(&path);
            return Ok(None);
        }
        // Used: the least recently used file goes first when the cache is over its bound.
        let _ = file.set_modified(SystemTime::now());
        Ok(Some(data))
    }

    /// Starts writing data to cache; `None` if `len` alone is over the cache's bound.
    pub fn writer(self: &Arc<Self>, len: u64) -> io::Result<Option<CacheWriter>> {
        if len > self.max_bytes {
            return Ok(None);
        }
        let file = tempfile::Builder::new().prefix(".partial-").tempfile_in(&self.dir)?;
        Ok(Some(CacheWriter { cache: Arc::clone(self), file, hash: Fnv1a::default() }))
    }

    /// Removes the least recently used files until the cached bytes fit the bound.
    fn evict(&self) -> io::Result<()> {
        let mut files: Vec<(SystemTime, u64, PathBuf)> = Vec::new();
        for entry in fs::read_dir(&self.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(is_cache_file) {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            files.push((
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
                entry.path(),
            ));
        }
        let mut total: u64 = files.iter().map(|(_, len, _)| len).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            match fs::remove_file(&path) {
                // Another server sharing the directory may have removed it already.
                Ok(()) | Err(_) => total = total.saturating_sub(len),
            }
        }
        Ok(())
    }
}

/// Data on its way into the cache: written to a temporary file, hashed as it goes, and
/// renamed to its hash once all of it is there.
pub struct CacheWriter {
    cache: Arc<TensorCache>,
    file: tempfile::NamedTempFile,
    hash: Fnv1a,
}

impl CacheWriter {
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.hash.update(bytes);
        self.file.write_all(bytes)
    }

    /// Puts the file in place under its hash, then keeps the cache within its bound.
    pub fn finish(self) -> io::Result<u64> {
        let hash = self.hash.finish();
        let target = self.cache.dir.join(file_name(hash));
        self.file.persist(&target).map_err(|e| e.error)?;
        self.cache.evict()?;
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(max: u64) -> (tempfile::TempDir, Arc<TensorCache>) {
        let dir = tempfile::tempdir().unwrap();
        let cache = TensorCache::open(dir.path().join("cache"), max).unwrap();
        (dir, Arc::new(cache))
    }

    fn put(cache: &Arc<TensorCache>, data: &[u8]) -> u64 {
        let mut writer = cache.writer(data.len() as u64).unwrap().unwrap();
        writer.write(data).unwrap();
        writer.finish().unwrap()
    }

    #[test]
    fn fnv1a_matches_ggmls_hash() {
        assert_eq!(Fnv1a::of(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(Fnv1a::of(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Fnv1a::of(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn data_put_in_the_cache_comes_back_by_its_hash() {
        let (_dir, cache) = cache(1 << 20);
        let hash = put(&cache, b"weights");
        assert_eq!(hash, Fnv1a::of(b"weights"));
        assert_eq!(cache.get(hash, 1 << 20).unwrap().as_deref(), Some(&b"weights"[..]));
        assert_eq!(cache.get(hash ^ 1, 1 << 20).unwrap(), None);
    }

    #[test]
    fn a_truncated_or_corrupted_file_is_not_used_and_is_removed() {
        let (_dir, cache) = cache(1 << 20);
        let hash = put(&cache, b"0123456789");
        let path = cache.dir().join(file_name(hash));
        fs::write(&path, b"01234").unwrap();
        assert_eq!(cache.get(hash, 1 << 20).unwrap(), None);
        assert!(!path.exists());
        let other = put(&cache, b"abcdefghij");
        fs::copy(cache.dir().join(file_name(other)), &path).unwrap();
        assert_eq!(cache.get(hash, 1 << 20).unwrap(), None, "another hash's file is refused");
    }

    #[test]
    fn a_file_longer_than_the_tensor_it_would_fill_is_not_used() {
        let (_dir, cache) = cache(1 << 20);
        let hash = put(&cache, &[7; 100]);
        assert_eq!(cache.get(hash, 99).unwrap(), None);
        assert!(cache.get(hash, 100).unwrap().is_some());
    }

    #[test]
    fn the_cache_stays_within_its_bound_least_recently_used_out_first() {
        let (_dir, cache) = cache(250);
        let old = put(&cache, &[1; 100]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let used = put(&cache, &[2; 100]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(cache.get(old, 100).unwrap().is_some(), "using it makes it recent");
        std::thread::sleep(std::time::Duration::from_millis(20));
        put(&cache, &[3; 100]);
        assert!(cache.get(used, 100).unwrap().is_none(), "the least recently used went");
        assert!(cache.get(old, 100).unwrap().is_some());
        let total: u64 =
            fs::read_dir(cache.dir()).unwrap().map(|e| e.unwrap().metadata().unwrap().len()).sum();
        assert!(total <= 250, "{total}");
    }

    #[test]
    fn data_over_the_bound_is_not_cached() {
        let (_dir, cache) = cache(10);
        assert!(cache.writer(11).unwrap().is_none());
    }
}
