//! Replacing a file atomically: readers see the old content or the new,
//! never a mix, and a crash leaves one of the two on disk.
//!
//! The new content goes to a temporary file in the same directory (created
//! exclusively, so nothing planted under that name is written through),
//! which gets the old file's mode and, where permitted, owner, is flushed,
//! and is renamed over the target; then the directory is flushed so the
//! rename survives a power cut. A symlink is followed, so the link stays and
//! its target is replaced; a dangling link gets its target created.
//!
//! This module does not lock: callers that may race each other must
//! serialize their writes themselves.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Links followed before giving up, as the kernel's own limit.
const MAX_LINKS: usize = 40;

/// Atomically replaces (or creates) `path` with `bytes`.
///
/// A new file gets mode 0644. On error the old file is untouched and the
/// temporary file removed; the error says which step failed. Failing to
/// flush the directory after the rename is only logged: the new content is
/// in place, it might just not survive a power cut.
pub fn replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let target = resolve(path)?;
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = temp_name(&target)?;
    let old = fs::metadata(&target).ok();

    let result = write_synced(&tmp, bytes, old.as_ref())
        .and_then(|()| fs::rename(&tmp, &target).map_err(|e| step(e, "rename", &tmp)));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
        return result;
    }
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        crate::warn!(
            "replaced {}, but flushing its directory failed: {e}",
            target.display()
        );
    }
    Ok(())
}

/// The temporary name used for `target`: `.NAME.tmp.PID` next to it.
/// Public so callers and tests can see what a crash may leave behind.
pub fn temp_name(target: &Path) -> io::Result<PathBuf> {
    let name = target
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path names no file"))?;
    let mut tmp = OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp.{}", std::process::id()));
    Ok(target.with_file_name(tmp))
}

/// Removes the temporary files that replacements by earlier processes left
/// next to each of `paths` (`.NAME.tmp.PID`, where a crash or a stop cut a
/// replacement short), reading each directory once however many of the
/// paths it holds. Returns the files removed.
pub fn remove_stale<'a>(paths: impl IntoIterator<Item = &'a Path>) -> Vec<PathBuf> {
    use std::collections::{BTreeMap, BTreeSet};
    let mut by_dir: BTreeMap<PathBuf, BTreeSet<String>> = BTreeMap::new();
    for path in paths {
        let Ok(target) = resolve(path) else { continue };
        let Some(name) = target.file_name() else {
            continue;
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        by_dir
            .entry(dir)
            .or_default()
            .insert(name.to_string_lossy().into_owned());
    }
    let mut removed = Vec::new();
    for (dir, names) in by_dir {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let stale = file
                .strip_prefix('.')
                .and_then(|f| f.rsplit_once(".tmp."))
                .is_some_and(|(name, pid)| {
                    names.contains(name)
                        && !pid.is_empty()
                        && pid.bytes().all(|b| b.is_ascii_digit())
                });
            if stale && fs::remove_file(entry.path()).is_ok() {
                removed.push(entry.path());
            }
        }
    }
    removed
}

/// The file that `path` finally names, following symlinks even when the
/// last one dangles (then its target is what will be created).
pub fn target(path: &Path) -> io::Result<PathBuf> {
    resolve(path)
}

fn resolve(path: &Path) -> io::Result<PathBuf> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(md) if md.file_type().is_symlink() => {
                let link = fs::read_link(&current)?;
                current = match current.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => return Ok(current),
        }
    }
    Err(io::Error::other(format!(
        "{}: more than {MAX_LINKS} symlinks",
        path.display()
    )))
}

/// Adds the failed step and the file to an I/O error.
fn step(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// Creates `path` exclusively with `bytes`, the old file's permission bits
/// (0644 for a new file, independent of the umask) and, where permitted,
/// its owner and group, and flushes it to disk. Whatever already has that
/// name (a crash's leftover, a planted link) is removed, never written
/// through.
fn write_synced(path: &Path, bytes: &[u8], old: Option<&fs::Metadata>) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let create = || OpenOptions::new().write(true).create_new(true).open(path);
    let mut file = match create() {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            fs::remove_file(path).map_err(|e| step(e, "remove stale", path))?;
            create()
        }
        other => other,
    }
    .map_err(|e| step(e, "create", path))?;
    file.write_all(bytes).map_err(|e| step(e, "write", path))?;
    let mode = old.map_or(0o644, |m| m.permissions().mode() & 0o7777);
    file.set_permissions(fs::Permissions::from_mode(mode))
        .map_err(|e| step(e, "chmod", path))?;
    if let Some(m) = old {
        // Only root may give a file away; otherwise it stays ours.
        let _ = std::os::unix::fs::fchown(&file, Some(m.uid()), Some(m.gid()));
    }
    file.sync_all().map_err(|e| step(e, "fsync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "hapgent-common-atomic-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_and_keeps_mode() {
        let dir = temp_dir("mode");
        let path = dir.join("f.cfg");
        fs::write(&path, "old").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640);
        assert_eq!(names(&dir), ["f.cfg"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn creates_a_missing_file_0644() {
        let dir = temp_dir("create");
        let path = dir.join("f");
        replace(&path, b"x").unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(
            (fs::read_to_string(&path).unwrap().as_str(), mode),
            ("x", 0o644)
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn follows_symlinks_even_dangling_ones() {
        let dir = temp_dir("link");
        let real = dir.join("real");
        let link = dir.join("link");
        fs::write(&real, "old").unwrap();
        std::os::unix::fs::symlink("real", &link).unwrap();
        replace(&link, b"new").unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(&real).unwrap(), "new");

        let dangling = dir.join("dangling");
        std::os::unix::fs::symlink(dir.join("made"), &dangling).unwrap();
        replace(&dangling, b"made").unwrap();
        assert!(
            fs::symlink_metadata(&dangling)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read_to_string(dir.join("made")).unwrap(), "made");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stale_temporaries_are_removed_once_per_directory() {
        let dir = temp_dir("stale");
        for name in [
            ".a.json.tmp.12",
            ".b.json.tmp.7",
            ".a.json.tmp.x",
            "other",
            ".c.json.tmp.3",
        ] {
            fs::write(dir.join(name), "x").unwrap();
        }
        let (a, b) = (dir.join("a.json"), dir.join("b.json"));
        let mut removed = remove_stale([a.as_path(), b.as_path()]);
        removed.sort();
        assert_eq!(
            removed,
            [dir.join(".a.json.tmp.12"), dir.join(".b.json.tmp.7")]
        );
        assert_eq!(names(&dir), [".a.json.tmp.x", ".c.json.tmp.3", "other"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn failure_leaves_the_old_file_and_no_temporary() {
        let dir = temp_dir("fail");
        let path = dir.join("f");
        fs::write(&path, "old").unwrap();
        // A non-empty directory under the temporary name cannot be removed.
        let tmp = temp_name(&path).unwrap();
        fs::create_dir(&tmp).unwrap();
        fs::write(tmp.join("x"), "").unwrap();
        let err = replace(&path, b"new").unwrap_err();
        assert!(err.to_string().contains("remove stale"), "{err}");
        assert_eq!(fs::read_to_string(&path).unwrap(), "old");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_planted_temporary_link_is_not_followed() {
        let dir = temp_dir("planted");
        let path = dir.join("f");
        let victim = dir.join("victim");
        fs::write(&victim, "keep").unwrap();
        std::os::unix::fs::symlink(&victim, temp_name(&path).unwrap()).unwrap();
        replace(&path, b"new").unwrap();
        assert_eq!(fs::read_to_string(&victim).unwrap(), "keep");
        assert_eq!(fs::read_to_string(&path).unwrap(), "new");
        fs::remove_dir_all(&dir).unwrap();
    }
}
