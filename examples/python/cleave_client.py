#!/usr/bin/env python3
"""A small cleave client written from docs/protocol.md alone, and checks of
the protocol against a running router (python3 cleave_client.py --help).
Needs Python 3 and msgpack (Debian: apt-get install python3-msgpack)."""
import argparse, base64, hashlib, os, random, socket, struct, sys, threading

import msgpack

OPS = dict(HELLO=1, MKDIR=2, PUT=3, GET=4, LIST=5, STAT=6, REMOVE=7, EXISTS=8, STATUS=9,
           TABLE=10, WRITE=11, APPEND=12, RENAME=13, COPY=14, CHUNK=15, COMMIT=16)
MUTATING = {"MKDIR", "PUT", "REMOVE", "WRITE", "APPEND", "RENAME", "COPY", "CHUNK", "COMMIT"}
CODES = ["OK", "NOT_FOUND", "EXISTS", "NOT_DIR", "IS_DIR", "NOT_EMPTY", "CROSS_ROOT", "CONFLICT",
         "INVALID", "TOO_LARGE", "UNAUTHORIZED", "FORBIDDEN", "NOT_LEADER", "WRONG_RANGE",
         "UNAVAILABLE", "TIMEOUT", "INTERNAL", "NO_SPACE"]
PARENTS, RECURSIVE, STALE, IF_ABSENT = 1, 2, 4, 8
RETRY = {"UNAVAILABLE", "TIMEOUT"}  # retried with the same (session, seq)


class CleaveError(Exception):
    def __init__(self, resp):
        self.code = CODES[resp["code"]] if resp["code"] < len(CODES) else str(resp["code"])
        self.resp = resp
        super().__init__("%s: %s" % (self.code, resp.get("msg", "")))


class ConnectionClosed(Exception):
    """The connection ended; `error` is the id-0 error frame the server sent first, if any."""
    def __init__(self, why, error=None):
        self.error = error
        super().__init__(why if error is None else "%s (server said %s: %s)" % (why, CODES[error["code"]], error.get("msg")))


def frame(msg):
    payload = msgpack.packb(msg, use_bin_type=True)
    return struct.pack(">I", len(payload)) + payload


def read_exact(sock, n):
    buf = bytearray()
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            return None
        buf += part
    return bytes(buf)


def read_frame(sock):
    """One response map, or None at a clean end of the stream."""
    head = read_exact(sock, 4)
    if head is None:
        return None
    body = read_exact(sock, struct.unpack(">I", head)[0])
    if body is None:
        raise ConnectionClosed("stream ended inside a frame")
    return msgpack.unpackb(body, raw=False)


class Conn:
    """One connection: HELLO, then many requests in flight, answers matched by id."""

    def __init__(self, addr, token="", client="python", timeout=30):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.settimeout(timeout)
        self.lock, self.wlock = threading.Lock(), threading.Lock()
        self.next_id, self.waiting, self.answers = 0, {}, {}
        self.arrivals = []  # ids in the order their answers arrived
        self.closed = None
        self.hello = self._hello(token, client)
        self.sock.settimeout(None)  # an idle connection is fine; wait() bounds each call
        threading.Thread(target=self._reader, daemon=True).start()

    def _hello(self, token, client):
        hello = {"version": 1, "client": client}
        if token:
            hello["token"] = token
        self.next_id = 1
        self.sock.sendall(frame({"id": 1, "op": OPS["HELLO"], "hello": hello}))
        resp = read_frame(self.sock)
        if resp is None:
            raise ConnectionClosed("closed during HELLO")
        if resp["code"] != 0:
            raise CleaveError(resp)
        return resp["hello"]

    def _reader(self):
        why, err = "closed by the server", None
        try:
            while True:
                resp = read_frame(self.sock)
                if resp is None:
                    break
                if resp["id"] == 0:  # connection-level: the server closes next
                    err = resp
                    continue
                with self.lock:
                    ev = self.waiting.pop(resp["id"], None)
                    self.answers[resp["id"]] = resp
                    self.arrivals.append(resp["id"])
                if ev:
                    ev.set()
        except (OSError, ConnectionClosed) as e:
            why = "read: %s" % e
        with self.lock:
            self.closed = ConnectionClosed(why, err)
            for ev in self.waiting.values():
                ev.set()
            self.waiting.clear()

    def send(self, req):
        """Sends req (a dict without id) and returns its id, without waiting."""
        with self.lock:
            if self.closed:
                raise self.closed
            self.next_id += 1
            req = dict(req, id=self.next_id)
            self.waiting[req["id"]] = threading.Event()
        with self.wlock:  # one frame at a time on the stream
            self.sock.sendall(frame(req))
        return req["id"]

    def wait(self, req_id, timeout=30):
        with self.lock:
            ev = self.waiting.get(req_id)
        if ev is not None and not ev.wait(timeout):
            raise TimeoutError("no answer to request %d within %ss" % (req_id, timeout))
        with self.lock:
            if req_id in self.answers:
                return self.answers.pop(req_id)
            raise self.closed or KeyError("request %d was not sent on this connection" % req_id)

    def call(self, op, **fields):
        resp = self.wait(self.send(dict(fields, op=OPS[op])))
        if resp["code"] != 0:
            raise CleaveError(resp)
        return resp

    def close(self):
        self.sock.close()


class Client:
    """Exactly-once mutations: every mutating request carries this client's session
    and its own seq, kept across retries (also on a new connection)."""

    def __init__(self, addr, token=""):
        self.addr, self.token = addr, token
        self.session = random.getrandbits(63) | 1
        self.seq = 0
        self.conn = Conn(addr, token)

    def next_seq(self):
        self.seq += 1
        return self.seq

    def call(self, op, attempts=5, **fields):
        if op in MUTATING and "seq" not in fields:
            fields.update(session=self.session, seq=self.next_seq())
        for attempt in range(attempts):
            try:
                return self.conn.call(op, **fields)
            except CleaveError as e:
                if e.code not in RETRY or attempt == attempts - 1:
                    raise
            except (ConnectionClosed, OSError):
                if attempt == attempts - 1:
                    raise
                self.conn = Conn(self.addr, self.token)

    def put_large(self, path, data, block=1 << 20, flags=0):
        """CHUNK pieces (pipelined), then COMMIT: the file appears whole or not at all."""
        pieces = [data[i:i + block] for i in range(0, len(data), block)] or [b""]
        ids = [self.conn.send({"op": OPS["CHUNK"], "path": path, "data": p, "session": self.session,
                               "seq": self.next_seq()}) for p in pieces]
        names = []
        for i in ids:
            resp = self.conn.wait(i)
            if resp["code"] != 0:
                raise CleaveError(resp)
            names.append(resp["chunk"])
        return self.call("COMMIT", path=path, chunks=names, size=len(data), flags=flags)["stat"]

    def get_all(self, path, step=1 << 20):
        """Reads a file in ranges of step bytes, checking it did not change meanwhile."""
        out, version = bytearray(), None
        while True:
            resp = self.call("GET", path=path, offset=len(out), length=step)
            st = resp["stat"]
            if version is not None and st["version"] != version:
                raise RuntimeError("%s changed while read" % path)
            version = st["version"]
            out += resp.get("data", b"")
            if len(out) >= st["size"] or not resp.get("data"):
                return bytes(out), st

    def list_all(self, path, limit=0, flags=0):
        """Every entry of a directory, page by page; returns (entries, pages)."""
        entries, after, pages = [], None, 0
        while True:
            fields = {"path": path, "flags": flags}
            if limit:
                fields["limit"] = limit
            if after:
                fields["after"] = after
            resp = self.call("LIST", **fields)
            pages += 1
            entries += resp.get("entries", [])
            after = resp.get("next")
            if not after:
                return entries, pages


def checksum(data, block=1 << 20):
    """stat.checksum of a file with these bytes and block size B (docs/protocol.md)."""
    if len(data) <= block:
        return "sha256:" + hashlib.sha256(data).hexdigest()
    total = 0
    for i in range(0, len(data), block):
        piece = data[i:i + block]
        if piece.count(0) == len(piece):
            continue  # all-zero blocks and holes add nothing
        inner = hashlib.sha256(piece).digest()
        total += int.from_bytes(hashlib.sha256(struct.pack(">Q", i // block) + inner).digest(), "big")
    a = (total % (1 << 256)).to_bytes(32, "big")
    return "sha256-sum:%d:%s" % (block, hashlib.sha256(struct.pack(">Q", len(data)) + a).hexdigest())
