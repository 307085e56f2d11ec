//! keyhold: a console where Partners and Managers keep their organizations' credentials and
//! schedule backups of project data to S3-compatible storage.

pub mod access;
pub mod accounts;
pub mod api;
pub mod audit;
pub mod auth;
pub mod backup;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod crypto;
pub mod dashboard;
pub mod db;
pub mod db_errors;
pub mod error;
pub mod ids;
pub mod metrics;
pub mod notices;
pub mod notifications;
pub mod ops;
pub mod outbound;
pub mod page_cache;
pub mod projects;
pub mod routes;
pub mod schema;
pub mod session_cache;
pub mod session_store;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod web;
