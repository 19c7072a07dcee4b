#!/usr/bin/env python3
"""Stand-in for the lab's UDPPingerServer (servers 1-3), for dnslb's tests.

Behaves as the lab's given servers: binds all interfaces, upper-cases each
datagram and sends it back to its sender, except that a datagram is dropped
when randint(0, 10) < 4 (a 4-in-11 loss), drawn before each receive.

Differences, so tests can run anywhere: the port is an argument (the lab's
servers use fixed ports 2526, 2527, 2528; 0 picks a free port), an optional
seed makes the drop pattern repeatable, and the bound address is printed
first as `listening on <addr>:<port>`.

Usage: UDPPingerServer.py <port> [<seed>]
"""
import random
import sys
from socket import AF_INET, SOCK_DGRAM, socket

port = int(sys.argv[1]) if len(sys.argv) > 1 else 2526
if len(sys.argv) > 2:
    random.seed(int(sys.argv[2]))

serverSocket = socket(AF_INET, SOCK_DGRAM)
serverSocket.bind(("", port))
host, bound = serverSocket.getsockname()
print(f"listening on {host}:{bound}", flush=True)

while True:
    rand = random.randint(0, 10)
    message, address = serverSocket.recvfrom(1024)
    message = message.upper()
    if rand < 4:
        continue
    serverSocket.sendto(message, address)
