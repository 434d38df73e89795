//! Reading a small file that someone else controls, safely.
//!
//! Every file hapgent reads (the state file, the configuration, the CPU
//! counters) is named by an operator and could be anything: a FIFO, which
//! would block `open` or `read` forever; a device such as `/dev/zero`,
//! which never ends; or a huge file. So a file is opened without blocking,
//! must be a regular file, and is read up to a cap (one byte more, to tell
//! that the cap was passed). `/proc` files are regular with a size of 0, so
//! they pass.
//!
//! This module only reads; what the bytes mean is the caller's business.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing at that path.
    Missing,
    /// A directory, FIFO, socket or device.
    NotRegular,
    /// More than the cap; the size when known.
    TooLarge { size: u64, cap: u64 },
    /// The system refused: permission, too many open files, I/O error...
    Io(io::Error),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Missing => f.write_str("does not exist"),
            ReadError::NotRegular => {
                f.write_str("is not a regular file (a FIFO or device would block or never end)")
            }
            ReadError::TooLarge { size, cap } => {
                write!(f, "is larger than {cap} bytes ({size} bytes)")
            }
            ReadError::Io(e) => write!(f, "cannot be read: {e}"),
        }
    }
}

/// Reads the regular file at `path`, at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ReadError::Missing,
            _ => ReadError::Io(e),
        })?;
    let meta = file.metadata().map_err(ReadError::Io)?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular);
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            cap,
        });
    }
    let mut bytes = Vec::with_capacity(meta.len().min(cap).max(256) as usize);
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge {
            size: bytes.len() as u64,
            cap,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn refuses_what_could_block_or_never_end() {
        let dir = std::env::temp_dir().join(format!("hapgent-files-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success()
        );
        assert!(matches!(
            read_regular(&fifo, 10),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular)
        ));
        assert!(matches!(read_regular(&dir, 10), Err(ReadError::NotRegular)));
        assert!(matches!(
            read_regular(&dir.join("none"), 10),
            Err(ReadError::Missing)
        ));
        let big = dir.join("big");
        fs::write(&big, [b'x'; 11]).unwrap();
        assert!(matches!(
            read_regular(&big, 10),
            Err(ReadError::TooLarge { size: 11, cap: 10 })
        ));
        fs::write(&big, [b'x'; 10]).unwrap();
        assert_eq!(read_regular(&big, 10).unwrap().len(), 10);
        // /proc files report a size of 0 and are still read.
        assert!(
            !read_regular(Path::new("/proc/stat"), 1 << 20)
                .unwrap()
                .is_empty()
        );
        fs::remove_dir_all(&dir).unwrap();
    }
}
