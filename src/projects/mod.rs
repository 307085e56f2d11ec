//! Projects: an organization's workload, its data source and the credentials it uses, and
//! the pages that list, create, edit, delete and show them (a project's Backup tabs are
//! `backup::views`). `data_source` is what a data source or restore target must pass and how
//! tools connect to it; `source_url` is how an edit shows and takes the data source's URL;
//! `phase` is where a project's runs are (its listing shows the last one). Projects import
//! nothing of `backup`, which sits above them.

use crate::access::Role;

pub mod data_source;
pub mod model;
pub mod phase;
pub mod routes;
pub mod service;
pub mod source_url;

/// Who may change projects and their backups.
pub const MANAGERS: [Role; 2] = [Role::Partner, Role::Manager];
