//! The LS running out of descriptors while it serves: every client gets its
//! answer or `- Error:SERVER BUSY`, and no TS is taken for down.
//!
//! The descriptor limit and the descriptor count belong to the whole
//! process, so the tests here run one at a time.

mod support;

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

use dnslb::ls::{FrontEnd, Ls, LsOptions};
use dnslb::server::open_descriptors;
use dnslb::shutdown::Shutdown;
use support::*;

/// Sets this process's soft descriptor limit; returns the previous one.
fn set_descriptor_limit(soft: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit on a valid, initialised struct.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        let previous = limit.rlim_cur;
        limit.rlim_cur = soft;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
        previous
    }
}

/// Held by each test: they count or limit the process's descriptors.
static ALONE: Mutex<()> = Mutex::new(());

#[test]
fn a_client_costs_the_descriptors_the_limit_is_fitted_with() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (ts1, ts2) = course_tses();
    let ls = start_ls_observed(&[ts1.addr, ts2.addr], ms(2000), |_| {});
    // A first client warms up what the LS keeps for its whole life.
    let mut first = LineClient::connect(ls.addr());
    assert_eq!(first.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    let before = open_descriptors().unwrap();
    let mut client = LineClient::connect(ls.addr());
    // Answers from both TSes: both links are up.
    assert_eq!(client.ask("amazon.org"), "amazon.org 94.5.6.7 A");
    assert_eq!(
        client.ask("www.princeton.edu"),
        "www.princeton.edu 128.1.1.4 A"
    );
    let after = open_descriptors().unwrap();
    // The test's own side of the connection: the socket and its reader's duplicate.
    let own = 2;
    assert_eq!(after - before - own, dnslb::ls::descriptors_per_client(2));
    drop((first, client));
}

#[test]
fn an_ls_out_of_descriptors_answers_or_says_busy_and_never_blames_a_ts() {
    let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
    let (ts1, ts2) = course_tses();
    let mut options = LsOptions::new(backends(&[ts1.addr, ts2.addr]));
    options.timeout = ms(2000);
    // Far more than the descriptors allow: the shortage comes at run time.
    options.max_clients = 1000;
    let ls = Arc::new(Ls::new(options).unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // The clients' own descriptors are taken before the limit is lowered:
    // they connect into the listen queue before the LS accepts any.
    let clients: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let open = open_descriptors().unwrap() as u64;
    // Room for about three clients (seven descriptors each) and the spare.
    let previous = set_descriptor_limit(open + 24);
    let shutdown = Shutdown::new();
    let server = {
        let (ls, shutdown) = (Arc::clone(&ls), shutdown.clone());
        thread::spawn(move || ls.run(vec![FrontEnd::Course(listener)], &shutdown).unwrap())
    };
    // Half ask a name TS1 holds, half one TS2 holds.
    const ASKED: [(&str, &str); 2] = [
        ("amazon.org", "amazon.org 94.5.6.7 A"),
        ("www.princeton.edu", "www.princeton.edu 128.1.1.4 A"),
    ];
    let asking: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(i, stream)| {
            let (name, right) = ASKED[i % 2];
            thread::spawn(move || {
                stream.set_read_timeout(Some(BOUND)).unwrap();
                if (&stream).write_all(format!("{name}\n").as_bytes()).is_err() {
                    return "reset".to_string();
                }
                let mut line = String::new();
                match BufReader::new(&stream).read_line(&mut line) {
                    Ok(0) => "closed without a word".to_string(),
                    Ok(_) if line.trim_end() == right => "right".to_string(),
                    Ok(_) => line.trim_end().to_string(),
                    Err(e) if e.kind() == ErrorKind::ConnectionReset => "reset".to_string(),
                    Err(e) => format!("no reply within {BOUND:?}: {e}"),
                }
            })
        })
        .collect();
    let got: Vec<String> = asking.into_iter().map(|t| t.join().unwrap()).collect();
    shutdown.trigger();
    server.join().unwrap();
    set_descriptor_limit(previous);
    let right = got.iter().filter(|l| *l == "right").count();
    let busy = got.iter().filter(|l| *l == "- Error:SERVER BUSY").count();
    eprintln!("out of descriptors, 100 clients at once: {right} right, {busy} busy");
    let others: Vec<&String> = got
        .iter()
        .filter(|l| *l != "right" && *l != "- Error:SERVER BUSY")
        .collect();
    assert!(others.is_empty(), "{others:?}");
    assert!(busy >= 1, "no shortage: {right} right");
    let counts = ls.snapshot();
    assert_eq!(counts.transitions, 0, "a TS was taken for down: {counts}");
    assert_eq!(counts.misses(), 0, "{counts}");
    // Every client was either accepted or refused; each busy line is a
    // refusal or a query the LS could not ask every TS for.
    assert_eq!(counts.accepted + counts.refused, 100, "{counts}");
    assert_eq!(counts.refused + counts.busy, busy as u64, "{counts}");
}
