//! Writing embgeom's outputs without ever replacing what is not a regular file.
//!
//! Every file any embgeom command writes (JSON, reports, figures, tables, caches,
//! checkpoints) goes through [`write_output`] or [`write_output_with`], which first find out
//! what the path is, following symbolic links:
//! - a regular file, or nothing yet: written to a temporary file beside it and renamed over it,
//!   so an interrupted run never leaves half an output (an existing file keeps its
//!   permissions);
//! - a character device or FIFO (`/dev/null`, `/dev/stdout`, a pipe): opened and written in
//!   place, never renamed over or removed; a device that refuses the bytes (`/dev/full`) is an
//!   error naming it;
//! - a Unix socket: connected to and written;
//! - a symbolic link: its target, as above; the link stays as it was;
//! - a folder or a block device: refused with an error naming the path.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use thiserror::Error;

/// Why an output could not be written; the message names the path as given.
#[derive(Debug, Error)]
pub enum WriteError {
    /// The operating system refused a step (no space, no permission, no such folder).
    #[error("{path}: cannot write: {source}")]
    Io {
        /// The output, as given.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The path is something embgeom does not write to.
    #[error("{path}: cannot write: {why}")]
    NotWritable {
        /// The output, as given.
        path: String,
        /// What it is.
        why: &'static str,
    },
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, WriteError>;

/// Links followed at most before a path is refused (the kernel's own limit).
const MAX_LINKS: usize = 40;

/// Where the bytes for an output go, links followed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    /// A regular file, existing or new: replaced atomically.
    File { target: PathBuf, exists: bool },
    /// A character device or FIFO: written in place.
    Stream(PathBuf),
    /// A Unix socket: connected to and written.
    Socket(PathBuf),
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> WriteError + '_ {
    move |source| WriteError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn not_writable(path: &Path, why: &'static str) -> WriteError {
    WriteError::NotWritable {
        path: path.display().to_string(),
        why,
    }
}

/// What `path` is, after following its symbolic links.
fn destination(path: &Path) -> Result<Destination> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let meta = match std::fs::symlink_metadata(&current) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Destination::File {
                    target: current,
                    exists: false,
                })
            }
            Err(e) => return Err(io_error(path)(e)),
        };
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = std::fs::read_link(&current).map_err(io_error(path))?;
            // A relative target is relative to the link's folder; an absolute one replaces it.
            current = match current.parent() {
                Some(folder) => folder.join(link),
                None => link,
            };
            continue;
        }
        return if kind.is_file() {
            Ok(Destination::File {
                target: current,
                exists: true,
            })
        } else if kind.is_char_device() || kind.is_fifo() {
            Ok(Destination::Stream(current))
        } else if kind.is_socket() {
            Ok(Destination::Socket(current))
        } else if kind.is_dir() {
            Err(not_writable(path, "it is a folder"))
        } else if kind.is_block_device() {
            Err(not_writable(
                path,
                "it is a block device (a disk); embgeom does not write to disks",
            ))
        } else {
            Err(not_writable(path, "it is not a file embgeom can write"))
        };
    }
    Err(not_writable(path, "too many levels of symbolic links"))
}

/// Whether writing `path` would replace an existing regular file (links followed): what
/// commands refuse without `--force`. Devices, FIFOs and sockets are written through, not
/// replaced, so they never need it.
pub fn would_replace(path: &Path) -> bool {
    matches!(
        destination(path),
        Ok(Destination::File { exists: true, .. })
    )
}

/// Write `bytes` to `path`: atomically for a regular file, in place for a device, FIFO or
/// socket (see the crate's documentation). Errors name `path`.
pub fn write_output(path: &Path, bytes: &[u8]) -> Result<()> {
    match destination(path)? {
        Destination::File { target, exists } => replace_file(path, &target, exists, |temporary| {
            std::fs::write(temporary, bytes).map_err(io_error(path))
        }),
        Destination::Stream(target) | Destination::Socket(target) => send(path, &target, bytes),
    }
}

/// Write `path` through `encode`, which writes the whole output to the file it is given (an
/// encoder that chooses its format by extension gets the same extension): for a regular file
/// a temporary file beside it, renamed into place; for a device, FIFO or socket a temporary
/// file in the system's temporary folder, whose bytes are then written through.
pub fn write_output_with<E: From<WriteError>>(
    path: &Path,
    encode: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    match destination(path)? {
        Destination::File { target, exists } => replace_file(path, &target, exists, encode),
        Destination::Stream(target) | Destination::Socket(target) => {
            let name = target.file_name().unwrap_or_default().to_string_lossy();
            let staging = std::env::temp_dir().join(format!("embgeom-{name}"));
            let temporary = claim_temporary(path, &staging)?;
            let encoded = encode(&temporary).and_then(|()| {
                std::fs::read(&temporary)
                    .map_err(io_error(path))
                    .map_err(E::from)
            });
            let _ = std::fs::remove_file(&temporary);
            Ok(send(path, &target, &encoded?)?)
        }
    }
}

/// Write `bytes` in place to a device or FIFO (opened for writing), or to a socket
/// (connected to).
fn send(path: &Path, target: &Path, bytes: &[u8]) -> Result<()> {
    let sent = match std::fs::symlink_metadata(target).map(|m| m.file_type().is_socket()) {
        Ok(true) => std::os::unix::net::UnixStream::connect(target)
            .and_then(|mut socket| socket.write_all(bytes)),
        _ => std::fs::OpenOptions::new()
            .write(true)
            .open(target)
            .and_then(|mut stream| stream.write_all(bytes).and_then(|()| stream.flush())),
    };
    sent.map_err(io_error(path))
}

/// Encode into a new temporary file beside `target`, then rename it over `target` (keeping
/// the permissions of an `existing` file); the temporary file is removed on failure.
fn replace_file<E: From<WriteError>>(
    path: &Path,
    target: &Path,
    existing: bool,
    encode: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    let temporary = claim_temporary(path, target)?;
    let replaced = encode(&temporary).and_then(|()| {
        if existing {
            if let Ok(meta) = std::fs::metadata(target) {
                let _ = std::fs::set_permissions(&temporary, meta.permissions());
            }
        }
        std::fs::rename(&temporary, target)
            .map_err(io_error(path))
            .map_err(E::from)
    });
    if replaced.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    replaced
}

/// Tells the temporary files of one process apart.
static TEMPORARIES: AtomicUsize = AtomicUsize::new(0);

/// Create a new, empty temporary file for `target` beside it, with the same extension
/// (`figure.png` -> `figure.tmp-PID-K.png`): created exclusively, so it is never a file or
/// link that was already there.
fn claim_temporary(path: &Path, target: &Path) -> Result<PathBuf> {
    let stem = target.file_stem().unwrap_or_default().to_string_lossy();
    let extension = target
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let pid = std::process::id();
    loop {
        let k = TEMPORARIES.fetch_add(1, Ordering::Relaxed);
        let candidate = target.with_file_name(format!("{stem}.tmp-{pid}-{k}{extension}"));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&candidate)
        {
            Ok(_) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && k < 1 << 20 => continue,
            Err(e) => return Err(io_error(path)(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_new_file_is_written_and_no_temporary_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_output(&path, b"{}\n").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn an_existing_file_is_replaced_and_keeps_its_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        std::fs::write(&path, b"old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(would_replace(&path));
        write_output(&path, b"new").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_link_is_followed_and_stays_a_link() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real.json");
        std::fs::write(&target, b"old").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("real.json", &link).unwrap();
        write_output(&link, b"new").unwrap();
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&target).unwrap(), b"new");
        // A dangling link: its target is created.
        let dangling = dir.path().join("dangling.json");
        std::os::unix::fs::symlink("made.json", &dangling).unwrap();
        assert!(!would_replace(&dangling));
        write_output(&dangling, b"made").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("made.json")).unwrap(),
            b"made"
        );
    }

    #[test]
    fn a_fifo_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let name = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
        let reader = {
            let fifo = fifo.clone();
            std::thread::spawn(move || std::fs::read(fifo).unwrap())
        };
        assert!(!would_replace(&fifo));
        write_output_with(&fifo, |temporary: &Path| {
            std::fs::write(temporary, b"through a pipe").map_err(io_error(temporary))
        })
        .unwrap();
        assert_eq!(reader.join().unwrap(), b"through a pipe");
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }

    #[test]
    fn a_socket_is_written_through() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("socket");
        let listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let reader = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut got = Vec::new();
            std::io::Read::read_to_end(&mut stream, &mut got).unwrap();
            got
        });
        write_output(&path, b"to a socket").unwrap();
        assert_eq!(reader.join().unwrap(), b"to a socket");
        assert!(std::fs::symlink_metadata(&path)
            .unwrap()
            .file_type()
            .is_socket());
    }

    #[test]
    fn folders_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_output(dir.path(), b"x").unwrap_err().to_string();
        assert!(error.contains("it is a folder"), "{error}");
        assert!(error.contains(&dir.path().display().to_string()), "{error}");
    }

    #[test]
    fn a_loop_of_links_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let error = write_output(&a, b"x").unwrap_err().to_string();
        assert!(error.contains("too many levels"), "{error}");
    }
}
