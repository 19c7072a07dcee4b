//! The echo ("ping") server: upper-cases each datagram and sends it back to
//! its sender, except the ones its [`Dropper`] drops, like the course's
//! `UDPPingerServer`.
//!
//! One thread, one socket: datagrams are handled in arrival order, which is
//! what makes a seeded loss pattern reproducible.

use std::io;
use std::net::UdpSocket;

use crate::log;
use crate::random::random_seed;
use crate::shutdown::Shutdown;
use crate::udp::loss::{Dropper, Loss};
use crate::udp::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};

/// How an echo server behaves.
#[derive(Clone, Copy, Debug)]
pub struct EchoOptions {
    /// The fraction of datagrams dropped.
    pub loss: Loss,
    /// Fixes which datagrams are dropped; `None` picks a random seed.
    pub seed: Option<u64>,
}

impl Default for EchoOptions {
    /// The course servers' behaviour: 4 in 11 lost, random seed.
    fn default() -> Self {
        EchoOptions {
            loss: Loss::COURSE,
            seed: None,
        }
    }
}

/// Echoes datagrams on `socket` until `shutdown` triggers.
///
/// # Errors
/// When the socket's address cannot be read, or receiving fails for a
/// reason other than a timeout or an ICMP error about an earlier reply.
pub fn run(socket: UdpSocket, options: EchoOptions, shutdown: &Shutdown) -> io::Result<()> {
    let _wake = wake_on_trigger(&socket, shutdown)?;
    let seed = options.seed.unwrap_or_else(random_seed);
    let mut dropper = Dropper::new(options.loss, seed);
    log::info(format_args!(
        "udp-echo: dropping {} of datagrams (seed {seed})",
        options.loss
    ));
    let mut buf = vec![0; RECV_BUFFER];
    while !shutdown.is_triggered() {
        let Received::Datagram(len, peer) = recv_datagram(&socket, &mut buf, "udp-echo")? else {
            continue;
        };
        if shutdown.is_triggered() {
            break;
        }
        // Drawn for every datagram, so the pattern depends only on arrival order.
        if dropper.drop_next() {
            log::info(format_args!(
                "udp-echo: {len} bytes from {peer}: dropped (simulated loss)"
            ));
            continue;
        }
        let reply = &mut buf[..len];
        reply.make_ascii_uppercase();
        match socket.send_to(reply, peer) {
            Ok(_) => log::info(format_args!("udp-echo: {len} bytes from {peer}: echoed")),
            Err(e) => log::info(format_args!("udp-echo: cannot reply to {peer}: {e}")),
        }
    }
    Ok(())
}
