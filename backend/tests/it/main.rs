//! Integration tests of the backend. Tests where storage or the bus matter run twice,
//! embedded (SQLite + in-process bus) and production (PostgreSQL + Redis, each test
//! with its own database and key prefix), through `both_backends!`.

mod helpers;

mod admin;
mod agent;
mod auction;
mod auction_ws;
mod auth;
mod bus;
mod chain;
mod contract;
mod conventions;
mod dispatch;
mod event_stream;
mod health;
mod social;
mod storage;
mod voice;
