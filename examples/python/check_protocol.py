#!/usr/bin/env python3
"""Checks docs/protocol.md against a running router with the client in
cleave_client.py. Usage: python3 check_protocol.py --router HOST:PORT [--token T].
Prints one line per check and exits non-zero if any failed."""
import argparse, hashlib, os, socket, struct, sys

from cleave_client import (CODES, IF_ABSENT, OPS, PARENTS, RECURSIVE, CleaveError, Client, Conn,
                           checksum, frame, read_frame)


def expect(cond, what):
    if not cond:
        raise AssertionError(what)


def expect_code(code, fn, *words):
    """fn must fail with code, and its message must name each of words."""
    try:
        fn()
    except CleaveError as e:
        expect(e.code == code, "got %s, want %s" % (e, code))
        for w in words:
            expect(w in e.resp.get("msg", ""), "message %r does not name %r" % (e.resp.get("msg"), w))
        return e.resp
    raise AssertionError("succeeded, want %s" % code)


def raw(addr, hello=True, token=""):
    """A bare socket, after a successful HELLO (id 1) if hello."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=30)
    if hello:
        h = {"version": 1, "client": "raw"}
        if token:
            h["token"] = token
        s.sendall(frame({"id": 1, "op": OPS["HELLO"], "hello": h}))
        expect(read_frame(s)["code"] == 0, "HELLO refused")
    return s


def until_close(s):
    """Every frame until the server closes; a reset fails the check."""
    out = []
    while True:
        r = read_frame(s)
        if r is None:
            s.close()
            return out
        out.append(r)


class Checks:
    def __init__(self, addr, token):
        self.addr, self.token, self.failed, self.run = addr, token, 0, 0
        self.c = Client(addr, token)
        self.root = "/py-%s" % os.urandom(4).hex()
        self.other = self.root + "-other"

    def check(self, name, fn):
        self.run += 1
        try:
            note = fn()
            print("ok   %-28s %s" % (name, note or ""))
        except Exception as e:  # report every failure, keep going
            self.failed += 1
            print("FAIL %-28s %s: %s" % (name, type(e).__name__, e))

    def p(self, rel):
        return self.root + "/" + rel

    # HELLO and connection rules.
    def hello(self):
        h = self.c.conn.hello
        expect(h["server"] == "router" and h["version"] == 1 and 1 in h["versions"], "reply %r" % h)
        expect(h.get("max_frame", 0) >= 1024, "no max_frame in %r" % h)
        return "max_frame %d" % h["max_frame"]

    def hello_version(self):
        s = raw(self.addr, hello=False)
        s.sendall(frame({"id": 1, "op": 1, "hello": {"version": 99, "client": "x"}}))
        got = until_close(s)
        expect(len(got) == 1 and CODES[got[0]["code"]] == "INVALID" and "version 1" in got[0]["msg"], "got %r" % got)
        expect(got[0]["id"] == 1, "a refused HELLO carries its id, got %r" % got[0]["id"])

    def not_hello_first(self):
        s = raw(self.addr, hello=False)
        s.sendall(frame({"id": 5, "op": OPS["STAT"], "path": "/"}))
        got = until_close(s)
        expect(len(got) == 1 and got[0]["id"] == 5 and CODES[got[0]["code"]] == "INVALID", "got %r" % got)

    def wrong_token(self):
        s = raw(self.addr, hello=False)
        s.sendall(frame({"id": 1, "op": 1, "hello": {"version": 1, "client": "x", "token": "not-the-token"}}))
        got = until_close(s)
        expect(len(got) == 1 and CODES[got[0]["code"]] == "UNAUTHORIZED", "got %r" % got)

    def id_zero(self):
        s = raw(self.addr, token=self.token)
        s.sendall(frame({"id": 0, "op": OPS["STAT"], "path": "/"}))
        got = until_close(s)
        expect(len(got) == 1 and got[0]["id"] == 0 and CODES[got[0]["code"]] == "INVALID" and "id 0" in got[0]["msg"], "got %r" % got)

    def unknown_op(self):
        conn = Conn(self.addr, self.token)
        expect_code("INVALID", lambda: conn.call("HELLO", hello={"version": 1}), "HELLO")
        r = conn.wait(conn.send({"op": 99}))
        expect(CODES[r["code"]] == "INVALID", "op 99: %r" % r)
        expect(conn.call("EXISTS", path="/")["exists"], "connection unusable after INVALID")
        conn.close()

    def oversized_frame(self):
        limit = self.c.conn.hello.get("max_frame") or 8 << 20  # absent: the default
        s = raw(self.addr, token=self.token)
        s.sendall(struct.pack(">I", limit + (1 << 20)) + bytes(limit + (1 << 20)))
        got = until_close(s)
        expect(len(got) == 1 and got[0]["id"] == 0 and CODES[got[0]["code"]] == "TOO_LARGE", "got %r" % got)
        expect(str(limit) in got[0]["msg"], "message %r does not name the limit" % got[0]["msg"])

    # Files.
    def mkdir(self):
        st = self.c.call("MKDIR", path=self.p("d/e"), flags=PARENTS)["stat"]
        expect(st["type"] == 2 and st["name"] == "e", "stat %r" % st)
        self.c.call("MKDIR", path=self.other, flags=PARENTS)

    def put_get(self):
        st = self.c.call("PUT", path=self.p("hi"), data=b"hello")["stat"]
        expect(st["size"] == 5 and st["type"] == 1 and st["checksum"] == checksum(b"hello"), "stat %r" % st)
        r = self.c.call("GET", path=self.p("hi"))
        expect(r["data"] == b"hello" and r["stat"]["version"] == st["version"], "get %r" % r)

    def get_range(self):
        r = self.c.call("GET", path=self.p("hi"), offset=1, length=3)
        expect(r["data"] == b"ell", "range %r" % r.get("data"))
        r = self.c.call("GET", path=self.p("hi"), offset=9)
        expect(not r.get("data"), "past the end %r" % r.get("data"))

    def exists_stat(self):
        expect(self.c.call("EXISTS", path=self.p("hi")).get("exists") is True, "exists")
        expect(not self.c.call("EXISTS", path=self.p("nope")).get("exists"), "not exists (absent field is false)")
        st = self.c.call("STAT", path=self.p("d"))["stat"]
        expect(st["type"] == 2, "stat %r" % st)

    def write_sparse(self):
        st = self.c.call("WRITE", path=self.p("sparse"), offset=3 << 20, data=b"x")["stat"]
        want = bytes(3 << 20) + b"x"
        expect(st["size"] == len(want), "size %d" % st["size"])
        expect(st["checksum"] == checksum(want), "checksum %s, computed %s" % (st["checksum"], checksum(want)))
        data, _ = self.c.get_all(self.p("sparse"))
        expect(data == want, "bytes differ")

    def chunked_upload(self):
        data = os.urandom(3 << 20) + os.urandom(1 << 19)
        st = self.c.put_large(self.p("big"), data)
        expect(st["size"] == len(data), "size %d" % st["size"])
        expect(st["checksum"] == checksum(data), "checksum %s, computed %s" % (st["checksum"], checksum(data)))
        got, st2 = self.c.get_all(self.p("big"))
        expect(got == data and st2["checksum"] == st["checksum"], "downloaded bytes differ")
        return "%d bytes in 4 chunks, %s" % (len(data), st["checksum"][:24])

    def chunk_name(self):
        piece = b"some chunk"
        r = self.c.call("CHUNK", path=self.p("c"), data=piece)
        expect(r["chunk"] == "sha256:" + hashlib.sha256(piece).hexdigest(), "chunk %r" % r["chunk"])

    def commit_rules(self):
        missing = "sha256:" + hashlib.sha256(b"never uploaded").hexdigest()
        expect_code("NOT_FOUND", lambda: self.c.call("COMMIT", path=self.p("c"), chunks=[missing], size=14))
        name = self.c.call("CHUNK", path=self.p("c"), data=b"abc")["chunk"]
        expect_code("INVALID", lambda: self.c.call("COMMIT", path=self.p("c"), chunks=[name], size=4))
        expect_code("TOO_LARGE", lambda: self.c.call("CHUNK", path=self.p("c"), data=bytes((1 << 20) + 1)))

    def pipelining(self):
        conn, ids = self.c.conn, []
        start = len(conn.arrivals)
        ids.append(("big", conn.send({"op": OPS["GET"], "path": self.p("big"), "length": 3 << 20})))
        for i in range(30):
            ids.append(("hi", conn.send({"op": OPS["GET"], "path": self.p("hi")})))
        for kind, i in ids:
            r = conn.wait(i)
            expect(r["code"] == 0 and r["id"] == i, "answer %r to %d" % (r.get("msg"), i))
            expect(len(r["data"]) == (3 << 20 if kind == "big" else 5), "answer to %d is another's" % i)
        order = conn.arrivals[start:start + len(ids)]
        late = order.index(ids[0][1])
        return "31 requests in flight, each answer matched by id; the first one's answer arrived %s" % (
            "first" if late == 0 else "after %d later ones" % late)

    def paging(self):
        for i in range(25):
            self.c.call("PUT", path=self.p("many/f%02d" % i), data=b"x", flags=PARENTS)
        entries, pages = self.c.list_all(self.p("many"), limit=10)
        names = [e["name"] for e in entries]
        expect(names == ["f%02d" % i for i in range(25)] and pages == 3, "%d pages: %r" % (pages, names))

    def list_recursive(self):
        entries, _ = self.c.list_all(self.p("d"), flags=RECURSIVE)
        expect([e["name"] for e in entries] == ["e"], "entries %r" % entries)
        entries, _ = self.c.list_all(self.root, flags=RECURSIVE)
        expect("d/e" in [e["name"] for e in entries], "no d/e in %r" % [e["name"] for e in entries])

    def bad_after(self):
        expect_code("INVALID", lambda: self.c.call("LIST", path=self.root, after="!!not base64!!"))

    def rename_copy_remove(self):
        self.c.call("PUT", path=self.p("r1"), data=b"r")
        st = self.c.call("RENAME", path=self.p("r1"), to=self.p("r2"))["stat"]
        expect(st["name"] == "r2", "rename stat %r" % st)
        st = self.c.call("COPY", path=self.p("r2"), to=self.p("r3"))["stat"]
        expect(st["name"] == "r3" and st["size"] == 1, "copy stat %r" % st)
        self.c.call("REMOVE", path=self.p("r2"))
        expect(not self.c.call("EXISTS", path=self.p("r2")).get("exists"), "removed file exists")

    # Exactly-once.
    def append_once(self):
        seq = self.c.next_seq()
        a = self.c.call("APPEND", path=self.p("log"), data=b"ab", session=self.c.session, seq=seq)
        b = self.c.call("APPEND", path=self.p("log"), data=b"ab", session=self.c.session, seq=seq)
        expect(a["stat"] == b["stat"], "retry answered %r, first %r" % (b["stat"], a["stat"]))
        expect(self.c.call("GET", path=self.p("log"))["data"] == b"ab", "applied twice")

    def retry_new_connection(self):
        seq = self.c.next_seq()
        a = self.c.call("APPEND", path=self.p("log"), data=b"cd", session=self.c.session, seq=seq)
        other = Conn(self.addr, self.token)
        b = other.call("APPEND", path=self.p("log"), data=b"cd", session=self.c.session, seq=seq)
        other.close()
        expect(a["stat"] == b["stat"], "%r vs %r" % (a["stat"], b["stat"]))
        expect(self.c.call("GET", path=self.p("log"))["data"] == b"abcd", "applied twice")

    def failure_remembered(self):
        seq = self.c.next_seq()
        rm = lambda: self.c.call("REMOVE", path=self.p("later"), session=self.c.session, seq=seq)
        expect_code("NOT_FOUND", rm)
        self.c.call("PUT", path=self.p("later"), data=b"l")
        expect_code("NOT_FOUND", rm)  # the first result, not applied again
        expect(self.c.call("EXISTS", path=self.p("later")).get("exists"), "retried REMOVE applied")

    def stale_sequence(self):
        c = Client(self.addr, self.token)  # a session of its own
        ids = [c.conn.send({"op": OPS["PUT"], "path": self.p("window"), "data": b"w", "session": c.session,
                            "seq": c.next_seq()}) for _ in range(1030)]
        for i in ids:
            expect(c.conn.wait(i, timeout=120)["code"] == 0, "PUT %d failed" % i)
        expect_code("INVALID", lambda: c.call("PUT", path=self.p("window"), data=b"w", session=c.session, seq=1),
                    "stale sequence")
        c.conn.close()
        return "seq 1 forgotten after 1030 later ones"

    def seq_needs_session(self):
        conn = Conn(self.addr, self.token)  # HELLO's session is never applied to requests
        expect_code("INVALID", lambda: conn.call("APPEND", path=self.p("log"), data=b"zz", seq=1), "session")
        expect_code("INVALID", lambda: conn.call("APPEND", path=self.p("log"), data=b"zz", session=5), "seq")
        conn.close()
        expect(self.c.call("GET", path=self.p("log"))["data"] == b"abcd", "refused request applied")

    # Error codes: one check per code, each naming what the message must say.
    def error_cases(self):
        p = self.p
        return {
            "NOT_FOUND": (lambda: self.c.call("GET", path=p("nope")), p("nope")),
            "EXISTS": (lambda: self.c.call("MKDIR", path=p("d")),),
            "NOT_DIR": (lambda: self.c.call("STAT", path=p("hi/x")),),
            "IS_DIR": (lambda: self.c.call("PUT", path=p("d"), data=b"x"),),
            "NOT_EMPTY": (lambda: self.c.call("REMOVE", path=p("d")),),
            "CROSS_ROOT": (lambda: self.c.call("RENAME", path=p("hi"), to=self.other + "/hi"),),
            "CONFLICT": (lambda: self.c.call("PUT", path=p("hi"), data=b"x", flags=IF_ABSENT),),
            "CONFLICT if_version": (lambda: self.c.call("PUT", path=p("hi"), data=b"x", if_version=1),),
            "INVALID path": (lambda: self.c.call("STAT", path="/a//b"), "empty component"),
            "INVALID offset": (lambda: self.c.call("WRITE", path=p("hi"), offset=-1, data=b"x"),),
        }

    # Answers of the admin reads.
    def status(self):
        st = self.c.call("STATUS")["status"]
        expect(st["router"] and st["version"] >= 1 and len(st["routers"]) >= 1, "status %r" % st)
        for c in st["clusters"]:
            expect(c["id"] and "start" in c["range"] and c["nodes"], "cluster %r" % c)
            for n in c["nodes"]:
                expect(n["cluster"] == c["id"] and n["role"] and n["addr"], "node %r" % n)
        return "%d clusters" % len(st["clusters"])

    def table(self):
        t = self.c.call("TABLE")["routes"]
        ranges = t["ranges"]
        expect(ranges[0]["range"]["start"] == 0 and ranges[-1]["range"]["end"] == 0, "ring not covered")
        for a, b in zip(ranges, ranges[1:]):
            expect(a["range"]["end"] == b["range"]["start"], "gap between %r and %r" % (a, b))
        owners = {c["id"] for c in t["clusters"]}
        expect(all(r["cluster"] in owners for r in ranges), "unknown owner")
        expect(all(m["addr"] for c in t["clusters"] for m in c["members"]), "member without addr")

    def cleanup(self):
        for path in (self.root, self.other):
            self.c.call("REMOVE", path=path, flags=RECURSIVE)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--router", required=True, help="HOST:PORT of a router's client listener")
    ap.add_argument("--token", default=os.environ.get("CLEAVE_TOKEN", ""))
    args = ap.parse_args()
    ch = Checks(args.router, args.token)
    first = ("hello hello_version not_hello_first wrong_token id_zero unknown_op oversized_frame "
             "mkdir put_get get_range exists_stat write_sparse chunked_upload chunk_name commit_rules "
             "pipelining paging list_recursive bad_after rename_copy_remove append_once "
             "retry_new_connection failure_remembered stale_sequence seq_needs_session").split()
    for name in first:
        ch.check(name, getattr(ch, name))
    for name, (fn, *words) in ch.error_cases().items():
        code = name.split()[0]
        ch.check("error " + name, lambda: expect_code(code, fn, *words) and None)
    for name in ("status", "table", "cleanup"):
        ch.check(name, getattr(ch, name))
    print("%d checks, %d failed" % (ch.run, ch.failed))
    sys.exit(1 if ch.failed else 0)


if __name__ == "__main__":
    main()
