#!/usr/bin/env python3
"""The serial load balancer design of the lab's usual solutions, kept to
measure against `dnslb udp-lb` (scripts/udp-hol.sh, docs/UDP.md). It is not
one of the lab's given programs.

One socket towards the servers, one datagram at a time: receive a client
datagram, send it to the next server in turn, wait up to 1 s for that
server's reply, relay it, and only then receive the next client datagram.
A lost datagram stalls every client for a second (head-of-line blocking).

Usage: SerialLB.py <port> <server ip> <server port> [<server ip> <server port> ...]
"""
import sys
from socket import AF_INET, SOCK_DGRAM, socket, timeout

port = int(sys.argv[1])
servers = [(sys.argv[i], int(sys.argv[i + 1])) for i in range(2, len(sys.argv), 2)]

front = socket(AF_INET, SOCK_DGRAM)
front.bind(("127.0.0.1", port))
host, bound = front.getsockname()
print(f"listening on {host}:{bound}", flush=True)

upstream = socket(AF_INET, SOCK_DGRAM)
upstream.settimeout(1)
turn = 0
while True:
    message, client = front.recvfrom(65535)
    upstream.sendto(message, servers[turn % len(servers)])
    turn += 1
    try:
        reply, _ = upstream.recvfrom(65535)
        front.sendto(reply, client)
    except timeout:
        pass
