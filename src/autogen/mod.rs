//! Autogenerate, the database-free core: the schema model, the comparison and
//! the revisions it writes. The catalog reader and the desired-DDL runner
//! (src/introspect) fill the model; sql_api/autogen.rs maps SQL onto it.

pub mod diff;
pub mod model;
pub mod render;

pub use diff::{diff, Diff, Phase, Refusal, Step};
pub use model::Schema;
pub use render::{plan_revisions, PlannedRevision};

#[cfg(test)]
mod tests;
