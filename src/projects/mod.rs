//! Projects: an organization's workload, its data source and the credentials it uses, and
//! the pages that list, create and show them (a project's Backup tabs are `backup::views`).

use crate::auth::Role;

pub mod model;
pub mod routes;
pub mod service;

/// Who may change projects and their backups.
pub const MANAGERS: [Role; 2] = [Role::Partner, Role::Manager];
