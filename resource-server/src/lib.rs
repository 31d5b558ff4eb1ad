//! The notes API: validates OAuth access tokens offline ([`token`], usable
//! as a library) and serves each user's notes from its own database.

#![forbid(unsafe_code)]

pub mod cli;
pub mod config;
pub mod http;
pub mod problem;
pub mod startup;
pub mod storage;
pub mod token;
