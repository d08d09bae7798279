//! What is wrong with a configuration: each problem with its line and column.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything wrong with a configuration text, sorted by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// One problem, at a 1-based line and column (the column counts characters, not bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

/// Why a configuration file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {}", .path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("invalid configuration in {}:{}", .path.display(), Indented(.errors))]
    Invalid { path: PathBuf, errors: ConfigErrors },
}

/// Shows each problem on its own indented line, after a header line.
struct Indented<'a>(&'a ConfigErrors);

impl fmt::Display for Indented<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for problem in &self.0.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}
