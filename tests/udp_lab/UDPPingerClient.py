#!/usr/bin/env python3
"""Stand-in for the lab's UDPPingerClient, for dnslb's tests.

Behaves as the lab's given client: a UDP socket with a 1 s receive timeout
sends 10 pings, `PING <seq> <HH:MM:SS>` with seq from 1, one at a time, and
prints `Message Received <data>` and `Round Trip Time <seconds>` for whatever
datagram arrives next, or `REQUEST TIMED OUT`.

Usage: UDPPingerClient.py <server ip> <port>
"""
import sys
import time
from socket import AF_INET, SOCK_DGRAM, socket, timeout

serverName = sys.argv[1]
serverPort = int(sys.argv[2])

clientSocket = socket(AF_INET, SOCK_DGRAM)
clientSocket.settimeout(1)

for seq in range(1, 11):
    message = "PING " + str(seq) + " " + time.strftime("%H:%M:%S")
    start = time.time()
    clientSocket.sendto(message.encode(), (serverName, serverPort))
    try:
        data, server = clientSocket.recvfrom(1024)
        end = time.time()
        print("Message Received", data.decode())
        print("Round Trip Time", end - start)
    except timeout:
        print("REQUEST TIMED OUT")
    sys.stdout.flush()

clientSocket.close()
