//! Every mix of a course solution's roles (tests/course_lab/course.py: bare
//! `send()`/`recv()` framing, select() LS) with dnslb's, each role with its
//! defaults, on the course sample: RESOLVED.txt must come out byte for byte
//! as data/example-RESOLVED.txt.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;

use support::*;

/// The LS timeout, in seconds, for both LSes: the sample's one miss waits it.
const TIMEOUT: &str = "1";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Role {
    Course,
    Dnslb,
}

use Role::{Course, Dnslb};

/// One way to mix the four roles.
#[derive(Clone, Copy, Debug)]
struct Mix {
    ts1: Role,
    ts2: Role,
    ls: Role,
    client: Role,
}

fn course_command(args: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/course_lab/course.py");
    let mut command = Command::new("python3");
    command.arg(script).args(args);
    command
}

fn path(p: &Path) -> &str {
    p.to_str().expect("paths here are UTF-8")
}

fn start_ts(role: Role, table: &str) -> Running {
    let table = data(table);
    match role {
        Course => spawn_server_command(course_command(&["ts", "0", path(&table)])),
        Dnslb => spawn_server_bin(&["ts", "0", "--bind", "127.0.0.1", "--table", path(&table)]),
    }
}

fn start_ls(role: Role, ts: [&Running; 2]) -> Running {
    let (p1, p2) = (ts[0].addr.port().to_string(), ts[1].addr.port().to_string());
    let pairs = ["127.0.0.1", p1.as_str(), "127.0.0.1", p2.as_str()];
    match role {
        Course => spawn_server_command(course_command(
            &[&["ls", "0"][..], &pairs, &[TIMEOUT]].concat(),
        )),
        Dnslb => spawn_server_bin(
            &[
                &["ls", "0", "--bind", "127.0.0.1", "--timeout", TIMEOUT][..],
                &pairs,
            ]
            .concat(),
        ),
    }
}

/// Runs the client in `dir` on the sample; returns what it wrote.
fn run_client(role: Role, ls: &Running, dir: &Path) -> Result<Vec<u8>, String> {
    let port = ls.addr.port().to_string();
    let input = data("PROJ2-HNS.txt");
    let output: PathBuf = dir.join("RESOLVED.txt");
    let ok = match role {
        Course => {
            let mut child = course_command(&[
                "client",
                "127.0.0.1",
                &port,
                path(&input),
                path(&output),
            ])
            .spawn()
            .map_err(|e| format!("cannot start the course client: {e}"))?;
            wait_bounded(&mut child, BOUND).success()
        }
        Dnslb => {
            let args = [
                "client",
                "127.0.0.1",
                &port,
                "--input",
                path(&input),
                "--output",
                path(&output),
            ];
            let (status, _, stderr) = run_bin(dir, &args);
            if !status.success() {
                return Err(format!("client failed: {stderr}"));
            }
            true
        }
    };
    if !ok {
        return Err("the course client failed".to_string());
    }
    std::fs::read(&output).map_err(|e| format!("no {}: {e}", output.display()))
}

/// Runs one mix; `Err` says what came out wrong.
fn run(mix: Mix) -> Result<(), String> {
    let ts1 = start_ts(mix.ts1, "PROJ2-DNSTS1.txt");
    let ts2 = start_ts(mix.ts2, "PROJ2-DNSTS2.txt");
    let ls = start_ls(mix.ls, [&ts1, &ts2]);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let resolved = run_client(mix.client, &ls, dir.path())?;
    let expected = std::fs::read(data("example-RESOLVED.txt")).expect("the sample's answer");
    if resolved == expected {
        Ok(())
    } else {
        Err(format!(
            "RESOLVED.txt is\n{}",
            String::from_utf8_lossy(&resolved)
        ))
    }
}

fn every_mix() -> Vec<Mix> {
    let role = |bit: u32, n: u32| if n & (1 << bit) == 0 { Course } else { Dnslb };
    (0..16)
        .map(|n| Mix {
            ts1: role(0, n),
            ts2: role(1, n),
            ls: role(2, n),
            client: role(3, n),
        })
        .collect()
}

/// Runs `mixes`, four at a time; returns the ones that failed, with why.
fn failures(mixes: &[Mix]) -> Vec<String> {
    let mut failed = Vec::new();
    for batch in mixes.chunks(4) {
        let runs: Vec<_> = batch
            .iter()
            .map(|&mix| (mix, thread::spawn(move || run(mix))))
            .collect();
        for (mix, handle) in runs {
            match handle.join() {
                Ok(Ok(())) => {}
                Ok(Err(why)) => failed.push(format!("{mix:?}: {why}")),
                Err(_) => failed.push(format!("{mix:?}: panicked")),
            }
        }
    }
    failed
}

#[test]
fn smoke() {
    let all_dnslb = Mix {
        ts1: Dnslb,
        ts2: Dnslb,
        ls: Dnslb,
        client: Dnslb,
    };
    assert_eq!(run(all_dnslb), Ok(()));
}

#[test]
fn every_mix_of_course_and_dnslb_roles_resolves_the_sample_with_defaults() {
    let failed = failures(&every_mix());
    assert!(failed.is_empty(), "{} of 16 mixes failed:\n{}", failed.len(), failed.join("\n"));
}
