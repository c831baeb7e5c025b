//! Network namespaces made by the test itself, so a node can lose its network to etcd
//! the way a real node does: its packets lost, not its connections reset.
//! `local::link::Link` cuts by closing connections, which an agent notices at once; a
//! real cut shows itself only as silence, which the agent must notice by its own
//! timeouts, and which heals into the same TCP connections if it ends in time.
//!
//! Each node gets a namespace `pacer-<tag>-<node>` with `lo` up and one end of a veth
//! pair (`pc<tag>n<index>`); the other end (`pc<tag>h<index>`) stays in the host's
//! namespace, and etcd listens on its address too. Cutting a node takes its host end
//! down: the veth then drops whatever the node sends. The node's end keeps a permanent
//! neighbour entry for the host end, so its kernel never asks ARP, never hears that no
//! one answers, and never turns the silence into "no route to host": new connections
//! hang in SYN_SENT and open ones retransmit until the cut heals.
//!
//! Only what this module creates is ever touched: namespaces and veth links carrying
//! the network's tag, and addresses from 198.18.0.0/15 (RFC 2544's benchmarking range,
//! never routed). Everything is removed on drop, a panicking test included; a test
//! killed outright (SIGKILL) leaves its namespaces in `ip netns list`. Needs root
//! (`available` says why not).

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

/// Where iproute2's `ip` usually lives; `PATH` is tried last (under `cargo test` it may
/// lack the sbin directories).
const IP_PATHS: [&str; 3] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip"];

/// Where `ip netns add` mounts a namespace (iproute2's `NETNS_RUN_DIR`, built as one or
/// the other; `/var/run` is usually a link to `/run`).
const NETNS_DIRS: [&str; 2] = ["/run/netns", "/var/run/netns"];

/// 198.18.0.0/15 holds 512 blocks of /24, one per network: the tag is the block's
/// number, so two networks with different tags never share an address, and claiming a
/// tag (see `Network::create`) claims the block.
const BLOCKS: u16 = 512;

/// A /24 holds 64 /30s, one per node.
const MAX_NODES: usize = 64;

/// Tags drawn before giving up; each is refused only while another network (or the
/// leftovers of a killed test) holds it.
const ATTEMPTS: usize = 32;

/// How long a healed link may take to carry packets again: the node's end follows its
/// carrier through the kernel's link watcher, which may wait up to a second.
const HEAL_LIMIT: Duration = Duration::from_secs(5);

/// A node's namespace and link.
#[derive(Debug)]
struct Node {
    name: String,
    namespace: String,
    host_link: String,
    node_link: String,
    host_address: Ipv4Addr,
    node_address: Ipv4Addr,
}

/// The namespaces of one cluster's nodes. Dropping it removes them; drop it after the
/// processes running in them have ended (a namespace with processes left in it lives
/// on, unnamed and cut off, until they exit).
#[derive(Debug)]
pub struct Network {
    tag: u16,
    nodes: Vec<Node>,
    // What was made, as soon as it was made, so a half-made network is undone too.
    namespaces: Vec<String>,
    links: Vec<String>,
}

impl Network {
    /// Makes a namespace and a veth pair for each node, both ends up. Node names become
    /// part of the namespace's name, so they are limited to ASCII letters, digits, `-`
    /// and `_`; at most 64 nodes.
    pub fn create(nodes: &[String]) -> anyhow::Result<Network> {
        Network::create_drawing(nodes, || rand::random_range(0..BLOCKS))
    }

    /// `create`, with the tags drawn by `draw` (tests narrow the draw to race for tags).
    fn create_drawing(nodes: &[String], mut draw: impl FnMut() -> u16) -> anyhow::Result<Network> {
        let Some(first) = nodes.first() else { bail!("create a network: no nodes") };
        if nodes.len() > MAX_NODES {
            bail!("create a network: {} nodes, at most {MAX_NODES}", nodes.len());
        }
        for (index, node) in nodes.iter().enumerate() {
            if node.is_empty() || node.len() > 64 || !node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                bail!("create a network: node name {node:?} is not 1 to 64 letters, digits, '-' or '_'");
            }
            if nodes[..index].contains(node) {
                bail!("create a network: node {node} named twice");
            }
        }
        for _ in 0..ATTEMPTS {
            let tag = draw() % BLOCKS;
            if tag_in_use(tag)? {
                continue;
            }
            let mut network = Network { tag, nodes: Vec::new(), namespaces: Vec::new(), links: Vec::new() };
            // Names are unique on the machine, and the kernel refuses a second link or
            // namespace of the same name, so whoever makes node 0's host link first owns
            // the tag: the check above only saves work, this is the claim. The loser
            // drops its half-made network, which removes only what it made.
            match network.add_node(0, first) {
                Ok(()) => {}
                Err(failure) if failure.already_exists() => continue,
                Err(failure) => return Err(failure.into()),
            }
            for (index, node) in nodes.iter().enumerate().skip(1) {
                network.add_node(index, node)?;
            }
            for node in &network.nodes {
                network.wait_up(node)?;
            }
            return Ok(network);
        }
        bail!("create a network: no free tag in {ATTEMPTS} draws (leftovers of killed tests in `ip netns list`?)")
    }

    fn add_node(&mut self, index: usize, name: &str) -> Result<(), IpFailure> {
        let namespace = format!("pacer-{}-{name}", tag_text(self.tag));
        let (host_link, node_link) = link_names(self.tag, index);
        let (host_address, node_address) = addresses(self.tag, index);
        let (host_mac, node_mac) = (mac(self.tag, index, true), mac(self.tag, index, false));
        run_ip(&["netns", "add", &namespace])?;
        self.namespaces.push(namespace.clone());
        run_ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
        // The peer is made inside the namespace, never in the host's.
        run_ip(&["link", "add", &host_link, "address", &host_mac, "type", "veth", "peer", "name", &node_link, "address", &node_mac, "netns", &namespace])?;
        self.links.push(host_link.clone());
        run_ip(&["addr", "add", &format!("{host_address}/30"), "dev", &host_link])?;
        run_ip(&["-n", &namespace, "addr", "add", &format!("{node_address}/30"), "dev", &node_link])?;
        // Survives the carrier going down (only taking the link itself down flushes
        // permanent entries, and the node's end is never taken down).
        run_ip(&["-n", &namespace, "neigh", "replace", &host_address.to_string(), "lladdr", &host_mac, "dev", &node_link, "nud", "permanent"])?;
        run_ip(&["link", "set", &host_link, "up"])?;
        run_ip(&["-n", &namespace, "link", "set", &node_link, "up"])?;
        self.nodes.push(Node { name: name.to_string(), namespace, host_link, node_link, host_address, node_address });
        Ok(())
    }

    fn node(&self, name: &str) -> anyhow::Result<&Node> {
        self.nodes.iter().find(|node| node.name == name).with_context(|| format!("no node {name} in network {}", tag_text(self.tag)))
    }

    /// The address of a node's link on the host's side: where the node reaches the
    /// host (the harness listens there with a `Link` to etcd).
    pub fn host_address(&self, node: &str) -> Option<Ipv4Addr> {
        self.nodes.iter().find(|entry| entry.name == node).map(|entry| entry.host_address)
    }

    /// The node's own address, the source of everything it sends to the host.
    pub fn node_address(&self, node: &str) -> Option<Ipv4Addr> {
        self.nodes.iter().find(|entry| entry.name == node).map(|entry| entry.node_address)
    }

    /// Cuts (true) or heals (false) a node's link: takes its host end down or up. Cut,
    /// the node's packets are dropped without a word to either side; healed, returns
    /// once both ends carry packets again. Checks the host end's state afterwards.
    pub fn set_cut(&self, node: &str, cut: bool) -> anyhow::Result<()> {
        let entry = self.node(node)?;
        run_ip(&["link", "set", &entry.host_link, if cut { "down" } else { "up" }])?;
        if cut {
            let (flags, _) = link_state(None, &entry.host_link)?;
            if flags.iter().any(|flag| flag == "UP") {
                bail!("cut {node}: link {} still up after `ip link set down`", entry.host_link);
            }
            Ok(())
        } else {
            self.wait_up(entry)
        }
    }

    /// Waits until both ends of a node's link are operationally up. The host end is up
    /// as soon as `ip link set up` returns, the node's end (which follows its carrier)
    /// only when the kernel's link watcher has run; until then it drops what it sends.
    fn wait_up(&self, node: &Node) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let (_, host_state) = link_state(None, &node.host_link)?;
            let (_, node_state) = link_state(Some(&node.namespace), &node.node_link)?;
            if host_state == "UP" && node_state == "UP" {
                return Ok(());
            }
            if started.elapsed() > HEAL_LIMIT {
                bail!("bring up the link of {}: after {HEAL_LIMIT:?} the host end is {host_state}, the node's end {node_state}", node.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Makes `command`'s child run in a node's namespace, as itself: the namespace is
    /// entered with setns(2) between fork and exec, so the child's PID is the program's
    /// own (the harness ends processes by PID; `ip netns exec` would be in between).
    /// Unlike `ip netns exec`, `/sys` and `/etc` stay the host's; Pacer's processes
    /// read neither for the network. Call it once per command: the last call wins.
    pub fn command_in(&self, node: &str, command: &mut Command) -> anyhow::Result<()> {
        let entry = self.node(node)?;
        // Opened here, before the fork, and kept by the closure until the command is
        // dropped; the child loses it at exec (std opens files close-on-exec).
        let namespace = open_namespace(&entry.namespace)?;
        // SAFETY: the closure runs in the child between fork and exec, where only
        // async-signal-safe calls are allowed: setns(2) is a plain system call,
        // `as_raw_fd` reads a field and `last_os_error` reads errno; nothing allocates
        // or takes a lock.
        unsafe {
            command.pre_exec(move || if libc::setns(namespace.as_raw_fd(), libc::CLONE_NEWNET) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) });
        }
        Ok(())
    }
}

impl Drop for Network {
    /// Deletes the host ends first: deleting one end of a veth pair deletes the other,
    /// at once, whereas a deleted namespace goes only when its last process exits.
    fn drop(&mut self) {
        for link in self.links.iter().rev() {
            match run_ip(&["link", "del", "dev", link]) {
                Err(failure) if !failure.stderr.contains("Cannot find device") => eprintln!("netns: {failure}"),
                _ => {}
            }
        }
        for namespace in self.namespaces.iter().rev() {
            if let Err(failure) = run_ip(&["netns", "del", namespace]) {
                eprintln!("netns: {failure}");
            }
        }
    }
}

/// Whether this machine lets a test make namespaces and veth pairs (root, iproute2,
/// the kernel's support), tried with a throwaway namespace; the reason when not, for
/// the caller to refuse with.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid(2) cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 {
        return Err(format!("network namespaces need root (running as uid {euid})"));
    }
    run_ip(&["-V"]).map_err(|failure| format!("iproute2's `ip` is needed: {failure}"))?;
    let probe = format!("pacer-probe-{}-{:04x}", std::process::id(), rand::random::<u16>());
    run_ip(&["netns", "add", &probe]).map_err(|failure| format!("cannot make a network namespace: {failure}"))?;
    let opened = open_namespace(&probe).map(drop).map_err(|error| format!("{error:#}"));
    // Inside the probe, so nothing of the host's is touched; goes with it.
    let veth = run_ip(&["-n", &probe, "link", "add", "probe0", "type", "veth", "peer", "name", "probe1"])
        .map_err(|failure| format!("cannot make a veth pair: {failure}"));
    let deleted = run_ip(&["netns", "del", &probe]).map_err(|failure| format!("cannot delete a network namespace: {failure}"));
    opened.and(veth).and(deleted).map(drop)
}

/// Whether a tag is held: a namespace or link with it, or an address in its block
/// (someone else's use of 198.18.0.0/15, say a VPN's fake addresses).
fn tag_in_use(tag: u16) -> anyhow::Result<bool> {
    let prefix = format!("pacer-{}-", tag_text(tag));
    let namespaces = ip_json(&["-j", "netns", "list"])?;
    if namespaces.iter().any(|entry| entry["name"].as_str().is_some_and(|name| name.starts_with(&prefix))) {
        return Ok(true);
    }
    let link_prefix = format!("pc{}", tag_text(tag));
    if ip_json(&["-j", "link", "show"])?.iter().any(|link| link["ifname"].as_str().is_some_and(|name| name.starts_with(&link_prefix))) {
        return Ok(true);
    }
    let (block, _) = addresses(tag, 0);
    let block = u32::from(block) & !0xff;
    let links = ip_json(&["-j", "-4", "addr", "show"])?;
    let mut local =
        links.iter().flat_map(|link| link["addr_info"].as_array().into_iter().flatten()).filter_map(|info| info["local"].as_str()?.parse::<Ipv4Addr>().ok());
    Ok(local.any(|address| u32::from(address) & !0xff == block))
}

fn tag_text(tag: u16) -> String {
    format!("{tag:03x}")
}

/// The host end's and the node's end's names: at most 15 bytes (the kernel's limit)
/// with any index below 64.
fn link_names(tag: u16, index: usize) -> (String, String) {
    (format!("pc{}h{index}", tag_text(tag)), format!("pc{}n{index}", tag_text(tag)))
}

/// The host end's and the node's end's addresses: `.1` and `.2` of the node's /30 in
/// the tag's /24.
fn addresses(tag: u16, index: usize) -> (Ipv4Addr, Ipv4Addr) {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0)) + u32::from(tag) * 256 + (index as u32) * 4;
    (Ipv4Addr::from(base + 1), Ipv4Addr::from(base + 2))
}

/// A locally administered unicast MAC address, chosen so that the neighbour entry can
/// be written without reading it back.
fn mac(tag: u16, index: usize, host: bool) -> String {
    let side = if host { 0x10 } else { 0x20 };
    format!("02:70:63:{:02x}:{:02x}:{:02x}", side | (tag >> 8), tag & 0xff, index)
}

fn open_namespace(namespace: &str) -> anyhow::Result<File> {
    let mut last = None;
    for dir in NETNS_DIRS {
        match File::open(format!("{dir}/{namespace}")) {
            Ok(file) => return Ok(file),
            Err(error) => last = Some(error),
        }
    }
    Err(anyhow::Error::from(last.unwrap_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))))
        .context(format!("open network namespace {namespace} in {NETNS_DIRS:?}"))
}

/// A link's flags (`UP`, `LOWER_UP`, ...) and operational state (`UP`, `DOWN`,
/// `LOWERLAYERDOWN`, ...), in the host's namespace or a named one.
fn link_state(namespace: Option<&str>, link: &str) -> anyhow::Result<(Vec<String>, String)> {
    let mut args = Vec::new();
    if let Some(namespace) = namespace {
        args.extend(["-n", namespace]);
    }
    args.extend(["-j", "link", "show", "dev", link]);
    let entries = ip_json(&args)?;
    let Some(entry) = entries.first() else { bail!("read link {link}: `ip link show` listed nothing") };
    let flags = entry["flags"].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_string).collect();
    Ok((flags, entry["operstate"].as_str().unwrap_or_default().to_string()))
}

/// A failed `ip` command, with what it wrote to stderr.
#[derive(Debug)]
struct IpFailure {
    command: String,
    stderr: String,
}

impl IpFailure {
    /// The kernel refused a name already taken (a namespace's or a link's).
    fn already_exists(&self) -> bool {
        self.stderr.contains("File exists")
    }
}

impl std::fmt::Display for IpFailure {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(formatter, "run `{}`: {}", self.command, self.stderr.trim())
    }
}

impl std::error::Error for IpFailure {}

fn ip_binary() -> &'static str {
    IP_PATHS.into_iter().find(|path| std::path::Path::new(path).exists()).unwrap_or("ip")
}

/// Runs `ip` and returns its stdout; its stderr is the error when it fails.
fn run_ip(args: &[&str]) -> Result<String, IpFailure> {
    let binary = ip_binary();
    let command = format!("ip {}", args.join(" "));
    let output = Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| IpFailure { command: command.clone(), stderr: format!("cannot run {binary}: {error}") })?;
    if !output.status.success() {
        return Err(IpFailure { command, stderr: format!("{} ({})", String::from_utf8_lossy(&output.stderr).trim(), output.status) });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip -j ...` and returns the array it prints (nothing printed: empty).
fn ip_json(args: &[&str]) -> anyhow::Result<Vec<Value>> {
    let output = run_ip(args)?;
    if output.trim().is_empty() {
        return Ok(Vec::new());
    }
    match serde_json::from_str(&output).with_context(|| format!("read the JSON of `ip {}`", args.join(" ")))? {
        Value::Array(entries) => Ok(entries),
        other => bail!("read the JSON of `ip {}`: not an array: {other}", args.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::os::unix::fs::MetadataExt;
    use std::process::{Child, ExitStatus};

    /// Whether to go on: namespaces can be made, or the test fails with the reason
    /// unless `PACER_E2E_NO_NETNS=1` says this machine is known not to allow them.
    fn netns_or_skip() -> bool {
        match available() {
            Ok(()) => true,
            Err(reason) if std::env::var("PACER_E2E_NO_NETNS").as_deref() == Ok("1") => {
                eprintln!("skipped (PACER_E2E_NO_NETNS=1): {reason}");
                false
            }
            Err(reason) => panic!("network namespaces unavailable: {reason} (PACER_E2E_NO_NETNS=1 skips)"),
        }
    }

    /// A child killed and reaped however the test ends, so no process keeps a
    /// namespace alive.
    struct Reaped(Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    /// Sends one line from a node to `target` with bash's /dev/tcp, giving up after
    /// `seconds` (exit status 124 from timeout(1): the connection hung).
    fn send_from(network: &Network, node: &str, target: SocketAddr, line: &str, seconds: u32) -> ExitStatus {
        let mut command = Command::new("timeout");
        command.args([seconds.to_string(), "bash".into(), "-c".into(), format!("echo {line} > /dev/tcp/{}/{}", target.ip(), target.port())]);
        network.command_in(node, &mut command).expect("enter the namespace");
        command.stdin(Stdio::null()).stderr(Stdio::null()).status().expect("run timeout bash")
    }

    /// The next connection's text, or `None` if none came within `limit`.
    fn receive(listener: &TcpListener, limit: Duration) -> Option<String> {
        listener.set_nonblocking(true).expect("non-blocking listener");
        let started = Instant::now();
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    stream.set_nonblocking(false).expect("blocking stream");
                    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("read timeout");
                    let mut text = String::new();
                    stream.read_to_string(&mut text).expect("read the connection");
                    return Some(text);
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock && started.elapsed() < limit => std::thread::sleep(Duration::from_millis(20)),
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return None,
                Err(error) => panic!("accept: {error}"),
            }
        }
    }

    fn names_left(network_namespaces: &[String], network_links: &[String]) -> Vec<String> {
        let namespaces = ip_json(&["-j", "netns", "list"]).expect("ip netns list");
        let links = ip_json(&["-j", "link", "show"]).expect("ip link show");
        let present: Vec<&str> = namespaces.iter().chain(&links).filter_map(|entry| entry["name"].as_str().or(entry["ifname"].as_str())).collect();
        network_namespaces.iter().chain(network_links).filter(|name| present.contains(&name.as_str())).cloned().collect()
    }

    #[test]
    fn names_and_addresses_fit_and_never_collide() {
        let mut seen = std::collections::BTreeSet::new();
        for tag in [0, 1, 0x0ff, 0x100, BLOCKS - 1] {
            for index in [0, 1, MAX_NODES - 1] {
                let (host_link, node_link) = link_names(tag, index);
                assert!(host_link.len() <= 15 && node_link.len() <= 15, "{host_link} {node_link}");
                let (host, node) = addresses(tag, index);
                for address in [host, node] {
                    assert_eq!(u32::from(address) >> 17, u32::from(Ipv4Addr::new(198, 18, 0, 0)) >> 17, "{address} outside 198.18.0.0/15");
                    assert!(seen.insert(address), "{address} given twice");
                }
                // Neither the /30's network nor its broadcast address.
                assert_eq!((u32::from(host) % 4, u32::from(node) % 4), (1, 2));
                assert_ne!(mac(tag, index, true), mac(tag, index, false));
            }
        }
        assert_eq!(addresses(BLOCKS - 1, MAX_NODES - 1).1, Ipv4Addr::new(198, 19, 255, 254));
    }

    #[test]
    fn a_cut_node_loses_its_packets_and_heals() {
        if !netns_or_skip() {
            return;
        }
        let network = Network::create(&["n1".to_string(), "n2".to_string()]).expect("create the network");
        let (namespaces, links) = (network.namespaces.clone(), network.links.clone());
        assert_eq!(namespaces.len(), 2);

        // The child is the program itself, in the node's namespace.
        let mut probe = Command::new("bash");
        probe.args(["-c", "echo $$ $(readlink /proc/self/ns/net)"]).stdout(Stdio::piped());
        network.command_in("n1", &mut probe).expect("enter n1");
        let child = probe.spawn().expect("spawn in n1");
        let pid = child.id();
        let output = child.wait_with_output().expect("wait for the probe");
        let inode = NETNS_DIRS.iter().find_map(|dir| std::fs::metadata(format!("{dir}/{}", namespaces[0])).ok()).expect("n1's namespace file").ino();
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("{pid} net:[{inode}]"));
        let own = std::fs::read_link("/proc/self/ns/net").expect("own namespace");
        assert_ne!(own.to_string_lossy(), format!("net:[{inode}]"));

        let host = network.host_address("n1").expect("n1's host address");
        let listener = TcpListener::bind((host, 0)).expect("listen on n1's host address");
        let target = listener.local_addr().expect("listener address");
        let other = TcpListener::bind((network.host_address("n2").expect("n2's host address"), 0)).expect("listen for n2");
        let other_target = other.local_addr().expect("listener address");

        assert!(send_from(&network, "n1", target, "before", 5).success());
        assert_eq!(receive(&listener, Duration::from_secs(5)).as_deref(), Some("before\n"));
        assert_ne!(network.node_address("n1"), network.node_address("n2"));

        // Cut: the attempt neither arrives nor fails (124: timeout ended it, where a
        // reset or "no route to host" would have made bash fail with 1), and n2 is
        // untouched.
        network.set_cut("n1", true).expect("cut n1");
        let status = send_from(&network, "n1", target, "during", 4);
        assert_eq!(status.code(), Some(124), "a connection from a cut node should hang, not fail: {status}");
        assert_eq!(receive(&listener, Duration::from_millis(200)), None);
        assert!(send_from(&network, "n2", other_target, "n2", 5).success());
        assert_eq!(receive(&other, Duration::from_secs(5)).as_deref(), Some("n2\n"));

        network.set_cut("n1", false).expect("heal n1");
        assert!(send_from(&network, "n1", target, "after", 5).success());
        assert_eq!(receive(&listener, Duration::from_secs(5)).as_deref(), Some("after\n"));

        // An open connection across a cut: nothing arrives, nothing is reset, and once
        // healed the retransmitted line gets through on the same connection.
        let mut reader = Command::new("bash");
        reader.args(["-c", &format!("exec 3<>/dev/tcp/{}/{}; read -r line <&3; echo \"got:$line\"", target.ip(), target.port())]).stdout(Stdio::piped());
        network.command_in("n1", &mut reader).expect("enter n1");
        let mut reader = Reaped(reader.spawn().expect("spawn the reader"));
        listener.set_nonblocking(false).expect("blocking listener");
        let (mut stream, _) = listener.accept().expect("accept the reader");
        network.set_cut("n1", true).expect("cut n1 again");
        stream.write_all(b"ping\n").expect("write into the cut");
        std::thread::sleep(Duration::from_millis(1500));
        assert!(matches!(reader.0.try_wait(), Ok(None)), "the reader ended while cut off");
        assert!(stream.take_error().expect("socket error").is_none());
        network.set_cut("n1", false).expect("heal n1 again");
        let started = Instant::now();
        while matches!(reader.0.try_wait(), Ok(None)) && started.elapsed() < Duration::from_secs(20) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut heard = String::new();
        reader.0.stdout.take().expect("reader's stdout").read_to_string(&mut heard).expect("read the reader");
        assert_eq!(heard.trim(), "got:ping", "the line sent across the cut after healing ({:?})", started.elapsed());
        drop(reader);

        drop(network);
        assert_eq!(names_left(&namespaces, &links), Vec::<String>::new());
    }

    #[test]
    fn networks_made_at_once_never_share_a_tag() {
        if !netns_or_skip() {
            return;
        }
        // Three networks racing for three tags: each must end up with its own.
        let base = rand::random_range(0..BLOCKS - 3);
        let racers: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(move || Network::create_drawing(&["r1".to_string(), "r2".to_string()], || base + rand::random_range(0..3))))
            .collect();
        let networks: Vec<Network> = racers.into_iter().map(|racer| racer.join().expect("racer panicked").expect("create a network")).collect();
        let tags: std::collections::BTreeSet<u16> = networks.iter().map(|network| network.tag).collect();
        assert_eq!(tags.len(), 3, "tags {:?}", networks.iter().map(|network| network.tag).collect::<Vec<_>>());
        let namespaces: Vec<String> = networks.iter().flat_map(|network| network.namespaces.clone()).collect();
        let links: Vec<String> = networks.iter().flat_map(|network| network.links.clone()).collect();
        assert_eq!((namespaces.len(), links.len()), (6, 6));
        drop(networks);
        assert_eq!(names_left(&namespaces, &links), Vec::<String>::new());
    }

    #[test]
    fn a_panicking_test_leaves_nothing_behind() {
        if !netns_or_skip() {
            return;
        }
        let made = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = made.clone();
        let outcome = std::thread::spawn(move || {
            let network = Network::create(&["p1".to_string()]).expect("create the network");
            if let Ok(mut slot) = slot.lock() {
                *slot = Some((network.namespaces.clone(), network.links.clone()));
            }
            panic!("a test failing with its network up (expected)");
        })
        .join();
        assert!(outcome.is_err());
        let made = made.lock().map(|made| made.clone()).unwrap_or_default();
        let Some((namespaces, links)) = made else { panic!("the network was never made") };
        assert_eq!((namespaces.len(), links.len()), (1, 1));
        assert_eq!(names_left(&namespaces, &links), Vec::<String>::new());
    }
}
