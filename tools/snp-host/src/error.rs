// SPDX-License-Identifier: GPL-2.0

//! The one error type of the tool: a sentence for the operator.

use std::{fmt, io};

/// What went wrong, in words, with the path or call it concerns.
#[derive(Debug)]
pub(crate) struct Error(String);

impl Error {
    /// An error that is only a sentence.
    pub(crate) fn msg(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// An I/O error on `what` (a path or an ioctl name).
    pub(crate) fn io(what: &str, e: &io::Error) -> Self {
        Self(format!("{what}: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Self(io::Error::from(e).to_string())
    }
}

/// The tool's result type.
pub(crate) type Result<T> = std::result::Result<T, Error>;
