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
//! as socklab's report model) — and nothing else: no file or folder socklab does not
//! write. Anything else is refused before a case runs ([`check_out`]), with nothing
//! touched. A `--out` that is a symbolic link updates the folder it points to; the link
//! stays. A run killed while staging leaves its `.NAME.tmp-PID` folder behind; the next
//! write removes such folders whose process is gone, and only those.
//!
//! Per-case files (`cases/<case>/capture.pcap`) go into the staging folder with the
//! rendered ones, so they are swapped in together. Re-rendering an existing report
//! ([`rerender_report`]) has no new case files: it hard-links (or, across filesystems,
//! copies) the old folder's `cases/` into the staging folder first, so the swap keeps
//! them.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use socklab_model::report::{Artifact, Report, SCHEMA_VERSION};
use thiserror::Error;

use crate::{RenderError, json, render_all};

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
        /// The first entry socklab does not write.
        foreign: String,
    },
    /// A case file's path is not a plain relative path under `cases/`.
    #[error("refusing to write case file `{0}`: not a relative path under cases/")]
    BadArtifactPath(String),
    /// Rendering failed.
    #[error(transparent)]
    Render(#[from] RenderError),
    /// `report.json` is not a report this version reads.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        error: json::ParseError,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FolderError + 'a {
    move |error| FolderError::Io { action, path: path.to_path_buf(), error }
}

/// The file every report folder gets, naming the tool and the schema version: what
/// marks a folder as socklab's to replace.
pub const MARKER: &str = ".socklab-report";

/// Everything socklab writes into a report folder.
const OWN_ENTRIES: &[&str] =
    &[MARKER, "report.json", "report.md", "index.html", "junit.xml", "compare.md", "compare.json", CASES_DIR];

/// Checks, before anything runs, that a report can be written to `out`: it is new, an
/// empty folder, or a socklab report folder holding only what socklab writes. Returns the
/// folder the report will go to (the target of `out` when it is a symbolic link).
///
/// # Errors
/// [`FolderError::NotAReport`] or [`FolderError::ForeignFile`] naming what is wrong;
/// nothing is touched.
pub fn check_out(out: &Path) -> Result<PathBuf, FolderError> {
    let target = resolve_link(out)?;
    ensure_replaceable(&target)?;
    Ok(target)
}

/// `path`, or where it points when it is a symbolic link (followed to the end).
fn resolve_link(path: &Path) -> Result<PathBuf, FolderError> {
    let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    if !is_link {
        return Ok(path.to_path_buf());
    }
    match fs::canonicalize(path) {
        Ok(target) => Ok(target),
        // A dangling link: its target does not exist yet; write there.
        Err(_) => {
            let target = fs::read_link(path).map_err(io_error("read link", path))?;
            let base = path.parent().unwrap_or(Path::new("."));
            Ok(if target.is_absolute() { target } else { base.join(target) })
        }
    }
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
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_error("remove stale folder", &staging))?;
    }
    let result = stage_and_swap(&staging, out, &files, &extra);
    if staging.exists() {
        // Either the half-written new report (on failure) or the old one (after a swap).
        let _ = fs::remove_dir_all(&staging);
    }
    result
}

fn stage_and_swap(
    staging: &Path,
    out: &Path,
    files: &[crate::RenderedFile],
    extra: &Extra<'_>,
) -> Result<(), FolderError> {
    fs::create_dir(staging).map_err(io_error("create folder", staging))?;
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
                let aside = staging.with_extension("old");
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

/// An artifact path must be relative, under `cases/`, with plain components only.
fn check_artifact_path(path: &str) -> Result<(), FolderError> {
    let components: Vec<Component<'_>> = Path::new(path).components().collect();
    let plain = components.iter().all(|c| matches!(c, Component::Normal(_)));
    let under_cases = components.first() == Some(&Component::Normal(CASES_DIR.as_ref()));
    if plain && under_cases && components.len() >= 2 {
        Ok(())
    } else {
        Err(FolderError::BadArtifactPath(path.to_string()))
    }
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
    if !out.exists() {
        return Ok(());
    }
    if !out.is_dir() {
        return Err(FolderError::NotAReport(out.to_path_buf()));
    }
    let mut names = Vec::new();
    for entry in fs::read_dir(out).map_err(io_error("read folder", out))? {
        names.push(entry.map_err(io_error("read folder", out))?.file_name().to_string_lossy().into_owned());
    }
    if names.is_empty() {
        return Ok(());
    }
    let socklabs = out.join(MARKER).is_file() || load_report(out).is_ok();
    if !socklabs {
        return Err(FolderError::NotAReport(out.to_path_buf()));
    }
    names.sort();
    match names.into_iter().find(|name| !OWN_ENTRIES.contains(&name.as_str())) {
        Some(foreign) => Err(FolderError::ForeignFile { path: out.to_path_buf(), foreign }),
        None => Ok(()),
    }
}

/// Removes `.NAME.tmp-PID` folders in `parent` left by runs that were killed while
/// staging: those whose process no longer exists. A live process's folder is left alone,
/// and so is anything that does not match the pattern exactly.
fn remove_stale_staging(parent: &Path, name: &str) {
    let prefix = format!(".{name}.tmp-");
    let Ok(entries) = fs::read_dir(parent) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = file_name.strip_prefix(&prefix).and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        if !alive && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Reads `DIR/report.json`.
///
/// # Errors
/// [`FolderError`] when the file is missing or not a report this version reads.
pub fn load_report(dir: &Path) -> Result<Report, FolderError> {
    let path = dir.join("report.json");
    let text = fs::read_to_string(&path).map_err(io_error("read", &path))?;
    json::parse(&text).map_err(|error| FolderError::Parse { path, error })
}
