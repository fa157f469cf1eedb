//! Memory mappings that survive their file changing under them.
//!
//! A page of a mapped file that is truncated away raises SIGBUS when it is read, which ends
//! the process (and a Python interpreter with it). Every mapping embgeom makes is registered
//! here, and a SIGBUS handler, installed with the first mapping, looks the faulting address
//! up: inside a registered mapping, it maps zero pages over the rest of that mapping, marks
//! it as changed and returns, so the read goes on (reading zeros) instead of ending the
//! process. Whoever used the mapped values calls [`GuardedMap::check_unchanged`] when done:
//! it fails, naming the file, when the handler fired or when the file's size or modification
//! time differs from when it was mapped (a rewrite in place), so nothing computed from the
//! changed bytes is ever returned. A fault at any other address is passed on to the handler
//! that was installed before (or to the default action).
//!
//! Cost: none in memory (the pages stay the page cache's); one `fstat` per check. A file
//! replaced by a rename is not a change: the mapping keeps the old file's pages.

use crate::error::{IoError, Result};
use std::fs::File;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::SystemTime;

/// How many mappings can be guarded at once; a mapping beyond them is not made (the file is
/// read instead).
const SLOTS: usize = 256;
/// Marks a slot being filled in: no address is at or above it.
const RESERVED: usize = usize::MAX;

/// The address range of one registered mapping and whether the handler fired in it.
struct Slot {
    start: AtomicUsize,
    end: AtomicUsize,
    faulted: AtomicBool,
}

#[allow(clippy::declare_interior_mutable_const)] // the array's initialiser, copied per slot
const FREE: Slot = Slot {
    start: AtomicUsize::new(0),
    end: AtomicUsize::new(0),
    faulted: AtomicBool::new(false),
};
static REGISTRY: [Slot; SLOTS] = [FREE; SLOTS];

/// The SIGBUS action found before ours: its handler address and whether it takes siginfo.
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREVIOUS_SIGINFO: AtomicBool = AtomicBool::new(false);
static PAGE_SIZE: AtomicUsize = AtomicUsize::new(4096);

/// A read-only private mapping of a file, registered with the SIGBUS guard for its lifetime.
pub struct GuardedMap {
    slot: usize,
    path: String,
    file: File,
    stamp: Stamp,
    // Dropped after `Drop::drop` has freed the slot.
    map: memmap2::Mmap,
}

/// What identifies a file's contents cheaply: its size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

impl Stamp {
    fn of(file: &File) -> Option<Stamp> {
        let meta = file.metadata().ok()?;
        Some(Stamp {
            len: meta.len(),
            modified: meta.modified().ok(),
        })
    }
}

impl GuardedMap {
    /// Map `file` (named `path` in messages), its pages read in at once; `None` where it
    /// cannot be mapped, is empty, or every guard slot is taken (the caller reads instead).
    pub fn new(file: &File, path: &str) -> Option<GuardedMap> {
        let stamp = Stamp::of(file)?;
        if stamp.len == 0 {
            return None;
        }
        let file = file.try_clone().ok()?;
        install_handler();
        let slot = reserve_slot()?;
        // Safety: read-only and private; a file that changes while mapped is caught by the
        // SIGBUS guard (truncation) and by `check_unchanged` (size and time), and every
        // access is bounds-checked against the mapping's length.
        let map = match unsafe { memmap2::MmapOptions::new().populate().map(&file) } {
            Ok(map) => map,
            Err(_) => {
                REGISTRY[slot].start.store(0, Ordering::Release);
                return None;
            }
        };
        let start = map.as_ptr() as usize;
        let page = PAGE_SIZE.load(Ordering::Relaxed);
        let end = (start + map.len()).div_ceil(page) * page;
        REGISTRY[slot].end.store(end, Ordering::Release);
        REGISTRY[slot].faulted.store(false, Ordering::Release);
        REGISTRY[slot].start.store(start, Ordering::Release);
        Some(GuardedMap {
            slot,
            path: path.to_string(),
            file,
            stamp,
            map,
        })
    }

    /// `Ok` while every byte read so far is the file's as it was when mapped; else an error
    /// naming the file (it was truncated, or rewritten in place).
    pub fn check_unchanged(&self) -> Result<()> {
        let faulted = REGISTRY[self.slot].faulted.load(Ordering::Acquire);
        if faulted || Stamp::of(&self.file) != Some(self.stamp) {
            return Err(IoError::Changed {
                path: self.path.clone(),
            });
        }
        Ok(())
    }
}

impl std::ops::Deref for GuardedMap {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for GuardedMap {
    fn drop(&mut self) {
        // Unregistered before `map` is unmapped (fields drop after this).
        REGISTRY[self.slot].start.store(0, Ordering::Release);
    }
}

/// A free slot, marked reserved; `None` when all are taken.
fn reserve_slot() -> Option<usize> {
    (0..SLOTS).find(|&i| {
        REGISTRY[i]
            .start
            .compare_exchange(0, RESERVED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    })
}

/// Install [`on_sigbus`] unless it is the current SIGBUS action, remembering the action it
/// replaces (checked at every mapping: a runtime may have put its own handler in since).
fn install_handler() {
    // Safety: sigaction with valid pointers; the handler only reads atomics and maps pages.
    unsafe {
        let mut current: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) != 0 {
            return;
        }
        let ours = on_sigbus as extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) as usize;
        if current.sa_sigaction == ours {
            return;
        }
        let page = libc::sysconf(libc::_SC_PAGESIZE);
        if page > 0 {
            PAGE_SIZE.store(page as usize, Ordering::Relaxed);
        }
        PREVIOUS_SIGINFO.store(current.sa_flags & libc::SA_SIGINFO != 0, Ordering::Release);
        PREVIOUS_HANDLER.store(current.sa_sigaction, Ordering::Release);
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = ours;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut());
    }
}

/// The SIGBUS handler: a fault inside a registered mapping is answered with zero pages over
/// the rest of it and a mark; any other goes to the previous action.
extern "C" fn on_sigbus(signal: c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // Safety: the kernel passes a valid siginfo; mmap over pages of our own mapping.
    unsafe {
        let address = (*info).si_addr() as usize;
        for slot in &REGISTRY {
            let start = slot.start.load(Ordering::Acquire);
            let end = slot.end.load(Ordering::Acquire);
            if start == 0 || start == RESERVED || address < start || address >= end {
                continue;
            }
            let page = address & !(PAGE_SIZE.load(Ordering::Relaxed) - 1);
            let zeros = libc::mmap(
                page as *mut c_void,
                end - page,
                libc::PROT_READ,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            );
            if zeros != libc::MAP_FAILED {
                slot.faulted.store(true, Ordering::Release);
                return;
            }
        }
        let previous = PREVIOUS_HANDLER.load(Ordering::Acquire);
        if previous == libc::SIG_DFL || previous == libc::SIG_IGN {
            // Back to the default action: the fault repeats when we return and ends the
            // process as it would have without us.
            libc::signal(libc::SIGBUS, libc::SIG_DFL);
        } else if PREVIOUS_SIGINFO.load(Ordering::Acquire) {
            let handler: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
                std::mem::transmute(previous);
            handler(signal, info, context);
        } else {
            let handler: extern "C" fn(c_int) = std::mem::transmute(previous);
            handler(signal);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(bytes).unwrap();
        file.flush().unwrap();
        let opened = File::open(file.path()).unwrap();
        (file, opened)
    }

    #[test]
    fn an_unchanged_file_reads_as_written() {
        let bytes: Vec<u8> = (0..3 * 4096 + 17).map(|i| (i % 251) as u8).collect();
        let (_keep, file) = file_of(&bytes);
        let map = GuardedMap::new(&file, "a.npy").unwrap();
        assert_eq!(&map[..], &bytes[..]);
        map.check_unchanged().unwrap();
    }

    #[test]
    fn a_truncated_file_reads_zeros_and_reports_the_change_instead_of_a_signal() {
        let bytes = vec![7u8; 64 * 4096];
        let (keep, file) = file_of(&bytes);
        let map = GuardedMap::new(&file, "shrunk.npy").unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(keep.path())
            .unwrap()
            .set_len(4096)
            .unwrap();
        // Without the guard, this read of a page past the new end is SIGBUS.
        let sum: u64 = map.iter().map(|&b| b as u64).sum();
        assert_eq!(sum, 7 * 4096);
        let error = map.check_unchanged().unwrap_err().to_string();
        assert!(error.contains("shrunk.npy"), "{error}");
        assert!(error.contains("changed while it was read"), "{error}");
    }

    #[test]
    fn a_file_rewritten_in_place_is_reported() {
        let (keep, file) = file_of(&[1u8; 8192]);
        let map = GuardedMap::new(&file, "rewritten.npy").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut writer = std::fs::OpenOptions::new()
            .write(true)
            .open(keep.path())
            .unwrap();
        writer.write_all(&[2u8; 100]).unwrap();
        writer.flush().unwrap();
        drop(writer);
        assert!(map.check_unchanged().is_err());
    }

    #[test]
    fn slots_are_freed_with_their_mappings() {
        let (_keep, file) = file_of(&[3u8; 4096]);
        for _ in 0..2 * SLOTS {
            let map = GuardedMap::new(&file, "again.npy").unwrap();
            assert_eq!(map[0], 3);
        }
    }
}
