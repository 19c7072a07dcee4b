#!/usr/bin/env python3
"""A course solution of the "load balancing across DNS servers" project, in
the select() design, as a stand-in for the course's own programs.

    python3 course.py ts <port> <table>
    python3 course.py ls <port> <ts1Host> <ts1Port> <ts2Host> <ts2Port> [<timeout>]
    python3 course.py client <lsHost> <lsPort> <input> <output>

It frames messages as the course programs do: each message is one bare
send() without newline, and each recv() is taken for one whole message.
Like the strictest of them, nothing it receives is stripped:

- ts: one recv(200) per query; the name received, exactly, is looked up
  (ignoring case) in the table, whose `name ip A` line is sent back bare.
  It stays silent on names it does not hold.
- ls: connects to both TSes first, then serves one client at a time: one
  recv(200) per query, forwarded as received to both TSes; the first reply
  select() finds within <timeout> seconds (default 5) is relayed as
  received, else `<name> - Error:HOST NOT FOUND`.
- client: each hostname of <input>, stripped, is sent bare; each reply is
  one recv(200), written to <output> followed by a newline.

The servers take port 0 and print `listening on <host>:<port>` first
(flushed); the TS serves each connection in a thread of its own. Python 3 standard library
only.
"""

import select
import socket
import sys
import threading


def listen(port):
    listener = socket.create_server(("127.0.0.1", int(port)))
    host, port = listener.getsockname()[:2]
    print(f"listening on {host}:{port}", flush=True)
    return listener


def serve(listener, handle):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def ts(port, table_path):
    table = {}
    with open(table_path) as f:
        for line in f:
            fields = line.split()
            if fields:
                table[fields[0].lower()] = line.strip()

    def handle(conn):
        while True:
            data = conn.recv(200)
            if not data:
                break
            answer = table.get(data.decode(errors="replace").lower())
            if answer is not None:
                conn.send(answer.encode())
        conn.close()

    serve(listen(port), handle)


def ls(port, ts1_host, ts1_port, ts2_host, ts2_port, timeout="5"):
    timeout = float(timeout)
    # Connected to both TSes first, as the course's LS is.
    tses = [socket.create_connection((ts1_host, int(ts1_port))),
            socket.create_connection((ts2_host, int(ts2_port)))]
    listener = listen(port)
    while True:
        conn, _ = listener.accept()
        while True:
            data = conn.recv(200)
            if not data:
                break
            for sock in tses:
                sock.send(data)
            readable, _, _ = select.select(tses, [], [], timeout)
            if readable:
                conn.send(readable[0].recv(200))
            else:
                conn.send(data + b" - Error:HOST NOT FOUND")
        conn.close()


def client(ls_host, ls_port, input_path, output_path):
    sock = socket.create_connection((ls_host, int(ls_port)))
    with open(input_path) as names, open(output_path, "w") as out:
        for line in names:
            name = line.strip()
            if not name:
                continue
            sock.send(name.encode())
            out.write(sock.recv(200).decode() + "\n")
    sock.close()


if __name__ == "__main__":
    roles = {"ts": ts, "ls": ls, "client": client}
    if len(sys.argv) < 2 or sys.argv[1] not in roles:
        sys.exit(__doc__)
    try:
        roles[sys.argv[1]](*sys.argv[2:])
    except KeyboardInterrupt:
        pass
