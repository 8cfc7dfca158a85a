//! Integration tests: the real server on 127.0.0.1:0 with a temporary data
//! directory, called through real tonic clients.

mod backend;
mod helpers;

mod hostile;
mod http;
mod nhsa;

mod applications;
mod audit;
mod chaos;
mod client_tls;
mod clusters;
mod concurrency;
mod console;
mod crash;
mod damage;
mod database_tls;
mod durability;
mod edge;
mod edge_flood;
mod edge_stall;
mod failover;
mod faults;
mod file_modes;
mod fund_cli;
mod invariants;
mod migration;
mod operations;
mod policy;
mod policy_classes;
mod powercut;
mod powerfs;
mod reconciliation;
mod referrals;
mod reload;
mod restart;
mod retroactive;
mod roster;
mod roster_cli;
mod roster_exchange;
mod sealed;
mod security;
mod service;
mod settle;
mod shared;
mod snapshot;
mod statistics;
mod syscalls;
mod transit;
mod usage;
mod validation;
