//! The edge's connection slots: who holds them, how many each source
//! holds, and which connections a newcomer may shed when all are taken.
//!
//! A connection is *untried* from its accept until its first request: it
//! has cost the server a socket and given it nothing. At `connections_max`
//! a new connection sheds the oldest untried one (nginx, HAProxy and Envoy
//! make the same choice: shed what has done the least, never the
//! newcomer), so a flood of half-open connections cannot lock clients out;
//! with none to shed, the newcomer is refused. A connection is only shed
//! once it has had [`SlotLimits::shed_age_min`] to make its first request:
//! otherwise a flood that reconnects as fast as it can would shed every
//! newcomer, a real client among them, before its handshake's first round
//! trip, and would cost the server a new connection per attempt instead of
//! a refusal. A source (an IPv4 address,
//! or an IPv6 /64, which one host can fill on its own) holds at most
//! `connections_per_source_max` slots, so one address cannot take them all.
//!
//! Everything is under one mutex, held for a few map operations per
//! accept, first request and close.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    future::Future,
    net::{IpAddr, Ipv6Addr},
    pin::Pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Most connections shed but not yet closed. A shed connection closes as
/// soon as its task runs (microseconds), but until then it holds a file
/// descriptor beyond `connections_max`; past this many, a newcomer is
/// refused instead of shedding another.
pub const EVICTIONS_PENDING_MAX: usize = 128;

/// The slots of one edge (both of its ports).
pub struct Slots {
    table: Mutex<Table>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Slots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slots").field("table", &self.table).finish()
    }
}

#[derive(Debug, Default)]
struct Table {
    /// Slots held: open connections, less those shed and not yet closed.
    held: usize,
    /// Slots held per source; a source with none has no entry, so the map
    /// has at most `held` entries.
    per_source: HashMap<IpAddr, usize>,
    /// Connections without a request yet, by id: the oldest first.
    untried: BTreeMap<u64, Untried>,
    /// Connections shed whose sockets are not closed yet.
    evicting: HashSet<u64>,
    next_id: u64,
}

#[derive(Debug)]
struct Untried {
    source: IpAddr,
    accepted_at: Instant,
    /// The TLS handshake and the HTTP/2 preface are done: only the first
    /// request is missing.
    handshaken: bool,
    /// Tells the connection it was shed.
    evict: oneshot::Sender<()>,
}

/// The limits one admission is checked against.
#[derive(Clone, Copy, Debug)]
pub struct SlotLimits {
    /// `connections_max`.
    pub total: usize,
    /// `connections_per_source_max`.
    pub per_source: usize,
    /// How long a connection is spared before it may be shed.
    pub shed_age_min: Duration,
}

impl Slots {
    /// Empty slots, counted in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Arc<Slots> {
        Arc::new(Slots {
            table: Mutex::new(Table::default()),
            metrics,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // Every critical section leaves the table consistent, so a panic
        // elsewhere while it was held does not make it unusable.
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A slot for a connection from `peer` accepted at `now`, shedding the
    /// oldest untried connection when every slot is taken; or the reason
    /// it is refused: `per_source` or `limit`.
    pub fn admit(
        self: &Arc<Slots>,
        peer: IpAddr,
        limits: SlotLimits,
        now: Instant,
    ) -> Result<SlotGuard, &'static str> {
        let source = source_of(peer);
        let mut table = self.lock();
        let from_source = table.per_source.get(&source).copied().unwrap_or(0);
        if from_source >= limits.per_source {
            return Err("per_source");
        }
        if table.held >= limits.total {
            if table.evicting.len() >= EVICTIONS_PENDING_MAX {
                return Err("limit");
            }
            let sheddable = table.untried.first_key_value().is_some_and(|(_, oldest)| {
                now.saturating_duration_since(oldest.accepted_at) >= limits.shed_age_min
            });
            if !sheddable {
                return Err("limit");
            }
            let Some((id, victim)) = table.untried.pop_first() else {
                return Err("limit");
            };
            table.release(victim.source);
            table.evicting.insert(id);
            // The victim may have closed on its own meanwhile; its guard
            // then finds itself in `evicting` and settles the count.
            let _ = victim.evict.send(());
            self.metrics.connection_evicted(if victim.handshaken {
                "no_request"
            } else {
                "handshake"
            });
        }
        table.held += 1;
        *table.per_source.entry(source).or_insert(0) += 1;
        let id = table.next_id;
        table.next_id += 1;
        let (evict, evicted) = oneshot::channel();
        table.untried.insert(
            id,
            Untried {
                source,
                accepted_at: now,
                handshaken: false,
                evict,
            },
        );
        self.metrics.connection_accepted();
        self.metrics.connections_open(table.open());
        Ok(SlotGuard {
            slots: Arc::clone(self),
            id,
            source,
            evicted: Some(evicted),
        })
    }

    /// Connection `id` finished its handshake; if shed now, it is counted
    /// as `no_request`.
    pub fn handshaken(&self, id: u64) {
        if let Some(untried) = self.lock().untried.get_mut(&id) {
            untried.handshaken = true;
        }
    }

    /// Connection `id` sent its first request: it can no longer be shed.
    pub fn first_request(&self, id: u64) {
        self.lock().untried.remove(&id);
    }

    /// Connections open now, shed ones not yet closed included.
    pub fn open(&self) -> usize {
        self.lock().open()
    }
}

impl Table {
    fn open(&self) -> usize {
        self.held + self.evicting.len()
    }

    /// Gives back one slot of `source`.
    fn release(&mut self, source: IpAddr) {
        self.held -= 1;
        if let Some(count) = self.per_source.get_mut(&source) {
            *count -= 1;
            if *count == 0 {
                self.per_source.remove(&source);
            }
        }
    }
}

/// One connection's slot, from its accept until its socket closes.
#[derive(Debug)]
pub struct SlotGuard {
    slots: Arc<Slots>,
    id: u64,
    source: IpAddr,
    /// Completes when the connection is shed; `None` once it cannot be
    /// (it sent a request) or was.
    evicted: Option<oneshot::Receiver<()>>,
}

impl SlotGuard {
    /// The connection's id in its [`Slots`].
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The slots it holds one of.
    pub fn slots(&self) -> &Arc<Slots> {
        &self.slots
    }

    /// True once the connection has been shed; registers `cx` to be woken
    /// when it is.
    pub fn poll_evicted(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(evicted) = self.evicted.as_mut() else {
            return false;
        };
        match Pin::new(evicted).poll(cx) {
            Poll::Ready(Ok(())) => {
                self.evicted = None;
                true
            }
            // The sender is gone: the connection sent a request.
            Poll::Ready(Err(_)) => {
                self.evicted = None;
                false
            }
            Poll::Pending => false,
        }
    }

    /// Completes when the connection is shed; never, once it cannot be.
    pub async fn evicted(&mut self) {
        std::future::poll_fn(|cx| {
            if self.poll_evicted(cx) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let mut table = self.slots.lock();
        if !table.evicting.remove(&self.id) {
            table.untried.remove(&self.id);
            table.release(self.source);
        }
        self.slots.metrics.connections_open(table.open());
    }
}

/// The key a connection counts against: its IPv4 address (an IPv4-mapped
/// IPv6 address is one), or the /64 of its IPv6 address, since a single
/// host is routinely given a whole /64.
pub fn source_of(peer: IpAddr) -> IpAddr {
    match peer {
        IpAddr::V4(_) => peer,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SlotLimits = SlotLimits {
        total: 3,
        per_source: 2,
        shed_age_min: Duration::from_millis(250),
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn count(metrics: &Metrics, series: &str) -> u64 {
        metrics
            .render()
            .lines()
            .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Proves the per-source limit counts slots per address and gives
    /// them back on close.
    #[test]
    fn one_source_holds_at_most_its_share() {
        let slots = Slots::new(Arc::new(Metrics::new()));
        let now = Instant::now();
        let a = slots.admit(ip("10.0.0.1"), LIMITS, now).unwrap();
        let _b = slots.admit(ip("10.0.0.1"), LIMITS, now).unwrap();
        assert_eq!(
            slots.admit(ip("10.0.0.1"), LIMITS, now).unwrap_err(),
            "per_source"
        );
        let _c = slots.admit(ip("10.0.0.2"), LIMITS, now).unwrap();
        drop(a);
        assert!(slots.admit(ip("10.0.0.1"), LIMITS, now).is_ok());
    }

    /// Proves a newcomer at capacity sheds the oldest connection without
    /// a request, once that one is old enough, counted by what it had
    /// done; and that with every connection serving requests, or the
    /// oldest untried one too young, the newcomer is refused.
    #[test]
    fn at_capacity_the_oldest_untried_connection_is_shed() {
        let metrics = Arc::new(Metrics::new());
        let slots = Slots::new(Arc::clone(&metrics));
        let start = Instant::now();
        let later = |ms| start + Duration::from_millis(ms);
        let mut oldest = slots.admit(ip("10.0.0.1"), LIMITS, start).unwrap();
        let mut second = slots.admit(ip("10.0.0.2"), LIMITS, later(10)).unwrap();
        let mut third = slots.admit(ip("10.0.0.3"), LIMITS, later(20)).unwrap();
        slots.first_request(third.id());
        slots.handshaken(second.id());
        let mut cx = Context::from_waker(std::task::Waker::noop());

        assert_eq!(
            slots.admit(ip("10.0.0.4"), LIMITS, later(249)).unwrap_err(),
            "limit",
            "the oldest is spared for 250 ms"
        );
        let fourth = slots.admit(ip("10.0.0.4"), LIMITS, later(250)).unwrap();
        assert!(oldest.poll_evicted(&mut cx), "the oldest is shed");
        assert!(!second.poll_evicted(&mut cx));
        assert_eq!(slots.open(), 4, "the shed one is open until dropped");
        drop(oldest);
        assert_eq!(slots.open(), 3);

        let fifth = slots.admit(ip("10.0.0.5"), LIMITS, later(300)).unwrap();
        assert!(second.poll_evicted(&mut cx));
        drop(second);
        slots.first_request(fourth.id());
        slots.first_request(fifth.id());
        assert_eq!(
            count(
                &metrics,
                r#"medassist_connections_evicted_total{reason="handshake"}"#
            ),
            1
        );
        assert_eq!(
            count(
                &metrics,
                r#"medassist_connections_evicted_total{reason="no_request"}"#
            ),
            1
        );
        // third, fourth and fifth serve requests: none can be shed.
        assert_eq!(
            slots.admit(ip("10.0.0.6"), LIMITS, later(900)).unwrap_err(),
            "limit"
        );
        assert!(!third.poll_evicted(&mut cx), "a serving connection stays");
    }

    /// Proves IPv6 peers count by /64 and IPv4-mapped ones as IPv4.
    #[test]
    fn sources_are_addresses_or_ipv6_prefixes() {
        assert_eq!(source_of(ip("192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(source_of(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(
            source_of(ip("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            ip("2001:db8:1:2::")
        );
    }
}
