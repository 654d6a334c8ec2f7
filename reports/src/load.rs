//! Reading a `report.json` back — for `socklab compare`, `socklab report DIR` and the
//! check of an existing `--out` — with bounds, since the file may be anything.
//!
//! Only a regular file is opened: a FIFO would block the read forever, and `/dev/zero`
//! (or any device) would feed it without end. Its size is checked before a byte is read,
//! against [`MAX_REPORT_BYTES`], and the read stops there even if the file grows. The
//! bytes go straight into the typed model ([`json::parse_reader`]), so memory follows the
//! report the file describes, not the file.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use socklab_model::report::Report;
use thiserror::Error;

use crate::json;

/// The largest `report.json` socklab reads: 256 MiB. Reports socklab writes stay far
/// below it: the default suite's is under 1 MiB, a case with a capture typically 2–25
/// KiB, so even a run of 10,000 cases (the most a suite may expand to) fits.
pub const MAX_REPORT_BYTES: u64 = 256 << 20;

/// Why a `report.json` could not be read back.
///
/// Messages include their cause, so `source()` is `None`: a chain printer such as
/// anyhow's `{:#}` shows each cause once.
#[derive(Debug, Error)]
pub enum LoadError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {error}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        error: io::Error,
    },
    /// The path is not a regular file (a FIFO, a device, a folder, a socket).
    #[error("cannot read {path}: it is {kind}, not a regular file; a report is the file report.json")]
    NotAFile {
        /// The path.
        path: PathBuf,
        /// What it is: `a FIFO`, `a character device`, …
        kind: &'static str,
    },
    /// The file is larger than [`MAX_REPORT_BYTES`].
    #[error(
        "cannot read {path}: it is {size} bytes ({}), over the limit of {limit} bytes ({}) for a report.json",
        mib(*size),
        mib(*limit)
    )]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size, in bytes.
        size: u64,
        /// The limit, in bytes.
        limit: u64,
    },
    /// The file is not a report this version reads.
    #[error("{path}: {error}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        error: json::ParseError,
    },
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1 << 20))
}

/// Reads `DIR/report.json`.
///
/// # Errors
/// [`LoadError`] when the file is missing, not a regular file, larger than
/// [`MAX_REPORT_BYTES`], or not a report this version reads.
pub fn load_report(dir: &Path) -> Result<Report, LoadError> {
    load_report_file(&dir.join("report.json"))
}

/// Reads a report from a report folder (its `report.json`) or from a `report.json`
/// file itself, as `socklab compare` takes either.
///
/// # Errors
/// As [`load_report`].
pub fn load_report_at(path: &Path) -> Result<Report, LoadError> {
    if path.is_dir() { load_report(path) } else { load_report_file(path) }
}

/// Reads the report file `path`, bounded as the module says.
///
/// # Errors
/// As [`load_report`].
pub fn load_report_file(path: &Path) -> Result<Report, LoadError> {
    let file = open_bounded(path, MAX_REPORT_BYTES)?;
    json::parse_reader(file, MAX_REPORT_BYTES)
        .map_err(|error| LoadError::Parse { path: path.to_path_buf(), error })
}

/// Opens `path` for reading if it is a regular file of at most `limit` bytes.
fn open_bounded(path: &Path, limit: u64) -> Result<File, LoadError> {
    let io_error = |error| LoadError::Io { path: path.to_path_buf(), error };
    // Looked at before opening: opening a device can itself do something (a tape
    // rewinds, a terminal becomes the controlling one), and opening a FIFO blocks.
    ensure_regular(path, &fs::metadata(path).map_err(io_error)?)?;
    // O_NONBLOCK: should the path have become a FIFO since, the open does not block.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    ensure_regular(path, &metadata)?;
    if metadata.len() > limit {
        return Err(LoadError::TooLarge { path: path.to_path_buf(), size: metadata.len(), limit });
    }
    Ok(file)
}

fn ensure_regular(path: &Path, metadata: &fs::Metadata) -> Result<(), LoadError> {
    let kind = metadata.file_type();
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a folder"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        "neither a file nor a folder"
    };
    Err(LoadError::NotAFile { path: path.to_path_buf(), kind: what })
}
