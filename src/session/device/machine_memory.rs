//! This machine's memory, from the operating system (`/proc/meminfo` on Linux): what a
//! device reports when a session has no limit of its own.

use std::fs;

/// Bytes of memory the machine has.
pub fn total() -> Option<u64> {
    meminfo_bytes("MemTotal:")
}

/// Bytes of memory available for new allocations without swapping.
pub fn available() -> Option<u64> {
    meminfo_bytes("MemAvailable:")
}

fn meminfo_bytes(field: &str) -> Option<u64> {
    let text = fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    let kib: u64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    #[cfg(target_os = "linux")]
    #[test]
    fn the_machine_has_memory_and_some_of_it_is_available() {
        let (total, available) = (super::total().unwrap(), super::available().unwrap());
        assert!(total > 0 && available <= total);
    }
}
