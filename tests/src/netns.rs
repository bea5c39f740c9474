//! Sites as network namespaces: each site a namespace of its own, joined to
//! the others by veth pairs (one per pair of sites, so that one inter-site link
//! can be cut alone), and to the test (the root namespace) by a management
//! veth that only the test's observations use: cutting "all of a site's links"
//! leaves it, as a monitoring network out of band would.
//!
//! Everything is created by the test with `ip` (iproute2; the test runs as
//! root) and deleted when the [`Net`] drops. Addresses are private /30s chosen
//! from the process id, so that tests running at once do not collide.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Whether network namespaces can be made here (root and iproute2).
pub fn available() -> bool {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let probe = format!("swprobe{}-{n}", std::process::id());
    let ok = ip(&["netns", "add", &probe]);
    if ok {
        ip(&["netns", "del", &probe]);
    }
    ok
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

fn must(args: &[&str]) {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

static NEXT: AtomicU32 = AtomicU32::new(0);

/// One veth pair between two sites.
#[derive(Debug, Clone)]
struct Link {
    a: String,
    b: String,
    dev_a: String,
    dev_b: String,
    addr_a: Ipv4Addr,
    addr_b: Ipv4Addr,
}

/// A set of sites.
#[derive(Debug)]
pub struct Net {
    tag: String,
    /// site -> (namespace, management address in the site, root-side address)
    sites: BTreeMap<String, (String, Ipv4Addr, Ipv4Addr)>,
    links: Vec<Link>,
    octet: u8,
}

impl Net {
    /// The sites, each in its own namespace with loopback and a management link.
    pub fn new(sites: &[&str]) -> Net {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = std::process::id().wrapping_mul(7).wrapping_add(n);
        let tag = format!("sw{}", id % 100_000);
        // Second octet per Net: 10.<octet>.x.y.
        let octet = u8::try_from(20 + id % 200).unwrap_or(20);
        let mut net = Net {
            tag,
            sites: BTreeMap::new(),
            links: Vec::new(),
            octet,
        };
        for (i, site) in sites.iter().enumerate() {
            let ns = format!("{}-{site}", net.tag);
            must(&["netns", "add", &ns]);
            must(&["-n", &ns, "link", "set", "lo", "up"]);
            let i = u8::try_from(i).unwrap_or(0);
            let root = Ipv4Addr::new(10, net.octet, 200 + i, 1);
            let inside = Ipv4Addr::new(10, net.octet, 200 + i, 2);
            let (r, s) = (format!("{}m{i}", net.tag), format!("{}m{i}s", net.tag));
            must(&["link", "add", &r, "type", "veth", "peer", "name", &s]);
            must(&["link", "set", &s, "netns", &ns]);
            must(&["addr", "add", &format!("{root}/30"), "dev", &r]);
            must(&["link", "set", &r, "up"]);
            must(&["-n", &ns, "addr", "add", &format!("{inside}/30"), "dev", &s]);
            must(&["-n", &ns, "link", "set", &s, "up"]);
            net.sites.insert((*site).to_owned(), (ns, inside, root));
        }
        net
    }

    /// Joins two sites by a link of their own; returns (a's address, b's address).
    pub fn join(&mut self, a: &str, b: &str) -> (Ipv4Addr, Ipv4Addr) {
        let k = u8::try_from(self.links.len()).unwrap_or(0);
        let addr_a = Ipv4Addr::new(10, self.octet, k, 1);
        let addr_b = Ipv4Addr::new(10, self.octet, k, 2);
        let (dev_a, dev_b) = (format!("{}l{k}a", self.tag), format!("{}l{k}b", self.tag));
        let (ns_a, ns_b) = (self.ns(a).to_owned(), self.ns(b).to_owned());
        must(&[
            "link", "add", &dev_a, "type", "veth", "peer", "name", &dev_b,
        ]);
        must(&["link", "set", &dev_a, "netns", &ns_a]);
        must(&["link", "set", &dev_b, "netns", &ns_b]);
        must(&[
            "-n",
            &ns_a,
            "addr",
            "add",
            &format!("{addr_a}/30"),
            "dev",
            &dev_a,
        ]);
        must(&[
            "-n",
            &ns_b,
            "addr",
            "add",
            &format!("{addr_b}/30"),
            "dev",
            &dev_b,
        ]);
        must(&["-n", &ns_a, "link", "set", &dev_a, "up"]);
        must(&["-n", &ns_b, "link", "set", &dev_b, "up"]);
        self.links.push(Link {
            a: a.to_owned(),
            b: b.to_owned(),
            dev_a,
            dev_b,
            addr_a,
            addr_b,
        });
        (addr_a, addr_b)
    }

    /// The namespace of a site.
    pub fn ns(&self, site: &str) -> &str {
        &self.sites[site].0
    }

    /// The site's management address (inside it): where the test reaches its
    /// HTTP endpoints.
    pub fn mgmt(&self, site: &str) -> Ipv4Addr {
        self.sites[site].1
    }

    /// The root side of the site's management link: how the site reaches the
    /// test's own peers (Alertmanager).
    pub fn mgmt_root(&self, site: &str) -> Ipv4Addr {
        self.sites[site].2
    }

    /// The address `site` has on its link to `other`.
    pub fn addr(&self, site: &str, other: &str) -> Ipv4Addr {
        for l in &self.links {
            if l.a == site && l.b == other {
                return l.addr_a;
            }
            if l.b == site && l.a == other {
                return l.addr_b;
            }
        }
        panic!("no link between {site} and {other}")
    }

    /// Brings the link between two sites down or up (both ends).
    pub fn set_link(&self, a: &str, b: &str, up: bool) {
        let state = if up { "up" } else { "down" };
        for l in &self.links {
            if (l.a == a && l.b == b) || (l.a == b && l.b == a) {
                must(&["-n", self.ns(&l.a), "link", "set", &l.dev_a, state]);
                must(&["-n", self.ns(&l.b), "link", "set", &l.dev_b, state]);
            }
        }
    }

    /// Brings every inter-site link of a site down or up (not its management link).
    pub fn set_site_links(&self, site: &str, up: bool) {
        for o in self.neighbours(site) {
            self.set_link(site, &o, up);
        }
    }

    fn neighbours(&self, site: &str) -> Vec<String> {
        self.links
            .iter()
            .filter_map(|l| {
                if l.a == site {
                    Some(l.b.clone())
                } else if l.b == site {
                    Some(l.a.clone())
                } else {
                    None
                }
            })
            .collect()
    }

    /// [`Net::set_link`] as a shell command, for an operator's `--fault-cmd`.
    pub fn link_cmd(&self, a: &str, b: &str, up: bool) -> String {
        let state = if up { "up" } else { "down" };
        let mut cmds = Vec::new();
        for l in &self.links {
            if (l.a == a && l.b == b) || (l.a == b && l.b == a) {
                cmds.push(format!(
                    "ip -n {} link set {} {state}",
                    self.ns(&l.a),
                    l.dev_a
                ));
                cmds.push(format!(
                    "ip -n {} link set {} {state}",
                    self.ns(&l.b),
                    l.dev_b
                ));
            }
        }
        cmds.join(" && ")
    }

    /// [`Net::set_site_links`] as a shell command.
    pub fn site_links_cmd(&self, site: &str, up: bool) -> String {
        self.neighbours(site)
            .iter()
            .map(|o| self.link_cmd(site, o, up))
            .collect::<Vec<_>>()
            .join(" && ")
    }

    /// A command run inside a site: `ip netns exec <ns> program`.
    pub fn command(&self, site: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(site)]).arg(program);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth ends in it, and their peers.
        for (ns, _, _) in self.sites.values() {
            ip(&["netns", "del", ns]);
        }
    }
}
