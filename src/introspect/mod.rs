//! Filling the autogenerate model from PostgreSQL: the live namespace through
//! the catalog (catalog.rs) and the desired DDL run in a scratch namespace
//! (desired.rs).

pub mod catalog;
pub mod desired;

mod tests;
