#!/usr/bin/env python3
"""The host's end of a guest's TCP transfers, for tests/e2e/net-check and tools/bench-io: accept one
connection on a receiving socket and take SIZE bytes from it (timed from accept() to the last byte,
optionally hashed with sha256), then accept one on a sending socket and send DATA (timed from
accept() until the guest's TCP has acknowledged every byte and the FIN: the socket's send queue,
SIOCOUTQ, is empty).

tools/bench-io imports it (Peer, listen); net-check runs it as a command:
  net_peer.py ADDR RECV_PORT SEND_PORT FILE SUM_FILE
receives exactly 32 MiB on RECV_PORT (its sha256 goes to SUM_FILE, or "short"), then sends FILE on
SEND_PORT. Exits 0 when both transfers completed; gives up after 300 s without a connection or 120 s
without progress.
"""
import fcntl
import hashlib
import select
import socket
import struct
import sys
import threading
import time

MIB = 1 << 20
SIOCOUTQ = 0x5411  # <linux/sockios.h>: SIOCOUTQ == TIOCOUTQ, bytes not yet acknowledged by the peer
SLICE = 0.5  # seconds per select(): how soon `stop` is noticed


class PeerError(Exception):
    pass


def listen(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(1)
    return s


class Peer(threading.Thread):
    """One exchange: receive `size` bytes on `receiver`, then send `data` (default: `size` zero bytes)
    on `sender`. Afterwards: `received` (bytes), `sha256` (hex, with digest=True and all `size`
    bytes in), `seconds` ({"receive": s, "send": s} for what completed) and `error` (a sentence, or
    None). Stops early, quietly, when the event `stop` is set; fails after `accept_timeout` seconds
    without a connection or `io_timeout` without progress (None: no limit)."""

    def __init__(self, receiver, sender, size, data=None, digest=False, stop=None,
                 accept_timeout=None, io_timeout=None):
        super().__init__(daemon=True)
        self.receiver, self.sender, self.size = receiver, sender, size
        self.data = memoryview(data) if data is not None else None
        self.digest = hashlib.sha256() if digest else None
        self.stop = stop or threading.Event()
        self.accept_timeout, self.io_timeout = accept_timeout, io_timeout
        self.received, self.sha256, self.seconds, self.error = 0, None, {}, None

    def wait(self, sock, timeout, what, readable=True):
        """True once sock is readable (or writable); False when `stop` is set; PeerError after timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                raise PeerError(f"no {what} within {timeout:.0f} s")
            r, w, _ = select.select([sock] if readable else [], [] if readable else [sock], [], SLICE)
            if r or w:
                return True
        return False

    def accept(self, listener, what):
        if not self.wait(listener, self.accept_timeout, f"{what} connection"):
            return None
        conn, _ = listener.accept()
        conn.setblocking(True)
        return conn

    def receive(self):
        conn = self.accept(self.receiver, "guest→host")
        if conn is None:
            return False
        with conn:
            start = time.monotonic()
            view = memoryview(bytearray(MIB))
            while self.received < self.size:
                if not self.wait(conn, self.io_timeout, "guest→host data"):
                    return False
                n = conn.recv_into(view, min(MIB, self.size - self.received))
                if n == 0:
                    raise PeerError(f"guest→host: the guest closed the connection after {self.received} "
                                    f"of {self.size} bytes")
                if self.digest is not None:
                    self.digest.update(view[:n])
                self.received += n
            self.seconds["receive"] = time.monotonic() - start
        if self.digest is not None:
            self.sha256 = self.digest.hexdigest()
        return True

    def send(self):
        conn = self.accept(self.sender, "host→guest")
        if conn is None:
            return
        with conn:
            start = time.monotonic()
            data = self.data if self.data is not None else memoryview(bytes(min(MIB, self.size)))
            total = len(self.data) if self.data is not None else self.size
            sent = 0
            while sent < total:
                if not self.wait(conn, self.io_timeout, "room to send host→guest data", readable=False):
                    return
                offset = sent if self.data is not None else 0
                sent += conn.send(data[offset: offset + min(MIB, total - sent)])
            conn.shutdown(socket.SHUT_WR)
            outq = bytearray(4)
            deadline = None if self.io_timeout is None else time.monotonic() + self.io_timeout
            while True:
                fcntl.ioctl(conn.fileno(), SIOCOUTQ, outq)
                if struct.unpack("i", outq)[0] == 0:
                    break
                if self.stop.is_set():
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    raise PeerError(f"host→guest: the guest acknowledged no more data within {self.io_timeout:.0f} s")
                time.sleep(0.001)
            self.seconds["send"] = time.monotonic() - start

    def run(self):
        try:
            if self.receive():
                self.send()
        except PeerError as error:
            self.error = str(error)
        except OSError as error:
            self.error = f"host peer: {error}"


def main(argv):
    if len(argv) != 5:
        print("usage: net_peer.py ADDR RECV_PORT SEND_PORT FILE SUM_FILE", file=sys.stderr)
        return 2
    addr, recv_port, send_port, path, sum_file = argv[0], int(argv[1]), int(argv[2]), argv[3], argv[4]
    with open(path, "rb") as f:
        data = f.read()
    receiver, sender = listen(addr, recv_port), listen(addr, send_port)
    peer = Peer(receiver, sender, 32 * MIB, data=data, digest=True, accept_timeout=300, io_timeout=120)
    peer.run()
    print(f"received {peer.received} bytes", flush=True)
    with open(sum_file, "w") as f:
        f.write(peer.sha256 or "short")
    if "send" in peer.seconds:
        print(f"sent {len(data)} bytes", flush=True)
    if peer.error:
        print(f"net_peer: {peer.error}", file=sys.stderr, flush=True)
    return 0 if peer.sha256 and "send" in peer.seconds and not peer.error else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
