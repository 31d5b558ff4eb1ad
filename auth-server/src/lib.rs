//! The OAuth 2.1 authorization server as a library: `startup::Application`
//! builds and runs it; `cli` implements the command line.

#![forbid(unsafe_code)]

pub mod audit;
pub mod background;
pub mod breached;
pub mod cli;
pub mod client_cache;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod hasher;
pub mod http;
pub mod keys;
pub mod limits;
pub mod model;
pub mod pages;
pub mod policy;
pub mod protocol;
pub mod registration;
pub mod startup;
pub mod state;
pub mod storage;
