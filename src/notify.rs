//! systemd's service notifications (sd_notify(3)) for `pacer agent` and `pacer
//! scheduler` run as `Type=notify` units with a watchdog (deploy/systemd/).
//!
//! The protocol is one datagram of `KEY=VALUE` lines to the socket `NOTIFY_SOCKET`
//! names (a path, or `@name` in the abstract namespace); `WATCHDOG_USEC` asks for
//! `WATCHDOG=1` at least that often. systemd documents it as stable, and it is these
//! few lines over `std`'s `UnixDatagram` rather than a crate. Without `NOTIFY_SOCKET`
//! (not under systemd) every call does nothing.
//!
//! Who sends what: `READY=1` once the agent has claimed its node and probed every
//! resource, once the scheduler runs its loop (standing by or leading); `WATCHDOG=1`
//! from inside those loops, and only while their lease is healthy (`Watchdog`), so a
//! hung loop or a lease that cannot be renewed stops the pings and systemd restarts
//! the process; `STOPPING=1` on shutdown; `STATUS=` says what it is doing.
//!
//! A self-fencing (the agent stopping everything because its lease lapsed) runs off
//! the loop for a time known when it begins: the agent extends the watchdog for that
//! long (`WATCHDOG_USEC=`, systemd 236 and later) and puts it back once done
//! (`Notifier::extend_watchdog`, `restore_watchdog`), so a long lease's self-fencing
//! is not cut short by systemd, and a hung one still is.
//!
//! A datagram is dropped when systemd's socket is full (EAGAIN). Pings and status
//! lines may be: the next one follows. `READY=1`, `STOPPING=1` and the watchdog's
//! changes are retried for at most `RELIABLE_SEND_LIMIT`.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why the environment's notification settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `NOTIFY_SOCKET` is neither an absolute path nor `@name`.
    #[error("read NOTIFY_SOCKET {0:?}: expected an absolute path or @name")]
    Address(String),
    /// The sending socket cannot be made, or the address is invalid.
    #[error("open NOTIFY_SOCKET {address:?}: {source}")]
    Socket { address: String, source: std::io::Error },
    /// `WATCHDOG_USEC` is not a positive whole number.
    #[error("read WATCHDOG_USEC {0:?}: expected a positive number of microseconds")]
    WatchdogUsec(String),
}

struct Target {
    socket: UnixDatagram,
    address: SocketAddr,
    name: String,
}

/// Where notifications go, if anywhere, and how often the watchdog wants a ping.
pub struct Notifier {
    target: Option<Target>,
    /// Half of `WATCHDOG_USEC` (what sd_watchdog_enabled(3) recommends), when the
    /// watchdog is on for this process.
    watchdog_interval: Option<Duration>,
    /// `WATCHDOG_USEC` itself: what `restore_watchdog` puts back.
    watchdog_timeout: Option<Duration>,
    ready: AtomicBool,
    /// A failed send is logged once, not at every ping.
    warned: AtomicBool,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Notifier")
            .field("socket", &self.target.as_ref().map(|target| target.name.as_str()))
            .field("watchdog_interval", &self.watchdog_interval)
            .finish()
    }
}

impl Notifier {
    /// Notifies nobody.
    pub fn disabled() -> Notifier {
        Notifier { target: None, watchdog_interval: None, watchdog_timeout: None, ready: AtomicBool::new(false), warned: AtomicBool::new(false) }
    }

    /// From `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (the watchdog is this
    /// process's only when `WATCHDOG_PID` is absent or names it). The variables are
    /// left in the environment: resource agents and alert receivers run with a cleared
    /// one (`exec`), so none of them can speak for this process.
    pub fn from_environment() -> Result<Notifier, NotifyError> {
        let variable = |name: &str| std::env::var_os(name).map(|value| value.to_string_lossy().into_owned()).filter(|value| !value.is_empty());
        Notifier::from_values(variable("NOTIFY_SOCKET"), variable("WATCHDOG_USEC"), variable("WATCHDOG_PID"), std::process::id())
    }

    fn from_values(socket: Option<String>, watchdog_usec: Option<String>, watchdog_pid: Option<String>, pid: u32) -> Result<Notifier, NotifyError> {
        let Some(name) = socket else { return Ok(Notifier::disabled()) };
        let address = if let Some(abstract_name) = name.strip_prefix('@') {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(abstract_name.as_bytes())
        } else if name.starts_with('/') {
            SocketAddr::from_pathname(&name)
        } else {
            return Err(NotifyError::Address(name));
        }
        .map_err(|source| NotifyError::Socket { address: name.clone(), source })?;
        let socket = UnixDatagram::unbound().map_err(|source| NotifyError::Socket { address: name.clone(), source })?;
        // A ping that cannot be queued is dropped rather than holding up a loop.
        socket.set_nonblocking(true).map_err(|source| NotifyError::Socket { address: name.clone(), source })?;
        let ours = watchdog_pid.is_none_or(|text| text.trim() == pid.to_string());
        let watchdog_timeout = match watchdog_usec {
            Some(text) if ours => {
                let usec: u64 = text.trim().parse().ok().filter(|usec| *usec > 0).ok_or(NotifyError::WatchdogUsec(text))?;
                Some(Duration::from_micros(usec))
            }
            _ => None,
        };
        let watchdog_interval = watchdog_timeout.map(|timeout| timeout / 2);
        Ok(Notifier {
            target: Some(Target { socket, address, name }),
            watchdog_interval,
            watchdog_timeout,
            ready: AtomicBool::new(false),
            warned: AtomicBool::new(false),
        })
    }

    /// How often to send `WATCHDOG=1`, when systemd watches this process.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog_interval
    }

    /// `READY=1` the first time (start-up is complete), with a status line; later
    /// calls only update the status.
    pub fn ready(&self, status: &str) {
        if self.ready.swap(true, Ordering::Relaxed) {
            self.status(status);
        } else {
            self.send_reliably(&format!("READY=1\nSTATUS={}", one_line(status)));
        }
    }

    /// `STATUS=`: what `systemctl status` shows.
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", one_line(status)));
    }

    /// `WATCHDOG=1`: alive and well.
    pub fn watchdog(&self) {
        self.send("WATCHDOG=1");
    }

    /// `STOPPING=1`: shutting down (stopping resources can take long).
    pub fn stopping(&self, status: &str) {
        self.send_reliably(&format!("STOPPING=1\nSTATUS={}", one_line(status)));
    }

    /// For work that runs off the watched loop for a bounded time (a self-fencing):
    /// `WATCHDOG=1` now, and the watchdog's timeout raised to `duration` plus the
    /// usual timeout, so systemd waits that long for the next ping. Nothing when the
    /// watchdog is off.
    pub fn extend_watchdog(&self, duration: Duration) {
        let Some(timeout) = self.watchdog_timeout else { return };
        let extended = duration.saturating_add(timeout);
        self.send_reliably(&format!("WATCHDOG=1\nWATCHDOG_USEC={}", extended.as_micros()));
    }

    /// Puts the watchdog's timeout back after `extend_watchdog`, with a ping: the
    /// bounded work is over, so the caller is not hung.
    pub fn restore_watchdog(&self) {
        let Some(timeout) = self.watchdog_timeout else { return };
        self.send_reliably(&format!("WATCHDOG=1\nWATCHDOG_USEC={}", timeout.as_micros()));
    }

    /// Best effort: a ping or status line that cannot be queued is dropped.
    fn send(&self, message: &str) {
        let Some(target) = &self.target else { return };
        if let Err(error) = target.socket.send_to_addr(message.as_bytes(), &target.address) {
            self.warn_once(&error, &target.name);
        }
    }

    /// For messages that must arrive: retried while systemd's socket is full (EAGAIN,
    /// ENOBUFS) for at most `RELIABLE_SEND_LIMIT`. This blocks the calling thread for
    /// that long at worst, and only while systemd reads nothing (it is then busy, and
    /// a start-up or shutdown waiting on it loses nothing).
    fn send_reliably(&self, message: &str) {
        let Some(target) = &self.target else { return };
        let deadline = Instant::now() + RELIABLE_SEND_LIMIT;
        loop {
            match target.socket.send_to_addr(message.as_bytes(), &target.address) {
                Ok(_) => return,
                Err(error) if is_full(&error) && Instant::now() < deadline => std::thread::sleep(RELIABLE_SEND_PAUSE),
                Err(error) => return self.warn_once(&error, &target.name),
            }
        }
    }

    fn warn_once(&self, error: &std::io::Error, socket: &str) {
        if !self.warned.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, %socket, "cannot notify systemd");
        }
    }
}

/// How long `READY=1`, `STOPPING=1` and the watchdog's changes are retried on a full
/// socket, and the pause between attempts.
const RELIABLE_SEND_LIMIT: Duration = Duration::from_secs(1);
const RELIABLE_SEND_PAUSE: Duration = Duration::from_millis(10);

/// Whether a send failed only because the receiving socket's queue is full.
fn is_full(error: &std::io::Error) -> bool {
    error.kind() == std::io::ErrorKind::WouldBlock || error.raw_os_error() == Some(libc::ENOBUFS)
}

/// A status is one line: a newline would start another assignment.
fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A loop's last sign of health: when it last turned with its lease healthy (what
/// `WATCHDOG=1` says to systemd), for `/healthz` (Kubernetes' probes). Written by the
/// loop's `Watchdog`, read by the metrics endpoint.
#[derive(Debug)]
pub struct Progress {
    since: Instant,
    /// Milliseconds from `since` to the last healthy turn, plus one (0: none yet).
    last: std::sync::atomic::AtomicU64,
    /// Milliseconds from `since` until which the loop is excused (0: not excused): a
    /// self-fencing under way, whose length is known, as systemd's watchdog is
    /// extended for it (`Notifier::extend_watchdog`).
    excused_until: std::sync::atomic::AtomicU64,
}

impl Default for Progress {
    fn default() -> Progress {
        Progress { since: Instant::now(), last: std::sync::atomic::AtomicU64::new(0), excused_until: std::sync::atomic::AtomicU64::new(0) }
    }
}

/// What `/healthz` says of a loop.
#[derive(Debug, PartialEq, Eq)]
pub enum Health {
    /// It turned with a healthy lease this long ago, within the limit.
    Healthy(Duration),
    /// Its last healthy turn is older than the limit: hung, or cut off from etcd.
    Stale(Duration),
    /// It has not turned yet (still connecting, claiming or probing).
    Starting,
}

impl Progress {
    /// The loop turned with its lease healthy.
    pub fn mark(&self) {
        self.mark_at(Instant::now());
    }

    fn mark_at(&self, now: Instant) {
        let millis = u64::try_from(now.saturating_duration_since(self.since).as_millis()).unwrap_or(u64::MAX - 1);
        self.last.store(millis + 1, Ordering::Relaxed);
    }

    /// The loop will not turn until `deadline`, by design (a self-fencing of known
    /// length): it is healthy until then, as long as `excuse_until` is not ended.
    pub fn excuse_until(&self, deadline: Instant) {
        let millis = u64::try_from(deadline.saturating_duration_since(self.since).as_millis()).unwrap_or(u64::MAX - 1);
        self.excused_until.store(millis + 1, Ordering::Relaxed);
    }

    /// The excuse is over (the self-fencing ended).
    pub fn end_excuse(&self) {
        self.excused_until.store(0, Ordering::Relaxed);
    }

    /// Healthy if the last healthy turn is at most `limit` before `now`, or while the
    /// loop is excused.
    pub fn health(&self, now: Instant, limit: Duration) -> Health {
        let excused = match self.excused_until.load(Ordering::Relaxed) {
            0 => false,
            millis => now <= self.since + Duration::from_millis(millis - 1),
        };
        match self.last.load(Ordering::Relaxed) {
            0 => Health::Starting,
            millis => {
                let age = now.saturating_duration_since(self.since + Duration::from_millis(millis - 1));
                if age <= limit || excused { Health::Healthy(age) } else { Health::Stale(age) }
            }
        }
    }
}

/// How often a loop marks its progress when systemd's watchdog is off (with it on, at
/// every ping).
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// The watchdog's clock inside a loop: `due` completes when a ping is due (never when
/// neither systemd's watchdog nor a `Progress` is watching); `ping(healthy)` sends one
/// (and marks the progress) only if the loop's caller says its lease is healthy, and
/// sets the next due time either way.
pub struct Watchdog {
    notifier: std::sync::Arc<Notifier>,
    progress: Option<std::sync::Arc<Progress>>,
    next: Option<Instant>,
}

impl Watchdog {
    pub fn new(notifier: std::sync::Arc<Notifier>) -> Watchdog {
        let next = notifier.watchdog_interval().map(|_| Instant::now());
        Watchdog { notifier, progress: None, next }
    }

    /// Also marks `progress` at each healthy ping (every `PROGRESS_INTERVAL` at least).
    pub fn with_progress(mut self, progress: std::sync::Arc<Progress>) -> Watchdog {
        self.progress = Some(progress);
        self.next = Some(Instant::now());
        self
    }

    fn interval(&self) -> Option<Duration> {
        match (self.notifier.watchdog_interval(), &self.progress) {
            (Some(interval), Some(_)) => Some(interval.min(PROGRESS_INTERVAL)),
            (Some(interval), None) => Some(interval),
            (None, Some(_)) => Some(PROGRESS_INTERVAL),
            (None, None) => None,
        }
    }

    /// Completes when the next ping is due.
    pub async fn due(&self) {
        match self.next {
            Some(next) => tokio::time::sleep_until(next.into()).await,
            None => std::future::pending().await,
        }
    }

    /// Sends `WATCHDOG=1` when `healthy`; either way the next is due an interval on.
    pub fn ping(&mut self, healthy: bool) {
        let Some(interval) = self.interval() else { return };
        if healthy {
            if self.notifier.watchdog_interval().is_some() {
                self.notifier.watchdog();
            }
            if let Some(progress) = &self.progress {
                progress.mark();
            }
        }
        self.next = Some(Instant::now() + interval);
    }

    /// `ping(healthy)` if a ping is due: for loops that turn on their own clock.
    pub fn ping_if_due(&mut self, healthy: bool) {
        if self.next.is_some_and(|next| Instant::now() >= next) {
            self.ping(healthy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receiver() -> (tempfile::TempDir, UnixDatagram, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let socket = UnixDatagram::bind(&path).expect("bind");
        socket.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        (dir, socket, path.display().to_string())
    }

    fn received(socket: &UnixDatagram) -> String {
        let mut buffer = [0u8; 4096];
        let length = socket.recv(&mut buffer).expect("a notification");
        String::from_utf8_lossy(&buffer[..length]).into_owned()
    }

    #[test]
    fn ready_once_then_status_and_watchdog_at_half_the_interval() {
        let (_dir, socket, path) = receiver();
        let notifier = Notifier::from_values(Some(path), Some("4000000".into()), None, 7).expect("notifier");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_secs(2)));
        notifier.ready("node n1 claimed\nprobed");
        assert_eq!(received(&socket), "READY=1\nSTATUS=node n1 claimed probed");
        notifier.ready("again");
        assert_eq!(received(&socket), "STATUS=again");
        notifier.watchdog();
        assert_eq!(received(&socket), "WATCHDOG=1");
        notifier.stopping("stopping");
        assert_eq!(received(&socket), "STOPPING=1\nSTATUS=stopping");
    }

    #[test]
    fn abstract_socket_names_are_reached() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("pacer-notify-test-{}", std::process::id());
        let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).expect("address")).expect("bind");
        socket.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
        Notifier::from_values(Some(format!("@{name}")), None, None, 1).expect("notifier").status("up");
        assert_eq!(received(&socket), "STATUS=up");
    }

    #[test]
    fn the_watchdog_is_another_process_s_when_its_pid_differs() {
        let (_dir, _socket, path) = receiver();
        let notifier = Notifier::from_values(Some(path.clone()), Some("1000000".into()), Some("8".into()), 7).expect("notifier");
        assert_eq!(notifier.watchdog_interval(), None);
        let notifier = Notifier::from_values(Some(path), Some("1000000".into()), Some("7".into()), 7).expect("notifier");
        assert_eq!(notifier.watchdog_interval(), Some(Duration::from_millis(500)));
    }

    #[test]
    fn bad_settings_are_refused_and_no_socket_means_nothing_is_sent() {
        assert!(matches!(Notifier::from_values(Some("relative".into()), None, None, 1), Err(NotifyError::Address(_))));
        let (_dir, _socket, path) = receiver();
        let error = Notifier::from_values(Some(path), Some("soon".into()), None, 1).expect_err("refused");
        assert_eq!(error.to_string(), "read WATCHDOG_USEC \"soon\": expected a positive number of microseconds");
        let quiet = Notifier::from_values(None, Some("1000000".into()), None, 1).expect("notifier");
        assert_eq!(quiet.watchdog_interval(), None);
        quiet.ready("nobody listens");
    }

    /// The receiving socket's queue filled (as when systemd is busy): READY=1 waits
    /// for room instead of being dropped, and STOPPING=1 too.
    #[test]
    fn ready_and_stopping_wait_for_room_on_a_full_socket() {
        let (_dir, socket, path) = receiver();
        let filler = UnixDatagram::unbound().expect("filler");
        filler.set_nonblocking(true).expect("nonblocking");
        let mut queued = 0;
        while filler.send_to(b"WATCHDOG=1", &path).is_ok() {
            queued += 1;
            assert!(queued < 100_000, "the socket never fills");
        }
        let notifier = Notifier::from_values(Some(path.clone()), None, None, 1).expect("notifier");
        notifier.status("dropped: the queue is full");
        let drain = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            let mut messages = Vec::new();
            while messages.len() < queued + 2 {
                messages.push(received(&socket));
            }
            messages
        });
        notifier.ready("claimed");
        notifier.stopping("bye");
        let messages = drain.join().expect("drain");
        assert_eq!(messages.iter().filter(|message| message.starts_with("WATCHDOG=1")).count(), queued);
        assert_eq!(&messages[queued..], ["READY=1\nSTATUS=claimed", "STOPPING=1\nSTATUS=bye"]);
    }

    #[test]
    fn the_watchdog_is_extended_for_bounded_work_and_put_back() {
        let (_dir, socket, path) = receiver();
        let notifier = Notifier::from_values(Some(path.clone()), Some("30000000".into()), None, 1).expect("notifier");
        notifier.extend_watchdog(Duration::from_secs(45));
        assert_eq!(received(&socket), "WATCHDOG=1\nWATCHDOG_USEC=75000000");
        notifier.restore_watchdog();
        assert_eq!(received(&socket), "WATCHDOG=1\nWATCHDOG_USEC=30000000");
        // Without a watchdog there is nothing to extend.
        let unwatched = Notifier::from_values(Some(path), None, None, 1).expect("notifier");
        unwatched.extend_watchdog(Duration::from_secs(45));
        unwatched.status("only this");
        assert_eq!(received(&socket), "STATUS=only this");
    }

    #[test]
    fn progress_is_healthy_within_its_limit_and_stale_after() {
        let progress = Progress::default();
        let limit = Duration::from_secs(30);
        assert_eq!(progress.health(Instant::now(), limit), Health::Starting);
        let marked = progress.since + Duration::from_secs(100);
        progress.mark_at(marked);
        assert_eq!(progress.health(marked + Duration::from_secs(30), limit), Health::Healthy(Duration::from_secs(30)));
        assert_eq!(progress.health(marked + Duration::from_secs(31), limit), Health::Stale(Duration::from_secs(31)));
        // A self-fencing of known length excuses the loop until its end, no longer.
        progress.excuse_until(marked + Duration::from_secs(90));
        assert_eq!(progress.health(marked + Duration::from_secs(60), limit), Health::Healthy(Duration::from_secs(60)));
        assert_eq!(progress.health(marked + Duration::from_secs(91), limit), Health::Stale(Duration::from_secs(91)));
        progress.end_excuse();
        assert_eq!(progress.health(marked + Duration::from_secs(60), limit), Health::Stale(Duration::from_secs(60)));
    }

    #[tokio::test]
    async fn progress_is_marked_only_while_healthy_even_without_systemd() {
        let progress = std::sync::Arc::new(Progress::default());
        let mut watchdog = Watchdog::new(std::sync::Arc::new(Notifier::disabled())).with_progress(progress.clone());
        watchdog.due().await;
        watchdog.ping(false);
        assert_eq!(progress.health(Instant::now(), Duration::from_secs(30)), Health::Starting);
        watchdog.ping(true);
        assert!(matches!(progress.health(Instant::now(), Duration::from_secs(30)), Health::Healthy(_)));
    }

    #[tokio::test]
    async fn an_unhealthy_loop_sends_no_ping() {
        let (_dir, socket, path) = receiver();
        socket.set_nonblocking(true).expect("nonblocking");
        let notifier = std::sync::Arc::new(Notifier::from_values(Some(path), Some("200000".into()), None, 1).expect("notifier"));
        let mut watchdog = Watchdog::new(notifier);
        watchdog.due().await;
        watchdog.ping(false);
        let mut buffer = [0u8; 64];
        assert!(socket.recv(&mut buffer).is_err(), "no ping while unhealthy");
        watchdog.due().await;
        watchdog.ping(true);
        let length = socket.recv(&mut buffer).expect("a ping");
        assert_eq!(&buffer[..length], b"WATCHDOG=1");
    }
}
