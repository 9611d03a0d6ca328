#!/usr/bin/env python3
"""stomp_probe: a tiny STOMP 1.2 client over WebSocket (stdlib only) for the
broker permission tests, speaking to RabbitMQ's web-STOMP at ws://HOST:PORT/ws.

  stomp_probe.py PORT CREDENTIALS_FILE subscribe DESTINATION [WAIT_S]
  stomp_probe.py PORT CREDENTIALS_FILE send DESTINATION

CREDENTIALS_FILE holds "user=" and "password=" lines (deploy/rabbitmq's
observer-credentials): the password is never on the command line. The
frame asks for a receipt. Prints "accepted" when the broker sends it,
"refused: <the ERROR frame's message header>", or "closed: <reason>" when
the broker closes the WebSocket instead: RabbitMQ 3.10's web-STOMP logs
"STOMP error frame sent" but closes the socket before the frame goes out
(rabbitmq/rabbitmq-server#6737), so a caller tells a refusal from another
failure by the broker's log. With WAIT_S, a subscription then waits for the
first MESSAGE and prints "message <its destination>" (exit 1 when none
comes within WAIT_S seconds).

Exit status: 0 accepted, 3 refused with an ERROR frame, 4 closed by the
broker before the receipt, 1 anything else.
"""
import base64
import hashlib
import os
import socket
import struct
import sys
import time

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    pass


class ClosedByBroker(Exception):
    pass


class WebSocket:
    def __init__(self, host, port, timeout):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(os.urandom(16))
        self.sock.sendall(
            b"GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v12.stomp\r\n\r\n"
            % (host.encode(), port, key))
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise Closed("connection closed during the WebSocket handshake")
            head += chunk
        head, self.buf = head.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        if b" 101 " not in lines[0] + b" ":
            raise Closed("handshake refused: %s" % lines[0].decode(errors="replace"))
        accept = base64.b64encode(hashlib.sha1(key + WS_GUID).digest())
        if not any(l.lower().startswith(b"sec-websocket-accept:") and l.split(b":", 1)[1].strip() == accept
                   for l in lines[1:]):
            raise Closed("bad Sec-WebSocket-Accept")

    def send(self, data, opcode=1):
        mask = os.urandom(4)
        n = len(data)
        if n < 126:
            head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self):
        """The payload of the next text or binary message."""
        payload = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            data = self._read(n)
            if mask:
                data = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
            opcode = b0 & 0x0F
            if opcode == 8:
                raise ClosedByBroker(data[2:].decode(errors="replace") or "no reason")
            if opcode == 9:
                self.send(data, opcode=10)
                continue
            if opcode == 10:
                continue
            payload += data
            if b0 & 0x80:
                return payload


def escape(v):
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r").replace(":", "\\c")


def frame(command, headers, body=""):
    return ("%s\n%s\n%s\0" % (command, "".join("%s:%s\n" % (k, escape(v)) for k, v in headers),
                               body)).encode()


class Stomp:
    def __init__(self, ws):
        self.ws = ws
        self.pending = b""

    def next_frame(self):
        """(command, headers) of the next STOMP frame (heart-beats skipped)."""
        while b"\0" not in self.pending:
            self.pending += self.ws.recv()
        raw, self.pending = self.pending.split(b"\0", 1)
        raw = raw.lstrip(b"\r\n")
        head = raw.split(b"\n\n", 1)[0].decode(errors="replace").split("\n")
        headers = {}
        for line in head[1:]:
            k, _, v = line.partition(":")
            headers.setdefault(k, v.replace("\\c", ":").replace("\\n", "\n").replace("\\\\", "\\"))
        return head[0].strip(), headers


def main(argv):
    if len(argv) not in (5, 6) or argv[3] not in ("subscribe", "send"):
        sys.stderr.write(__doc__)
        return 1
    port, cred_file, action, dest = int(argv[1]), argv[2], argv[3], argv[4]
    wait_s = float(argv[5]) if len(argv) == 6 else None
    creds = dict(l.rstrip("\n").split("=", 1) for l in open(cred_file) if "=" in l)
    try:
        ws = WebSocket("127.0.0.1", port, timeout=10)
        stomp = Stomp(ws)
        ws.send(frame("CONNECT", [("accept-version", "1.2"), ("host", "/"), ("heart-beat", "0,0"),
                                  ("login", creds["user"]), ("passcode", creds["password"])]))
        cmd, h = stomp.next_frame()
        if cmd != "CONNECTED":
            print("login failed: %s %s" % (cmd, h.get("message", "")))
            return 1
        if action == "subscribe":
            ws.send(frame("SUBSCRIBE", [("id", "sub-0"), ("destination", dest), ("ack", "auto"),
                                        ("receipt", "r-1")]))
        else:
            ws.send(frame("SEND", [("destination", dest), ("content-type", "application/json"),
                                   ("receipt", "r-1")], "{}"))
        cmd, h = stomp.next_frame()
        if cmd == "ERROR":
            print("refused: %s" % h.get("message", ""))
            return 3
        if cmd != "RECEIPT" or h.get("receipt-id") != "r-1":
            print("unexpected %s frame" % cmd)
            return 1
        print("accepted", flush=True)
        if wait_s is None:
            ws.send(frame("DISCONNECT", []))
            return 0
        deadline = time.monotonic() + wait_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout()
            ws.sock.settimeout(left)
            cmd, h = stomp.next_frame()
            if cmd == "MESSAGE":
                print("message %s" % h.get("destination", ""))
                return 0
            if cmd == "ERROR":
                print("refused: %s" % h.get("message", ""))
                return 3
    except ClosedByBroker as e:
        print("closed: %s" % e)
        return 4
    except socket.timeout:
        print("timed out")
        return 1
    except (OSError, Closed, KeyError) as e:
        print("failed: %s" % e)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
