//! The resolver against a hierarchy of zones answered as the TS answers
//! them (`ts::dns::answer_query`), without sockets: root, com and edu,
//! authoritative servers, and servers that fail or lie.

use std::collections::{HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use super::*;
use crate::dns::respond::Transport;
use crate::zone::Zone;

const ROOT: &str = "$ORIGIN .
$TTL 86400
@ SOA a.root. hostmaster.root. 1 2 3 4 3600
@ NS a.root.
a.root. A 127.0.0.1
com. NS ns.com.
ns.com. A 127.0.0.2
edu. NS ns.edu.
ns.edu. A 127.0.0.3
";

const COM: &str = "$ORIGIN com.
$TTL 86400
@ SOA ns.com. h.com. 1 2 3 4 600
@ NS ns.com.
ns A 127.0.0.2
example NS ns1.example.com.
example NS ns2.example.com.
ns1.example A 127.0.0.4
ns2.example A 127.0.0.6
hosting NS ns.hosting.com.
ns.hosting A 127.0.0.7
evil NS ns.evil.com.
ns.evil A 127.0.0.8
loop NS ns.loop.edu.
";

const EDU: &str = "$ORIGIN edu.
$TTL 86400
@ SOA ns.edu. h.edu. 1 2 3 4 600
@ NS ns.edu.
ns A 127.0.0.3
school NS ns.hosting.com.
loop NS ns.loop.com.
";

const EXAMPLE: &str = "$ORIGIN example.com.
$TTL 300
@ SOA ns1 h 1 2 3 4 60
@ NS ns1
@ NS ns2
ns1 A 127.0.0.4
ns2 A 127.0.0.6
www A 192.0.2.80
web CNAME www
course CNAME www.school.edu.
c1 CNAME c2
c2 CNAME c3
c3 CNAME c4
c4 CNAME c5
c5 CNAME c6
c6 CNAME c7
c7 CNAME c8
c8 CNAME c9
c9 CNAME c10
c10 A 192.0.2.99
";

const HOSTING: &str = "$ORIGIN hosting.com.
$TTL 300
@ SOA ns h 1 2 3 4 60
@ NS ns
ns A 127.0.0.7
";

const SCHOOL: &str = "$ORIGIN school.edu.
$TTL 300
@ SOA ns.hosting.com. h 1 2 3 4 60
@ NS ns.hosting.com.
www A 192.0.2.10
";

const EVIL: &str = "$ORIGIN evil.com.
$TTL 300
@ SOA ns h 1 2 3 4 60
@ NS ns
ns A 127.0.0.8
www A 203.0.113.66
";

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 53))
}

fn zone(texts: &[&str]) -> Zone {
    let mut zone = Zone::default();
    for text in texts {
        let file = crate::zonefile::parse(text.as_bytes()).unwrap();
        zone.add_file_zone(file.apex_key(), file.to_zone()).unwrap();
    }
    zone
}

/// The hierarchy: servers by address, some of which may be frozen.
struct Net {
    servers: HashMap<SocketAddr, Zone>,
    frozen: HashSet<SocketAddr>,
    /// Adds records to every answer of 127.0.0.8 (a poisoner).
    poison: Vec<Record>,
    asked: Vec<SocketAddr>,
}

impl Net {
    fn new() -> Net {
        let mut servers = HashMap::new();
        servers.insert(addr(1), zone(&[ROOT]));
        servers.insert(addr(2), zone(&[COM]));
        servers.insert(addr(3), zone(&[EDU]));
        servers.insert(addr(4), zone(&[EXAMPLE]));
        servers.insert(addr(6), zone(&[EXAMPLE]));
        servers.insert(addr(7), zone(&[HOSTING, SCHOOL]));
        servers.insert(addr(8), zone(&[EVIL]));
        Net {
            servers,
            frozen: HashSet::new(),
            poison: Vec::new(),
            asked: Vec::new(),
        }
    }

    fn answer(&self, query: &Query) -> Option<Vec<u8>> {
        if self.frozen.contains(&query.server) {
            return None;
        }
        let zone = self.servers.get(&query.server)?;
        let bytes = crate::ts::dns::answer_query(&query.bytes, zone, 300, Transport::Udp)?;
        if query.server != addr(8) || self.poison.is_empty() {
            return Some(bytes);
        }
        let mut m = Message::parse(&bytes).unwrap();
        m.answers.extend(self.poison.iter().cloned());
        m.additional.extend(self.poison.iter().cloned());
        Some(m.to_bytes(4096))
    }

    /// Resolves `name` `qtype` at `now` through `cache`.
    fn resolve(
        &mut self,
        cache: &mut Cache,
        now: Instant,
        name: &str,
        qtype: RecordType,
    ) -> Resolution {
        let config = Config {
            roots: vec![addr(1)],
            server_port: 53,
        };
        let question = Question {
            name: Name::from_ascii(name).unwrap(),
            qtype,
            qclass: CLASS_IN,
        };
        let mut resolver = Resolver::new(config, &question, 7);
        self.asked.clear();
        loop {
            match resolver.next(cache, now) {
                Step::Done(result) => return result,
                Step::Ask(query) => {
                    self.asked.push(query.server);
                    let reply = self.answer(&query);
                    if let Some(bytes) = &reply {
                        assert!(resolver.accepts(query.server, bytes));
                    }
                    resolver.reply(cache, now, reply.as_deref(), Duration::from_millis(500));
                }
            }
        }
    }
}

fn addresses(result: &Resolution) -> Vec<Ipv4Addr> {
    match result {
        Resolution::Answer(s) => s
            .answers
            .iter()
            .filter_map(|r| match r.data {
                RData::A(ip) => Some(ip),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn referrals_lead_from_the_root_to_the_answer() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(net.asked, [addr(1), addr(2), addr(4)]);
}

#[test]
fn a_second_name_in_a_known_zone_skips_the_root_and_the_tld() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    net.frozen.extend([addr(1), addr(2)]);
    let later = now + Duration::from_secs(10);
    let result = net.resolve(&mut cache, later, "web.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(net.asked, [addr(4)]);
    // The cached answer is served with its TTL counted down, asking no one.
    let result = net.resolve(
        &mut cache,
        later + Duration::from_secs(5),
        "www.example.com",
        RecordType::A,
    );
    assert!(net.asked.is_empty());
    let Resolution::Answer(s) = result else {
        panic!()
    };
    assert_eq!(s.answers[0].ttl, 295);
}

#[test]
fn a_frozen_root_leaves_cached_delegations_usable() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    net.frozen.insert(addr(1));
    let result = net.resolve(&mut cache, now, "ns.hosting.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(127, 0, 0, 7)]);
    // com's glue for ns.hosting.com answers it.
    assert_eq!(net.asked, [addr(2)]);
    // A TLD the cache does not know needs the root: SERVFAIL.
    let result = net.resolve(&mut cache, now, "www.school.edu", RecordType::A);
    assert_eq!(result, Resolution::ServFail);
}

#[test]
fn an_ns_without_glue_is_resolved_first() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "www.school.edu", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 10)]);
    // root, edu (a referral without glue), then root and com for
    // ns.hosting.com (com's glue), then school.edu's server.
    assert_eq!(net.asked, [addr(1), addr(3), addr(1), addr(2), addr(7)]);
}

#[test]
fn a_cname_into_another_tld_is_followed() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "course.example.com", RecordType::A);
    let Resolution::Answer(s) = &result else {
        panic!("{result:?}")
    };
    assert_eq!(s.answers[0].rtype, RecordType::CNAME);
    assert_eq!(s.answers[0].name.to_string(), "course.example.com.");
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 10)]);
}

#[test]
fn nxdomain_at_each_level_carries_that_zones_soa() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    for (name, apex, asked) in [
        ("nope.zz", ".", 1),
        ("nope.com", "com.", 2),
        // com's delegation is cached now: com, then example.com.
        ("nope.example.com", "example.com.", 2),
    ] {
        let result = net.resolve(&mut cache, now, name, RecordType::A);
        let Resolution::NxDomain { soa: Some(soa), .. } = result else {
            panic!("{name}: {result:?}")
        };
        assert_eq!(soa.name.to_string(), apex);
        assert_eq!(net.asked.len(), asked, "{name}");
    }
    // Cached: asked again, nobody is asked.
    let result = net.resolve(&mut cache, now, "nope.example.com", RecordType::A);
    assert!(matches!(result, Resolution::NxDomain { .. }));
    assert!(net.asked.is_empty());
}

#[test]
fn nodata_carries_the_soa() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "www.example.com", RecordType::MX);
    let Resolution::NoData { soa: Some(soa) } = result else {
        panic!("{result:?}")
    };
    assert_eq!(soa.name.to_string(), "example.com.");
}

#[test]
fn a_delegation_loop_ends_in_servfail() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "www.loop.com", RecordType::A);
    assert_eq!(result, Resolution::ServFail);
    assert!(net.asked.len() <= MAX_QUERIES as usize);
}

#[test]
fn too_many_cnames_end_in_servfail() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    assert_eq!(
        net.resolve(&mut cache, now, "c1.example.com", RecordType::A),
        Resolution::ServFail
    );
    let result = net.resolve(&mut cache, now, "c3.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 99)]);
}

#[test]
fn records_outside_the_senders_bailiwick_are_refused() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let target = Name::from_ascii("www.example.com").unwrap();
    net.poison = vec![
        Record::a(target.clone(), 86400, Ipv4Addr::new(6, 6, 6, 6)),
        Record::a(
            Name::from_ascii("ns1.example.com").unwrap(),
            86400,
            Ipv4Addr::new(6, 6, 6, 6),
        ),
    ];
    let result = net.resolve(&mut cache, now, "www.evil.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(203, 0, 113, 66)]);
    assert!(cache.get(now, &target, RecordType::A).is_none());
    let result = net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
}

#[test]
fn a_frozen_ns_is_left_for_the_next_and_backed_off() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    net.frozen.insert(addr(4));
    net.resolve(&mut cache, now, "ns2.example.com", RecordType::A);
    // Whichever example.com server came first, the answer came.
    let result = net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
    // 127.0.0.4 timed out at most once: it is backed off, asked last.
    let result = net.resolve(&mut cache, now, "web.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(net.asked, [addr(6)]);
}

#[test]
fn a_response_must_match_the_server_the_id_and_the_question() {
    let (net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let question = Question {
        name: Name::from_ascii("www.example.com").unwrap(),
        qtype: RecordType::A,
        qclass: CLASS_IN,
    };
    let config = Config {
        roots: vec![addr(1)],
        server_port: 53,
    };
    let mut resolver = Resolver::new(config, &question, 1);
    let Step::Ask(query) = resolver.next(&mut cache, now) else {
        panic!()
    };
    let good = net.answer(&query).unwrap();
    assert!(resolver.accepts(addr(1), &good));
    assert!(!resolver.accepts(addr(9), &good));
    let mut wrong_id = good.clone();
    wrong_id[0] ^= 0xff;
    assert!(!resolver.accepts(addr(1), &wrong_id));
    let mut other = Message::parse(&good).unwrap();
    other.questions[0].name = Name::from_ascii("www.evil.com").unwrap();
    assert!(!resolver.accepts(addr(1), &other.to_bytes(4096)));
    // A response that does not match is one the server did not give.
    resolver.reply(&mut cache, now, Some(&wrong_id), Duration::from_millis(500));
    assert!(matches!(
        resolver.next(&mut cache, now),
        Step::Done(Resolution::ServFail)
    ));
}

#[test]
fn a_server_that_refers_upward_is_lame() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    // The evil.com server claims to know nothing and to be the root.
    net.servers.insert(addr(8), zone(&[ROOT]));
    let result = net.resolve(&mut cache, now, "www.evil.com", RecordType::A);
    assert_eq!(result, Resolution::ServFail);
    assert_eq!(net.asked, [addr(1), addr(2), addr(8)]);
}

#[test]
fn any_gets_every_type_and_spoils_no_other() {
    let (mut net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let result = net.resolve(&mut cache, now, "example.com", RecordType::ANY);
    let Resolution::Answer(s) = &result else {
        panic!("{result:?}")
    };
    assert!(s.answers.iter().any(|r| r.rtype == RecordType::SOA));
    assert!(s.answers.iter().any(|r| r.rtype == RecordType::NS));
    let result = net.resolve(&mut cache, now, "www.example.com", RecordType::A);
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
}

#[test]
fn a_second_root_is_asked_when_the_first_is_silent() {
    let (net, mut cache, now) = (Net::new(), Cache::new(), Instant::now());
    let config = Config {
        roots: vec![addr(99), addr(1)],
        server_port: 53,
    };
    let question = Question {
        name: Name::from_ascii("www.example.com").unwrap(),
        qtype: RecordType::A,
        qclass: CLASS_IN,
    };
    let mut resolver = Resolver::new(config, &question, 3);
    let mut asked = Vec::new();
    let result = loop {
        match resolver.next(&mut cache, now) {
            Step::Done(result) => break result,
            Step::Ask(query) => {
                asked.push(query.server);
                let reply = net.answer(&query);
                resolver.reply(
                    &mut cache,
                    now,
                    reply.as_deref(),
                    Duration::from_millis(500),
                );
            }
        }
    };
    assert_eq!(addresses(&result), [Ipv4Addr::new(192, 0, 2, 80)]);
    assert_eq!(asked, [addr(99), addr(1), addr(2), addr(4)]);
    let notes = resolver.take_notes().join("\n");
    assert!(
        notes.contains("127.0.0.99:53: no answer in time, backed off"),
        "{notes}"
    );
}
