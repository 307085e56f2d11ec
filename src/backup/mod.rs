//! Backups of project data to S3: policies (cron, zone, retention), the runner (pg_dump
//! streamed into a multipart upload; pg_restore from a streamed download), the scheduler that
//! claims due slots, and the pages of a project's Backup tabs.

pub mod bucket;
pub mod drill;
pub mod encryption;
pub mod health;
pub mod keeping;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod reads;
pub mod restore;
pub mod routes;
pub mod runner;
pub mod scheduler;
pub mod service;
pub mod spool;
pub mod views;
