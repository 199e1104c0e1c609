//! The SQL surface. Each function maps its arguments onto the pure cores in
//! `revisions` and the runtime in `engine`; no logic of its own lives here.

pub mod alembic;
pub mod apply;
pub mod authoring;
pub mod autogen;
pub mod check;
pub mod drift;
pub mod from_drift;
pub mod inspect;
pub mod load;
pub mod ranges;
pub mod roundtrip;
pub mod scripts;
mod authoring_tests;
mod test_support;
mod tests;
