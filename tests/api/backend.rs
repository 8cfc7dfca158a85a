//! Which store the suite runs on. By default the embedded store; with
//! `MEDASSIST_TEST_STORE=postgres`, every test server gets a fresh
//! PostgreSQL database instead (one per server directory, so a restart
//! finds its data again), on the server `MEDASSIST_TEST_POSTGRES`
//! (default `postgresql://postgres@127.0.0.1:5432`). Tests of what only
//! the embedded store has (its files, fsyncs, snapshots) run on it alone.
//!
//! Databases are named `medassist_t_<pid>_<n>`; those of test processes that
//! are gone are dropped when the next run first needs one.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::{
        Mutex, Once,
        atomic::{AtomicUsize, Ordering},
    },
};

/// True when the suite runs on PostgreSQL.
pub fn on_postgres() -> bool {
    std::env::var("MEDASSIST_TEST_STORE").is_ok_and(|store| store == "postgres")
}

/// The PostgreSQL server the tests use, without a database name.
pub fn postgres_server() -> String {
    std::env::var("MEDASSIST_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgresql://postgres@127.0.0.1:5432".to_owned())
}

/// The URL of the database of the server whose data directory is
/// `data_dir`, created on first use.
pub fn database_for(data_dir: &Path) -> String {
    static DATABASES: Mutex<Option<HashMap<PathBuf, String>>> = Mutex::new(None);
    let mut databases = DATABASES.lock().unwrap();
    databases
        .get_or_insert_with(HashMap::new)
        .entry(data_dir.to_owned())
        .or_insert_with(fresh_database)
        .clone()
}

/// A new, empty database; its URL.
pub fn fresh_database() -> String {
    static CLEANED: Once = Once::new();
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    CLEANED.call_once(drop_abandoned);
    let name = format!(
        "medassist_t_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    admin(&format!("CREATE DATABASE {name}"));
    format!("{}/{name}", postgres_server())
}

/// Runs SQL on the server's `postgres` database; the first column of
/// each row it returns.
pub fn admin(sql: &str) -> Vec<String> {
    admin_on("postgres", sql)
}

/// Runs SQL on the database `name`; the first column of each row.
pub fn admin_on(name: &str, sql: &str) -> Vec<String> {
    sql_at(&format!("{}/{name}", postgres_server()), sql)
}

/// Runs SQL (one or more statements) on the database at `url`; the first
/// column of each row.
pub fn sql_at(url: &str, sql: &str) -> Vec<String> {
    let (url, sql) = (url.to_owned(), sql.to_owned());
    // A thread of its own: callers may be inside a runtime already.
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {url} is needed for this test: {e}"));
            tokio::spawn(connection);
            let messages = client.simple_query(&sql).await.expect("admin SQL runs");
            messages
                .into_iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("admin SQL thread")
}

/// Drops the test databases of processes that have ended.
fn drop_abandoned() {
    let names = admin("SELECT datname FROM pg_database WHERE datname LIKE 'medassist\\_t\\_%'");
    for name in names {
        let pid = name
            .split('_')
            .nth(2)
            .and_then(|pid| pid.parse::<u32>().ok());
        if pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists()) {
            admin(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}
