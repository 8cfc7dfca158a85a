//! Connecting to the hosts of a (multi-host) URL one at a time, each host's
//! whole attempt bounded by `connect_timeout`, as libpq does.
//!
//! tokio-postgres bounds only the TCP connect by `connect_timeout`; the
//! startup, the authentication and the `target_session_attrs` check wait
//! without limit. A host that completes the TCP handshake and then never
//! answers (a primary hung on its disk, a paused VM, a stopped process: the
//! kernel still accepts for it) holds that wait forever, and the hosts after
//! it are never tried: the standby promoted behind a hung primary is never
//! found. Here each host gets `connect_timeout` for everything, and then the
//! next host is tried.
//!
//! The host that last gave a connection is tried first, the others after it
//! in the URL's order: once a standby behind a hung primary is promoted, new
//! connections go to it at once instead of each waiting out the hung host
//! first, and a former primary that comes back is not preferred to it.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::task::JoinHandle;
use tokio_postgres::{
    Client, Config, NoTls,
    config::{Host, LoadBalanceHosts},
};
use tokio_postgres_rustls::MakeRustlsConnect;

/// The hosts of one URL, each as a configuration of its own, how long one
/// host's attempt may take, which host to try first, and the TLS connector
/// when connections are encrypted (see [`super::tls`]). Clones share it.
#[derive(Clone)]
pub(super) struct Hosts {
    each: Vec<Config>,
    limit: Duration,
    random: bool,
    first: Arc<AtomicUsize>,
    tls: Option<MakeRustlsConnect>,
}

/// Why no host gave a connection.
pub(super) enum Failed {
    /// The last error a host answered with.
    Refused(tokio_postgres::Error),
    /// Every host let its time run out.
    TimedOut(Duration),
}

impl Hosts {
    /// The hosts of `config`, whose `connect_timeout` must be set, reached
    /// through `tls` when it is given.
    pub(super) fn of(config: &Config, tls: Option<MakeRustlsConnect>) -> Hosts {
        let count = config.get_hosts().len().max(config.get_hostaddrs().len());
        let ports = config.get_ports();
        let each = (0..count)
            .map(|i| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                one_host(
                    config,
                    config.get_hosts().get(i),
                    config.get_hostaddrs().get(i).copied(),
                    port,
                )
            })
            .collect();
        Hosts {
            each,
            limit: config
                .get_connect_timeout()
                .copied()
                .unwrap_or(Duration::MAX),
            random: config.get_load_balance_hosts() == LoadBalanceHosts::Random,
            first: Arc::new(AtomicUsize::new(0)),
            tls,
        }
    }

    /// The longest one round over every host may take.
    pub(super) fn budget(&self) -> Duration {
        self.limit.saturating_mul(self.each.len().max(1) as u32)
    }

    /// A connection to the first host that answers within the limit and,
    /// with `target_session_attrs=read-write`, accepts writes: the host that
    /// last did first, then the others in the URL's order (shuffled with
    /// `load_balance_hosts=random`). The connection is driven by a task of
    /// its own, on the caller's runtime.
    pub(super) async fn connect(&self) -> Result<(Client, JoinHandle<()>), Failed> {
        let count = self.each.len();
        let first = self.first.load(Ordering::Relaxed);
        let mut order: Vec<usize> = (0..count).map(|k| (first + k) % count).collect();
        if self.random {
            fastrand::shuffle(&mut order);
        }
        let mut refused = None;
        for i in order {
            let config = &self.each[i];
            let attempt = async {
                Ok::<_, tokio_postgres::Error>(match &self.tls {
                    None => {
                        let (client, connection) = config.connect(NoTls).await?;
                        (client, drive(connection))
                    }
                    Some(tls) => {
                        let (client, connection) = config.connect(tls.clone()).await?;
                        (client, drive(connection))
                    }
                })
            };
            match tokio::time::timeout(self.limit, attempt).await {
                Ok(Ok(connected)) => {
                    self.first.store(i, Ordering::Relaxed);
                    return Ok(connected);
                }
                Ok(Err(error)) => refused = Some(error),
                Err(_) => {
                    tracing::debug!(host = i, limit = ?self.limit, "PostgreSQL host did not answer in time")
                }
            }
        }
        Err(refused.map_or(Failed::TimedOut(self.limit), Failed::Refused))
    }
}

/// The pool's connections come through [`Hosts::connect`] too.
impl deadpool_postgres::Connect for Hosts {
    fn connect(
        &self,
        _: &Config,
    ) -> Pin<
        Box<
            dyn Future<Output = Result<(Client, JoinHandle<()>), tokio_postgres::Error>>
                + Send
                + '_,
        >,
    > {
        Box::pin(async move {
            match Hosts::connect(self).await {
                Ok(connected) => Ok(connected),
                Err(Failed::Refused(error)) => Err(error),
                // The driver has no error of its own for this: the pool's
                // create timeout, the hosts' budget, ends the wait instead.
                Err(Failed::TimedOut(_)) => std::future::pending().await,
            }
        })
    }
}

/// Drives a connection until it ends.
fn drive<C>(connection: C) -> JoinHandle<()>
where
    C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "PostgreSQL connection ended");
        }
    })
}

/// `config` with one host (or host address) and port instead of its list;
/// everything else as it is.
fn one_host(
    config: &Config,
    host: Option<&Host>,
    hostaddr: Option<std::net::IpAddr>,
    port: u16,
) -> Config {
    let mut one = Config::new();
    if let Some(user) = config.get_user() {
        one.user(user);
    }
    if let Some(password) = config.get_password() {
        one.password(password);
    }
    if let Some(dbname) = config.get_dbname() {
        one.dbname(dbname);
    }
    if let Some(options) = config.get_options() {
        one.options(options);
    }
    if let Some(name) = config.get_application_name() {
        one.application_name(name);
    }
    one.ssl_mode(config.get_ssl_mode())
        .ssl_negotiation(config.get_ssl_negotiation())
        .keepalives(config.get_keepalives())
        .keepalives_idle(config.get_keepalives_idle())
        .target_session_attrs(config.get_target_session_attrs())
        .channel_binding(config.get_channel_binding())
        .load_balance_hosts(config.get_load_balance_hosts());
    if let Some(timeout) = config.get_connect_timeout() {
        one.connect_timeout(*timeout);
    }
    if let Some(timeout) = config.get_tcp_user_timeout() {
        one.tcp_user_timeout(*timeout);
    }
    if let Some(interval) = config.get_keepalives_interval() {
        one.keepalives_interval(interval);
    }
    if let Some(retries) = config.get_keepalives_retries() {
        one.keepalives_retries(retries);
    }
    match host {
        Some(Host::Tcp(name)) => {
            one.host(name);
        }
        Some(Host::Unix(path)) => {
            one.host_path(path);
        }
        None => {}
    }
    if let Some(addr) = hostaddr {
        one.hostaddr(addr);
    }
    one.port(port);
    one
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_host_keeps_every_setting_of_the_url() {
        let url = "postgresql://u:pw@db1:5433/ledger?connect_timeout=3&application_name=a\
                   &options=-c%20x%3D1&sslmode=disable&keepalives=0&keepalives_idle=7\
                   &keepalives_interval=2&keepalives_retries=4&tcp_user_timeout=9\
                   &target_session_attrs=read-write&channel_binding=disable\
                   &load_balance_hosts=random&hostaddr=127.0.0.2";
        let config: Config = url.parse().unwrap();
        let hosts = Hosts::of(&config, None);
        assert_eq!(hosts.each, vec![config]);
        assert_eq!(hosts.limit, Duration::from_secs(3));
        assert!(hosts.random);
    }

    #[test]
    fn each_host_gets_its_own_port_or_the_only_one() {
        let config: Config = "postgresql://a:1,b:2/db?connect_timeout=2".parse().unwrap();
        let hosts = Hosts::of(&config, None);
        let seen: Vec<(&[Host], &[u16])> = hosts
            .each
            .iter()
            .map(|c| (c.get_hosts(), c.get_ports()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (&[Host::Tcp("a".into())][..], &[1][..]),
                (&[Host::Tcp("b".into())][..], &[2][..]),
            ]
        );
        assert_eq!(hosts.budget(), Duration::from_secs(4));
        let config: Config = "host=a,b port=7 connect_timeout=1".parse().unwrap();
        let hosts = Hosts::of(&config, None);
        let ports: Vec<&[u16]> = hosts.each.iter().map(|c| c.get_ports()).collect();
        assert_eq!(ports, vec![&[7][..], &[7][..]]);
    }
}
