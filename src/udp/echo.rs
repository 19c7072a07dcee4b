//! The echo ("ping") server: upper-cases each datagram and sends it back to
//! its sender, except the ones its [`Dropper`] drops, like the course's
//! `UDPPingerServer`.
//!
//! One thread, one socket: datagrams are handled in arrival order, which is
//! what makes a seeded loss pattern reproducible.

use std::io;
use std::net::UdpSocket;

use crate::log;
use crate::net::datagram::{RECV_BUFFER, Received, recv_datagram, wake_on_trigger};
use crate::random::random_seed;
use crate::shutdown::Shutdown;
use crate::udp::loss::{Dropper, Loss};

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

/// Echoes datagrams on `socket` until `shutdown` triggers, then logs its
/// counters: `udp-echo: datagrams 11 = echoed 7 + dropped 4 (simulated
/// loss) + unsent 0`.
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
    let mut counts = Counts::default();
    let result = echo(&socket, &mut dropper, &mut buf, shutdown, &mut counts);
    let Counts {
        echoed,
        dropped,
        unsent,
    } = counts;
    log::warn(format_args!(
        "udp-echo: datagrams {} = echoed {echoed} + dropped {dropped} (simulated loss) + unsent {unsent}",
        echoed + dropped + unsent
    ));
    result
}

/// What happened to the datagrams received: echoed, dropped on purpose, or
/// unsent (the reply could not be sent).
#[derive(Default)]
struct Counts {
    echoed: u64,
    dropped: u64,
    unsent: u64,
}

/// The receive loop of [`run`].
fn echo(
    socket: &UdpSocket,
    dropper: &mut Dropper,
    buf: &mut [u8],
    shutdown: &Shutdown,
    counts: &mut Counts,
) -> io::Result<()> {
    while !shutdown.is_triggered() {
        let Received::Datagram(len, peer) = recv_datagram(socket, buf, "udp-echo")? else {
            continue;
        };
        if shutdown.is_triggered() {
            break;
        }
        // Drawn for every datagram, so the pattern depends only on arrival order.
        if dropper.drop_next() {
            counts.dropped += 1;
            log::info(format_args!(
                "udp-echo: {len} bytes from {peer}: dropped (simulated loss)"
            ));
            continue;
        }
        let reply = &mut buf[..len];
        reply.make_ascii_uppercase();
        match socket.send_to(reply, peer) {
            Ok(_) => {
                counts.echoed += 1;
                log::info(format_args!("udp-echo: {len} bytes from {peer}: echoed"));
            }
            Err(e) => {
                counts.unsent += 1;
                log::info(format_args!("udp-echo: cannot reply to {peer}: {e}"));
            }
        }
    }
    Ok(())
}
