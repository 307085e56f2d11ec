//! Projects: an organization's workload, its data source and the credentials it uses, and
//! the pages that manage them and their backups.

pub mod model;
pub mod routes;
