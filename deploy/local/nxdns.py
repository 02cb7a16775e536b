"""The upstream DNS of engine.sh's namespace: it answers every question NXDOMAIN at once.

Docker's embedded DNS forwards names that are not containers (gRPC's TXT and SRV lookups of a service
name, say) upstream; with no upstream reachable from the namespace each such lookup waited 10 s, longer
than a Temporal client's dial. An isolated network's DNS knows no outside names, and says so.
Usage: python3 nxdns.py ADDRESS (port 53, UDP)."""
import socket
import sys

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[1], 53))
while True:
    query, peer = sock.recvfrom(4096)
    if len(query) < 12:
        continue
    # Same ID and question; QR=1, opcode and RD copied, RA=1, RCODE=3 (NXDOMAIN); no answer, authority
    # or additional records (an EDNS OPT record in the query is dropped with the rest after the question).
    flags = 0x8000 | (query[2] & 0x79) << 8 | 0x80 | 3
    qd_end = 12
    if int.from_bytes(query[4:6], "big") >= 1:
        i = 12
        while i < len(query) and query[i] != 0:
            i += query[i] + 1
        qd_end = min(i + 5, len(query))
    header = query[0:2] + flags.to_bytes(2, "big") + (b"\x00\x01" if qd_end > 12 else b"\x00\x00") + b"\x00" * 6
    sock.sendto(header + query[12:qd_end], peer)
