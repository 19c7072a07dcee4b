//! What can be wrong with bytes that should be a DNS message: the one error
//! every parser of the module reports.

use std::fmt;

/// Why bytes are not a DNS message. A server answers such a query with
/// FORMERR (RFC 1035 §4.1.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// Fewer than the 12 bytes of a header.
    ShortHeader,
    /// The message ends inside a name, a question or a record.
    Truncated,
    /// A compression pointer at this offset does not point strictly backwards.
    BadPointer { at: usize },
    /// A label at this offset has a reserved type (top bits `01` or `10`).
    LabelType { at: usize, byte: u8 },
    /// The name starting at this offset is longer than 255 bytes.
    NameTooLong { at: usize },
    /// A record's data does not match its type's layout (an A record not 4
    /// bytes long, a name running past the data).
    RData { rtype: u16, at: usize },
    /// An OPT record outside the additional section or with an owner other
    /// than the root (RFC 6891 §6.1.1).
    MisplacedOpt,
    /// More than one OPT record (RFC 6891 §6.1.1).
    DuplicateOpt,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::ShortHeader => f.write_str("shorter than a 12-byte header"),
            FormatError::Truncated => f.write_str("message ends inside a section"),
            FormatError::BadPointer { at } => {
                write!(
                    f,
                    "compression pointer at byte {at} does not point backwards"
                )
            }
            FormatError::LabelType { at, byte } => {
                write!(f, "reserved label type {byte:#04x} at byte {at}")
            }
            FormatError::NameTooLong { at } => {
                write!(f, "name at byte {at} is longer than 255 bytes")
            }
            FormatError::RData { rtype, at } => {
                write!(f, "malformed data of a type {rtype} record at byte {at}")
            }
            FormatError::MisplacedOpt => {
                f.write_str("OPT record outside the additional section or not owned by the root")
            }
            FormatError::DuplicateOpt => f.write_str("more than one OPT record"),
        }
    }
}

impl std::error::Error for FormatError {}
