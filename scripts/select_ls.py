#!/usr/bin/env python3
"""The course report's LS design, as the baseline dnslb is compared with.

    python3 scripts/select_ls.py <port> <ts1Host> <ts1Port> <ts2Host> <ts2Port>
                                 [--timeout 5] [--bind 0.0.0.0] [--trace FILE]

One thread per client. Each client thread opens its own connection to both
TSes; for each query it sends the name to both, then waits with select() on
the two TS sockets, using what is left of the query's single deadline
(--timeout seconds, default 5) as select()'s timeout. The first reply line
whose name matches the query is relayed; when the deadline passes first, the
reply is `<name> - Error:HOST NOT FOUND`.

It speaks dnslb's line protocol (docs/PROTOCOL.md): newline-terminated
queries and replies; like a course LS it also takes a name sent bare (no
newline) once 0.2 s of quiet follows it. Each connection keeps a buffer, so several queries in one
recv() and replies split across recv()s are handled. TCP_NODELAY is on and
nothing sleeps: it is a faithful baseline, not a straw man. Replies that do
not match the name being asked (late answers to an earlier query) are
discarded, as in dnslb.

select() only takes descriptors below 1024 (FD_SETSIZE). Each client uses
three, so with more than about 340 clients connected at once the threads
whose sockets pass that limit fail; that is the design's limit, kept as is
(docs/COMPARISON.md).

Like the dnslb servers it prints `listening on <addr>:<port>` first, flushed.

With --trace FILE it writes each step of each query to FILE as dnslb's LS
does (docs/OBSERVE.md, "Traces"): one JSON object per line, `t_us` since it
started, `thread` `select-<n>` (the n-th client's thread), `query` (an id
unique in the process), `name`, and `event`: arrive, send and reply (with
`ts`: ts1, ts2 as given on the command line), settle (with `outcome`:
answer, timeout, failed when no TS connection is left, invalid for an
empty query), write. `dnslb trace FILE --svg OUT` draws it.
Python 3 standard library only.
"""

import argparse
import itertools
import json
import select
import socket
import sys
import threading
import time

# How long a name without newline must be followed by quiet to be a query
# (as dnslb's --framing auto waits).
BARE_QUIET = 0.2
RECV_SIZE = 4096


def key(name):
    """What names are matched by: lower case, without a final dot."""
    return name.lower().rstrip(b".")


class TsLink:
    """One client thread's connection to one TS, with its receive buffer."""

    def __init__(self, label, addr):
        self.label = label
        self.sock = socket.create_connection(addr, timeout=1)
        self.sock.settimeout(None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def take_lines(self):
        """The complete lines received so far, removed from the buffer."""
        *lines, self.buf = self.buf.split(b"\n")
        return lines


class Trace:
    """The --trace file: one JSON line per step of a query, written whole
    under a lock and flushed, so that a reader never sees half a line."""

    def __init__(self, path):
        self.file = open(path, "w", encoding="utf-8")
        self.start_ns = time.monotonic_ns()
        self.lock = threading.Lock()
        self.ids = itertools.count(1)

    def new_query(self):
        """An id for the next query, unique in the process."""
        with self.lock:
            return next(self.ids)

    def now_us(self):
        """Microseconds since the LS started."""
        return (time.monotonic_ns() - self.start_ns) // 1000

    def event(self, thread, query, name, event, t_us=None, **extra):
        """Writes one event, at `t_us` (default: now)."""
        if t_us is None:
            t_us = self.now_us()
        record = {"t_us": t_us, "thread": thread, "query": query,
                  "name": name.decode("utf-8", "replace"), "event": event}
        record.update(extra)
        line = json.dumps(record, separators=(",", ":")) + "\n"
        with self.lock:
            self.file.write(line)
            self.file.flush()


class QueryTrace:
    """One query's steps, on its client thread's name; does nothing when
    there is no --trace."""

    def __init__(self, trace, thread, name):
        self.trace, self.thread, self.name = trace, thread, name
        self.id = trace.new_query() if trace else None

    def __call__(self, event, **extra):
        if self.trace:
            self.trace.event(self.thread, self.id, self.name, event, **extra)


def matching_answer(lines, wanted):
    """The first `name ip A` line for the name `wanted`, or None."""
    for line in lines:
        fields = line.split()
        if len(fields) in (3, 4) and key(fields[0]) == wanted:
            return line.strip()
    return None


def resolve(name, links, timeout, step):
    """Sends `name` to every TS, then select()s until a matching answer or
    the deadline; returns the reply line for the client. `step` records
    what happens (a QueryTrace)."""
    wanted = key(name)
    # Leftover complete lines belong to earlier queries: discard them.
    for link in links:
        link.take_lines()
    live = []
    for link in links:
        try:
            link.sock.sendall(name + b"\n")
            step("send", ts=link.label)
            live.append(link)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while live:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            step("settle", outcome="timeout")
            break
        readable, _, _ = select.select([link.sock for link in live], [], [], remaining)
        if not readable:
            step("settle", outcome="timeout")
            break
        for link in live[:]:
            if link.sock not in readable:
                continue
            try:
                data = link.sock.recv(RECV_SIZE)
            except OSError:
                data = b""
            if not data:
                live.remove(link)
                links.remove(link)
                continue
            link.buf += data
            answer = matching_answer(link.take_lines(), wanted)
            if answer is not None:
                step("reply", ts=link.label)
                step("settle", outcome="answer", ts=link.label)
                return answer
    else:
        step("settle", outcome="failed")
    return name + b" - Error:HOST NOT FOUND"


def serve_client(conn, ts_addrs, timeout, trace=None, thread="select-0"):
    """One client: read query lines, answer each in order, until it closes.
    With a Trace, records each query's steps on the thread name `thread`."""
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = None
    if trace:
        try:
            peer = conn.getpeername()
            client = f"{peer[0]}:{peer[1]}"
        except OSError:
            client = "?"
    links = []
    for label, addr in ts_addrs:
        try:
            links.append(TsLink(label, addr))
        except OSError as e:
            print(f"select_ls: {label} {addr[0]}:{addr[1]} is unreachable: {e}",
                  file=sys.stderr, flush=True)
    buf = b""
    try:
        while True:
            data = conn.recv(RECV_SIZE)
            if not data:
                break
            # A query arrives when its last byte does, however long it
            # then waits in the buffer behind the ones before it.
            received_us = trace.now_us() if trace else None
            buf += data
            *queries, buf = buf.split(b"\n")
            if not queries and buf:
                # A course client sends each name bare (one send(), no
                # newline) and waits: a name followed by quiet is a query.
                ready, _, _ = select.select([conn], [], [], BARE_QUIET)
                if not ready:
                    queries, buf = [buf], b""
            for query in queries:
                name = query.strip()
                step = QueryTrace(trace, thread, name)
                step("arrive", t_us=received_us, frontend="course", client=client)
                if not name:
                    step("settle", outcome="invalid")
                    reply = b"- Error:EMPTY QUERY"
                else:
                    reply = resolve(name, links, timeout, step)
                # Recorded as the reply is handed to the socket, so that
                # the line is in the file before the client can read it.
                step("write")
                conn.sendall(reply + b"\n")
    except OSError:
        pass
    finally:
        for link in links:
            link.sock.close()
        conn.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int)
    parser.add_argument("ts1_host")
    parser.add_argument("ts1_port", type=int)
    parser.add_argument("ts2_host")
    parser.add_argument("ts2_port", type=int)
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="seconds a query waits for an answer (default 5)")
    parser.add_argument("--bind", default="0.0.0.0",
                        help="address to listen on (default 0.0.0.0)")
    parser.add_argument("--trace", metavar="FILE",
                        help="write each step of each query to FILE, one JSON object per line")
    args = parser.parse_args()
    ts_addrs = [("ts1", (args.ts1_host, args.ts1_port)),
                ("ts2", (args.ts2_host, args.ts2_port))]

    try:
        listener = socket.create_server((args.bind, args.port), backlog=socket.SOMAXCONN)
    except OSError as e:
        print(f"select_ls: cannot listen on {args.bind}:{args.port}: {e}", file=sys.stderr)
        sys.exit(2)
    trace = None
    if args.trace:
        try:
            trace = Trace(args.trace)
        except OSError as e:
            print(f"select_ls: --trace {args.trace}: cannot write it: {e}", file=sys.stderr)
            sys.exit(2)
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    clients = itertools.count(1)
    try:
        while True:
            conn, _ = listener.accept()
            if trace:
                thread = f"select-{next(clients)}"
                threading.Thread(target=serve_client, name=thread,
                                 args=(conn, ts_addrs, args.timeout, trace, thread),
                                 daemon=True).start()
            else:
                threading.Thread(target=serve_client, args=(conn, ts_addrs, args.timeout),
                                 daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
