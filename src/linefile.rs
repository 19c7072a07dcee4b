//! Text files of one record per line, the TS's table and the bench's names
//! file: reading one, its lines with blank lines and `#` comments left out,
//! and the errors, which name the file and the line.

use std::fmt;
use std::path::{Path, PathBuf};

/// What is wrong with a file of lines.
#[derive(Debug)]
pub enum FileError {
    /// The file could not be read.
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Line `line` (counted from 1) is not a valid record.
    Line {
        path: PathBuf,
        line: usize,
        problem: String,
    },
    /// The file holds no records; `what` names them ("names", "records").
    Empty { path: PathBuf, what: &'static str },
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileError::Io { path, error } => write!(f, "cannot read {}: {error}", path.display()),
            FileError::Line {
                path,
                line,
                problem,
            } => write!(f, "{}:{line}: {problem}", path.display()),
            FileError::Empty { path, what } => {
                write!(f, "{}: no {what} in the file", path.display())
            }
        }
    }
}

impl std::error::Error for FileError {}

/// Reads the file at `path` and parses it with `parse`, which reports a
/// malformed line by its number and problem; a file `is_empty` says holds
/// nothing is an error naming `what` it should have held.
///
/// # Errors
/// [`FileError`] naming the file (and line).
pub fn load<T>(
    path: &Path,
    parse: impl FnOnce(&[u8]) -> Result<T, (usize, String)>,
    is_empty: impl FnOnce(&T) -> bool,
    what: &'static str,
) -> Result<T, FileError> {
    let bytes = std::fs::read(path).map_err(|error| FileError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    let parsed = parse(&bytes).map_err(|(line, problem)| FileError::Line {
        path: path.to_path_buf(),
        line,
        problem,
    })?;
    if is_empty(&parsed) {
        return Err(FileError::Empty {
            path: path.to_path_buf(),
            what,
        });
    }
    Ok(parsed)
}

/// The lines of `text` that hold something, each with its number (from 1),
/// a `#` comment and surrounding whitespace (a `\r` included) removed; a
/// line that is not UTF-8 is an error with its number.
///
/// ```
/// use dnslb::linefile::content_lines;
/// let lines: Vec<_> = content_lines(b"# head\r\na.com 1.2.3.4 A # x\r\n\n b.com\n").collect();
/// assert_eq!(lines, [Ok((2, "a.com 1.2.3.4 A")), Ok((4, "b.com"))]);
/// assert_eq!(content_lines(b"\n\xff").nth(0), Some(Err((2, "not valid UTF-8".to_string()))));
/// ```
pub fn content_lines(text: &[u8]) -> impl Iterator<Item = Result<(usize, &str), (usize, String)>> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .filter_map(|(index, raw)| {
            let number = index + 1;
            let Ok(line) = std::str::from_utf8(raw) else {
                return Some(Err((number, "not valid UTF-8".to_string())));
            };
            let content = line.split('#').next().unwrap_or("").trim();
            (!content.is_empty()).then_some(Ok((number, content)))
        })
}
