//! Integration tests: the real app on port 0, a fresh PostgreSQL database per test.

mod accounts;
mod api;
mod audit_log;
mod backups;
mod credentials;
mod data_sources;
mod drills;
mod encryption;
mod errors_and_headers;
mod faults;
mod injection;
mod instances;
mod management;
mod matrix;
mod mfa;
mod notifications;
mod operations;
mod page_cache;
mod policy_presets;
mod project_form;
mod refusals;
mod restores;
mod routes;
mod s3_servers;
mod sessions;
mod setup_and_sign_in;
mod storage_faults;
#[path = "../support/mod.rs"]
mod support;
