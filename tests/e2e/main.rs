//! End-to-end tests: the real `sothebais` binary, started as an operator would.

mod backend;
mod campaign;
mod console;
mod crash;
mod deploy;
mod on_air;
mod outbox;
mod show;
mod social;
mod writers;
