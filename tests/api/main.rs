//! Integration tests: the real server on 127.0.0.1:0 with a temporary data
//! directory, called through real tonic clients.

mod helpers;

mod hostile;
mod http;

mod concurrency;
mod crash;
mod damage;
mod durability;
mod edge;
mod faults;
mod invariants;
mod operations;
mod policy;
mod powercut;
mod powerfs;
mod restart;
mod roster;
mod security;
mod service;
mod settle;
mod snapshot;
mod syscalls;
mod usage;
mod validation;
