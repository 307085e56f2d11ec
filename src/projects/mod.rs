//! Projects: an organization's workload, its data source and the credentials it uses, and
//! the pages that list, create, edit, delete and show them (a project's Backup tabs are
//! `backup::views`). `source_url` is how an edit shows and takes the data source's URL.

use crate::access::Role;

pub mod model;
pub mod routes;
pub mod service;
pub mod source_url;

/// Who may change projects and their backups.
pub const MANAGERS: [Role; 2] = [Role::Partner, Role::Manager];
