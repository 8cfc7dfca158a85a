//! Integration tests: the real server on 127.0.0.1:0 with a temporary data
//! directory, called through real tonic clients.

mod helpers;

mod hostile;

mod concurrency;
mod crash;
mod durability;
mod edge;
mod faults;
mod invariants;
mod operations;
mod policy;
mod restart;
mod roster;
mod security;
mod service;
mod settle;
mod usage;
mod validation;
