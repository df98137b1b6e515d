//! The SothebAIs backend: one binary, `sothebais`, whose roles (auction, events,
//! agent, social, admin) run together or in separate processes against the same
//! storage and event bus. See `ARCHITECTURE.md` for the map.

pub mod admin;
pub mod agent;
pub mod app;
pub mod auction;
pub mod bus;
pub mod chain;
pub mod cli;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod http;
pub mod runtime;
pub mod social;
pub mod storage;
pub mod xsim;

pub use app::{Application, ServiceRole};
pub use config::Config;
