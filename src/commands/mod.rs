//! The operator's subcommands. They print their reports to stdout: no protocol runs then, so
//! stdout is theirs.

pub mod audit;
pub mod check;
pub mod explain;
pub mod scan;
pub mod schema;
pub mod test;
