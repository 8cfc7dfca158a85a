//! # medassist
//!
//! Settles medical assistance (医疗救助) at hospital discharge, in one bill
//! with basic and critical-illness insurance. Hospitals settle and reverse
//! claims, insurance platforms ask what is left of a patient's annual cap,
//! civil affairs offices keep the roster of who is assisted.
//!
//! ## Layout, from the inside out
//!
//! - [`domain`]: the checked values of the trade: [`domain::Money`] (yuan,
//!   exact to the fen), resident IDs, dates, region and diagnosis codes,
//!   claims, roster records, policies, settlements. Each is built only by a
//!   `parse` that names what is wrong, so the rest of the code never
//!   re-validates.
//! - [`rules`]: the policy as pure functions: who is covered, which
//!   categories and classes apply, how much is paid, how the annual cap cuts
//!   it; with [`rules::year`], the 2021 framework's deductibles, ratio bands,
//!   outpatient sub-cap and tilted assistance on the year's running total,
//!   and the explanation every answer carries. No clock, storage or network:
//!   plain unit and property tests cover it.
//! - [`store`]: the [`store::Store`] trait and its embedded implementation on
//!   sled. It only stores: atomic, durable batches and reads. Durable means
//!   fsync'd: each commit is one record of the store's journal, written and
//!   `fdatasync`'d before any answer (`store/journal.rs`); the journal
//!   continues a base copy of the whole store that a background thread
//!   renews (`store/base.rs`), and sled's own files are trusted only after a
//!   clean stop, else rebuilt from those two (`store/checkpoint.rs`,
//!   `store/sled_store/recovery.rs`). Snapshots are taken online
//!   (`store/snapshot.rs`). [`store::PostgresStore`]
//!   (`store/postgres/`) is the store several instances share: each ledger
//!   batch is one transaction that locks its patient-year totals and claim
//!   keys and reads its patients' roster records, with the schema's
//!   migrations carried in the binary, and TLS to the database when given
//!   its CA (`store/postgres/tls.rs`).
//! - [`ledger`]: the single writer of its process. It orders every write,
//!   applies the cap in that order, commits queued requests as one batch with
//!   one flush, and answers only after the flush; a lone write on the
//!   embedded store is committed by its caller, sparing two hand-offs
//!   between threads. On a shared store the
//!   batch runs in the store's transaction, assesses its claims on the roster
//!   records read there, and is run again when another instance wrote the
//!   same records first.
//! - [`roster_cache`]: a bounded cache of roster records that the ledger
//!   keeps coherent with every committed roster write (off on a shared store,
//!   whose other instances write the roster too).
//! - [`app`]: the use cases (quote, settle, reverse, usage, roster and its
//!   bulk exchange, policy and its simulation, snapshots, the fund office's
//!   reconciliation by hospital and business day, export and referrals to
//!   temporary assistance, assistance on application with the stays a
//!   late enrollment owes and the caseworkers' queue, and a region's figures
//!   of a year) over store, ledger and
//!   rules, with errors that separate "you sent something wrong" from
//!   "something broke".
//! - [`auth`]: who is calling (bearer tokens, kept as SHA-256 digests) and
//!   the permission table of the roles (hospital, insurer, roster_admin,
//!   auditor, caseworker, officer, supervisor, operator, metrics); the app
//!   consults it.
//! - [`grpc`]: the wire. Generated messages, conversions to and from the
//!   domain, the authentication interceptor, the gate (concurrency limit and
//!   request metrics), and the single table from errors to gRPC status codes.
//!   Beside it, the HTTP/JSON gateway ([`grpc::transcode`]): routes read from
//!   the protos' `google.api.http` annotations ([`grpc::http_rule`]), JSON
//!   turned into the same gRPC calls through the same stack; `build.rs`
//!   writes the OpenAPI document from the same annotations. And the national
//!   platform's hospital interface ([`grpc::nhsa`], `POST /nhsa/v1`): its
//!   envelope turned into the same calls by one mapping table.
//! - [`statistics`]: the year's figures of a region (by month, class,
//!   region, hospital, cost band, ICD-10 chapter) as a pure fold of
//!   settlements, beside [`simulate`], the replay of a year under another
//!   policy.
//! - [`console`]: the fund staff's web console, three hand-written files in
//!   `src/console/` served on the HTTP/JSON port at `/console/`: a client of
//!   the same API with the user's token, adding no way in of its own.
//! - [`metrics`]: the Prometheus registry the gate, app and ledger update.
//! - [`config`]: the TOML configuration file (policies, tokens, TLS,
//!   limits). [`edge`]: the accept loop of every port and what holds
//!   before authentication: connection slots with a per-source limit and
//!   shedding of the connection that has done the least when they are
//!   full, the TLS (and mTLS, whose certificate subject goes to the audit
//!   trail) and HTTP/2 handshake deadline, idle and write-stall timeouts.
//!   [`server`]: start-up, TLS on every port, health, reflection, the
//!   metrics endpoint (behind a token, on its own edge) and HTTP/JSON
//!   endpoints, exposure checked at start-up and at every reload, the drain
//!   (`NOT_SERVING` first) and graceful shutdown. [`telemetry`]:
//!   logs, text or JSON. [`cli`]: the command line that `main.rs` calls.
//!   [`client`]: what the client subcommands share (connection over TLS or
//!   not, token, progress, output files, errors). [`seal`]: snapshots and
//!   exports encrypted with age to the fund's recovery key. [`bench`](mod@bench): the load generator; [`soak`]:
//!   the long load with chaos that checks every acknowledged write.
//!   [`verify`]: the offline consistency check of a data directory.
//!   [`clock`]: the time the ledger stamps commits with (settable in tests).
//!
//! A request flows grpc → app → (rules, store reads) → ledger → store, and
//! the answer comes back the same way once the write is on disk.

#![warn(missing_docs)]

pub mod app;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod console;
pub mod domain;
pub mod edge;
pub mod grpc;
pub mod ledger;
pub mod metrics;
pub mod roster_cache;
pub mod rules;
pub mod seal;
pub mod server;
pub mod simulate;
pub mod soak;
pub mod statistics;
pub mod store;
pub mod telemetry;
pub mod verify;

/// The README's Rust example compiles as a doctest, so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;
