//! Report folders, written atomically.
//!
//! A run renders every file into a temporary sibling folder (`.NAME.tmp-PID`), then swaps
//! it into place with one `renameat2(RENAME_EXCHANGE)`, so readers see either the whole
//! previous report or the whole new one — never half of each — and a crash mid-write
//! leaves the previous report untouched.
//!
//! **Only socklab's own folders are ever replaced.** An existing `--out` must be empty,
//! or hold a report socklab wrote — recognised by the [`MARKER`] file every report folder
//! gets (or, for folders written before the marker existed, a `report.json` that parses
//! as socklab's report model) — and nothing else, at any depth: the top level may hold
//! only the files socklab writes, and `cases/` only case folders named as
//! [`case_file`] names them, each holding only the files socklab writes there
//! ([`CASE_FILE_NAMES`]). Anything else — a user's notes in `cases/`, a symbolic link, a
//! folder where a file belongs — is refused before a case runs ([`check_out`]), with
//! nothing touched; so is an `--out` that cannot be written at all (a symbolic-link
//! loop, a file where a parent folder should be, a read-only parent). A `--out` that is
//! a symbolic link updates the folder it points to; the link stays.
//!
//! A run killed while staging leaves its `.NAME.tmp-PID` folder behind; the next write
//! removes such folders whose process is gone, and only those that hold socklab's
//! marker (the staging folder gets it first thing) and nothing socklab does not write —
//! or nothing at all.
//!
//! Per-case files (`cases/<case>/capture.pcap`) go into the staging folder with the
//! rendered ones, so they are swapped in together. Re-rendering an existing report
//! ([`rerender_report`]) has no new case files: it hard-links (or, across filesystems,
//! copies) the old folder's `cases/` into the staging folder first, so the swap keeps
//! them.
//!
//! [`case_file`]: socklab_model::report::case_file

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use socklab_model::report::{Artifact, CASE_FILE_NAMES, Report, SCHEMA_VERSION, is_case_folder};
use socklab_model::text::printable_text;
use thiserror::Error;

use crate::load::{LoadError, load_report};
use crate::{RenderError, render_all};

/// Why a report folder could not be written or read.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum FolderError {
    /// A file operation failed.
    #[error("cannot {action} {path}: {error}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The target exists and is not a report folder socklab wrote.
    #[error(
        "refusing to replace {0}: it exists and is not a socklab report folder (no {MARKER} marker or socklab \
         report.json); choose another --out, or an empty or new folder"
    )]
    NotAReport(PathBuf),
    /// The target is a socklab report folder holding things socklab did not write.
    #[error(
        "refusing to replace {path}: it holds `{foreign}`, which socklab did not write; move it out, or choose \
         another --out"
    )]
    ForeignFile {
        /// The report folder.
        path: PathBuf,
        /// The first entry socklab does not write, relative to the folder
        /// (`cases/my-notes.txt`), control characters escaped.
        foreign: String,
    },
    /// A folder on the way to the target is not a folder.
    #[error("cannot write a report to {out}: {path} is not a folder")]
    ParentNotAFolder {
        /// The report folder asked for.
        out: PathBuf,
        /// The path that should be a folder.
        path: PathBuf,
    },
    /// The nearest existing folder on the way to the target cannot be written.
    #[error("cannot write a report to {out}: folder {path} is not writable ({error})")]
    NotWritable {
        /// The report folder asked for.
        out: PathBuf,
        /// The folder the report would be created in.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The target or a folder on the way to it is a loop of symbolic links.
    #[error("cannot write a report to {0}: too many levels of symbolic links")]
    LinkLoop(PathBuf),
    /// The target names no folder of its own (`/`).
    #[error("cannot write a report to {0}: name a folder for it, such as ./socklab-report")]
    Unnamed(PathBuf),
    /// A case file's path is not a case folder's file as socklab names them.
    #[error("refusing to write case file `{0}`: not a relative path cases/<case folder>/<case file>")]
    BadArtifactPath(String),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// `report.json` could not be read back.
    #[error(transparent)]
    Load(#[from] LoadError),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FolderError + 'a {
    move |error| FolderError::Io { action, path: path.to_path_buf(), error }
}

/// The file every report folder gets, naming the tool and the schema version: what
/// marks a folder as socklab's to replace.
pub const MARKER: &str = ".socklab-report";

/// The files socklab writes at the top of a report folder (besides [`CASES_DIR`]).
const OWN_FILES: &[&str] =
    &[MARKER, "report.json", "report.md", "index.html", "junit.xml", "compare.md", "compare.json"];

/// Symbolic links followed from `--out` at most, as the kernel's own limit (40).
const MAX_LINKS: usize = 40;

/// Checks, before anything runs, that a report can be written to `out`: it is new (and
/// the folder it would go in exists or can be made, and can be written), an empty
/// folder, or a socklab report folder holding only what socklab writes. Returns the
/// folder the report will go to (the target of `out` when it is a symbolic link).
///
/// # Errors
/// [`FolderError::NotAReport`] or [`FolderError::ForeignFile`] naming what is wrong,
/// [`FolderError::LinkLoop`], [`FolderError::ParentNotAFolder`],
/// [`FolderError::NotWritable`] or [`FolderError::Unnamed`] when no report can go
/// there; nothing is touched.
pub fn check_out(out: &Path) -> Result<PathBuf, FolderError> {
    let target = named(resolve_link(out)?)?;
    check_parent(out, &target)?;
    ensure_replaceable(&target)?;
    Ok(target)
}

/// `path`, or where it points when it is a symbolic link — followed link by link, up to
/// [`MAX_LINKS`], so a dangling link (its target not made yet) is written through too.
fn resolve_link(path: &Path) -> Result<PathBuf, FolderError> {
    let mut current = path.to_path_buf();
    for _ in 0..=MAX_LINKS {
        match fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let next = fs::read_link(&current).map_err(io_error("read link", &current))?;
                current = match current.parent() {
                    Some(base) if next.is_relative() => base.join(next),
                    _ => next,
                };
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                return Err(FolderError::LinkLoop(path.into()));
            }
            _ => return Ok(current),
        }
    }
    Err(FolderError::LinkLoop(path.to_path_buf()))
}

/// A target whose last component is not a name (`.`, `..`) as the folder it names;
/// the staging folder goes beside it, so it needs a name and a parent.
fn named(target: PathBuf) -> Result<PathBuf, FolderError> {
    if target.file_name().is_some() {
        return Ok(target);
    }
    let canonical = fs::canonicalize(&target).map_err(io_error("find folder", &target))?;
    if canonical.file_name().is_some() { Ok(canonical) } else { Err(FolderError::Unnamed(target)) }
}

/// The nearest existing folder on the way to `target` must be a folder socklab can
/// write into (the staging folder and any missing parents are made there).
fn check_parent(out: &Path, target: &Path) -> Result<(), FolderError> {
    let mut ancestors =
        target.ancestors().skip(1).map(|a| if a.as_os_str().is_empty() { Path::new(".") } else { a });
    // Bounded: a path has finitely many ancestors, and `.` is the last of a relative one.
    let nearest = loop {
        let Some(folder) = ancestors.next() else { return Ok(()) };
        match fs::metadata(folder) {
            Ok(m) if m.is_dir() => break folder,
            Ok(_) => {
                return Err(FolderError::ParentNotAFolder { out: out.into(), path: folder.into() });
            }
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(FolderError::LinkLoop(out.into())),
            // Missing, or under something that is not a folder (found further up).
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR)) => {}
            Err(e) => return Err(io_error("check", folder)(e)),
        }
    };
    writable(nearest).map_err(|error| FolderError::NotWritable {
        out: out.into(),
        path: nearest.into(),
        error,
    })
}

/// Whether this process may create entries in `folder` (`access(W_OK | X_OK)`, which
/// also sees a read-only filesystem).
fn writable(folder: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(folder.as_os_str().as_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a NUL-terminated string that outlives the call; nothing else is read.
    let result = unsafe { libc::access(path.as_ptr(), libc::W_OK | libc::X_OK) };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// Renders `report` and puts the files in folder `out`, replacing an earlier report there
/// in one step.
///
/// # Errors
/// [`FolderError`] naming the path and what failed; the previous report, if any, is left
/// as it was.
pub fn write_report(out: &Path, report: &Report) -> Result<(), FolderError> {
    write_report_with(out, report, &[])
}

/// [`write_report`] plus the files the cases made (`cases/<case>/capture.pcap`), written
/// into the folder before it is swapped in.
///
/// # Errors
/// As [`write_report`]; [`FolderError::BadArtifactPath`] for a path that is not a plain
/// relative path under `cases/`.
pub fn write_report_with(out: &Path, report: &Report, artifacts: &[Artifact]) -> Result<(), FolderError> {
    for artifact in artifacts {
        check_artifact_path(&artifact.path)?;
    }
    write_folder(out, report, Extra::Artifacts(artifacts))
}

/// Re-renders the report in folder `dir` from its `report.json`, keeping its `cases/`
/// files, and swaps the result into place. Returns the report it read.
///
/// # Errors
/// [`FolderError`] when `report.json` cannot be read or the folder cannot be written;
/// the folder is left as it was.
pub fn rerender_report(dir: &Path) -> Result<Report, FolderError> {
    let report = load_report(dir)?;
    write_folder(dir, &report, Extra::KeepCases(dir))?;
    Ok(report)
}

/// What goes into the staging folder besides the rendered files.
enum Extra<'a> {
    /// New case files.
    Artifacts(&'a [Artifact]),
    /// The case files of the report folder being replaced.
    KeepCases(&'a Path),
}

fn write_folder(out: &Path, report: &Report, extra: Extra<'_>) -> Result<(), FolderError> {
    let files = render_all(report)?;
    let out = &check_out(out)?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "report".into());
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).map_err(io_error("create folder", &parent))?;
    remove_stale_staging(&parent, &name);
    let staging = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    // A folder of this name left by an earlier process with this PID goes only if it is
    // socklab's, like any stale staging folder.
    if fs::symlink_metadata(&staging).is_ok() && !remove_if_socklabs(&staging) {
        return Err(FolderError::NotAReport(staging));
    }
    fs::create_dir(&staging).map_err(io_error("create folder", &staging))?;
    let result = stage_and_swap(&staging, out, &files, &extra);
    // Either the half-written new report (on failure) or the old one (after a swap).
    let _ = fs::remove_dir_all(&staging);
    result
}

fn stage_and_swap(
    staging: &Path,
    out: &Path,
    files: &[crate::RenderedFile],
    extra: &Extra<'_>,
) -> Result<(), FolderError> {
    // The marker first: a run killed from here on leaves a folder the next run may remove.
    let marker = staging.join(MARKER);
    let marker_text = format!("{{\"generator\": \"socklab\", \"schema_version\": {}}}\n", SCHEMA_VERSION);
    fs::write(&marker, marker_text).map_err(io_error("write", &marker))?;
    for file in files {
        let path = staging.join(file.name);
        fs::write(&path, &file.bytes).map_err(io_error("write", &path))?;
    }
    match extra {
        Extra::Artifacts(artifacts) => {
            for artifact in *artifacts {
                let path = staging.join(&artifact.path);
                if let Some(folder) = path.parent() {
                    fs::create_dir_all(folder).map_err(io_error("create folder", folder))?;
                }
                fs::write(&path, &artifact.bytes).map_err(io_error("write", &path))?;
            }
        }
        Extra::KeepCases(dir) => {
            let cases = dir.join(CASES_DIR);
            if cases.is_dir() {
                link_tree(&cases, &staging.join(CASES_DIR))?;
            }
        }
    }
    if out.exists() {
        match exchange(staging, out) {
            Ok(()) => return Ok(()),
            // Filesystems without RENAME_EXCHANGE: move the old folder aside first.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) => {
                // `.NAME.tmp-PID.old`: a name stale-folder cleanup knows, should this
                // run be killed before it removes the old report.
                let mut aside = staging.as_os_str().to_owned();
                aside.push(".old");
                let aside = PathBuf::from(aside);
                fs::rename(out, &aside).map_err(io_error("move aside", out))?;
                if let Err(e) = fs::rename(staging, out) {
                    let _ = fs::rename(&aside, out);
                    return Err(io_error("rename into place", out)(e));
                }
                let _ = fs::remove_dir_all(&aside);
                return Ok(());
            }
            Err(e) => return Err(io_error("swap into place", out)(e)),
        }
    }
    fs::rename(staging, out).map_err(io_error("rename into place", out))
}

/// Swaps two existing paths in one step: `renameat2(RENAME_EXCHANGE)`.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let c_path = |p: &Path| {
        CString::new(p.as_os_str().as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
    };
    let (a, b) = (c_path(a)?, c_path(b)?);
    // SAFETY: both paths are NUL-terminated strings that outlive the call; the call reads
    // nothing else of this process's memory.
    let result = unsafe {
        libc::renameat2(libc::AT_FDCWD, a.as_ptr(), libc::AT_FDCWD, b.as_ptr(), libc::RENAME_EXCHANGE)
    };
    if result == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

/// The folder of per-case files inside a report folder.
const CASES_DIR: &str = "cases";

/// An artifact path must be `cases/<case folder>/<case file>`, named as
/// [`case_file`](socklab_model::report::case_file) names them: what a later run's
/// [`check_out`] recognises as socklab's.
fn check_artifact_path(path: &str) -> Result<(), FolderError> {
    let parts: Vec<Component<'_>> = Path::new(path).components().collect();
    let ok = match parts.as_slice() {
        [Component::Normal(cases), Component::Normal(folder), Component::Normal(file)] => {
            *cases == CASES_DIR
                && folder.to_str().is_some_and(is_case_folder)
                && file.to_str().is_some_and(|f| CASE_FILE_NAMES.contains(&f))
        }
        _ => false,
    };
    if ok { Ok(()) } else { Err(FolderError::BadArtifactPath(printable_text(path).into_owned())) }
}

/// Recreates folder `from` at `to`, hard-linking each file (copying where links fail,
/// e.g. across filesystems). Symbolic links and other special files are skipped.
fn link_tree(from: &Path, to: &Path) -> Result<(), FolderError> {
    fs::create_dir_all(to).map_err(io_error("create folder", to))?;
    for entry in fs::read_dir(from).map_err(io_error("read folder", from))? {
        let entry = entry.map_err(io_error("read folder", from))?;
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io_error("read file type", &source))?;
        if kind.is_dir() {
            link_tree(&source, &target)?;
        } else if kind.is_file() && fs::hard_link(&source, &target).is_err() {
            fs::copy(&source, &target).map_err(io_error("copy", &source))?;
        }
    }
    Ok(())
}

/// An existing `out` must be a folder that is empty, or a socklab report folder holding
/// nothing socklab does not write.
fn ensure_replaceable(out: &Path) -> Result<(), FolderError> {
    let Ok(metadata) = fs::symlink_metadata(out) else { return Ok(()) };
    if !metadata.is_dir() {
        return Err(FolderError::NotAReport(out.to_path_buf()));
    }
    if fs::read_dir(out).map_err(io_error("read folder", out))?.next().is_none() {
        return Ok(());
    }
    let socklabs = is_marked(out) || load_report(out).is_ok();
    if !socklabs {
        return Err(FolderError::NotAReport(out.to_path_buf()));
    }
    match foreign_entry(out)? {
        Some(foreign) => Err(FolderError::ForeignFile { path: out.to_path_buf(), foreign }),
        None => Ok(()),
    }
}

/// Whether `dir` holds socklab's [`MARKER`] (a regular file, not a link to one).
fn is_marked(dir: &Path) -> bool {
    fs::symlink_metadata(dir.join(MARKER)).is_ok_and(|m| m.is_file())
}

/// The first entry of report folder `dir` socklab does not write, in name order, as a
/// path relative to `dir` with control characters escaped: a name socklab does not use,
/// or one it uses for something else (a folder named `report.md`, a link named
/// `cases`), at the top or in `cases/`.
fn foreign_entry(dir: &Path) -> Result<Option<String>, FolderError> {
    for (name, kind) in sorted_entries(dir)? {
        let own = match name.as_str() {
            CASES_DIR if kind.is_dir() => match foreign_case_entry(&dir.join(CASES_DIR))? {
                Some(inner) => return Ok(Some(format!("{CASES_DIR}/{inner}"))),
                None => true,
            },
            file => OWN_FILES.contains(&file) && kind.is_file(),
        };
        if !own {
            return Ok(Some(name));
        }
    }
    Ok(None)
}

/// [`foreign_entry`] inside `cases/`: case folders named as socklab names them, each
/// holding only the files socklab writes there.
fn foreign_case_entry(cases: &Path) -> Result<Option<String>, FolderError> {
    for (folder, kind) in sorted_entries(cases)? {
        if !(kind.is_dir() && is_case_folder(&folder)) {
            return Ok(Some(folder));
        }
        for (file, kind) in sorted_entries(&cases.join(&folder))? {
            if !(kind.is_file() && CASE_FILE_NAMES.contains(&file.as_str())) {
                return Ok(Some(format!("{folder}/{file}")));
            }
        }
    }
    Ok(None)
}

/// The entries of `dir` with their types (links not followed), sorted by name; names
/// with control characters escaped, so one shown in a message cannot drive a terminal
/// (and, no longer matching any name socklab writes, counts as foreign).
fn sorted_entries(dir: &Path) -> Result<Vec<(String, fs::FileType)>, FolderError> {
    let mut entries = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_error("read folder", dir))? {
        let entry = entry.map_err(io_error("read folder", dir))?;
        let kind = entry.file_type().map_err(io_error("read file type", &entry.path()))?;
        let name = entry.file_name();
        let shown = match name.to_str() {
            Some(text) => printable_text(text).into_owned(),
            // Not UTF-8: never a name socklab writes; shown as well as it can be.
            None => format!("{}", printable_text(&name.to_string_lossy())),
        };
        entries.push((shown, kind));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(entries)
}

/// Removes `.NAME.tmp-PID` folders (and `.NAME.tmp-PID.old`, a previous report moved
/// aside) in `parent` left by runs killed while writing: those whose process no longer
/// exists and that are socklab's ([`remove_if_socklabs`]). A live process's folder is
/// left alone, and so is anything that does not match the pattern exactly.
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file_name.strip_prefix(&prefix) else { continue };
        let Ok(pid) = rest.strip_suffix(".old").unwrap_or(rest).parse::<u32>() else { continue };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_if_socklabs(&entry.path());
        }
    }
}

/// Removes the staging folder `dir` if socklab made it: it is empty (killed between
/// making it and writing the marker), or it holds the [`MARKER`] and nothing socklab
/// does not write. Returns whether it is gone.
fn remove_if_socklabs(dir: &Path) -> bool {
    if fs::remove_dir(dir).is_ok() {
        return true; // It was empty.
    }
    let socklabs = fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir())
        && is_marked(dir)
        && matches!(foreign_entry(dir), Ok(None));
    socklabs && fs::remove_dir_all(dir).is_ok()
}
