package testcluster

import (
	"net"
	"sync"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// Proxy is a TCP proxy that understands wire frames, placed between a
// client and a router to inject real network faults: it records every
// request that passes, can hold a request back (the router never sees it),
// and can deliver a request but cut the connection instead of relaying its
// response — the client then cannot know whether it was applied, which is
// what exactly-once retries are for. Safe for concurrent use.
type Proxy struct {
	// Addr is the address clients dial instead of the target.
	Addr string

	target string
	ln     net.Listener

	mu    sync.Mutex
	reqs  []wire.Request // Data stripped
	cut   func(*wire.Request) bool
	hold  func(*wire.Request) bool
	cuts  int
	conns map[net.Conn]bool
}

// NewProxy starts a proxy to target on 127.0.0.1:0; it is closed when the
// test ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testcluster: proxy: %v", err)
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]bool{}}
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Close stops accepting and breaks every proxied connection.
func (p *Proxy) Close() {
	p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
}

// Requests returns the requests seen so far (without their Data), in the
// order they reached the proxy.
func (p *Proxy) Requests() []wire.Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]wire.Request(nil), p.reqs...)
}

// CutResponseOnce arranges that the next request matching match is
// delivered to the target, and when its response comes back the client's
// connection is closed instead of relaying it. Only one request is cut.
func (p *Proxy) CutResponseOnce(match func(*wire.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = match
}

// Cuts returns how many responses were dropped by CutResponseOnce.
func (p *Proxy) Cuts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cuts
}

// Hold makes requests matching match stay in the proxy: they are recorded
// but never forwarded (nil: forward everything).
func (p *Proxy) Hold(match func(*wire.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hold = match
}

func (p *Proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.serve(c)
	}
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	p.track(client, true)
	p.track(server, true)
	closeBoth := func() {
		client.Close()
		server.Close()
		p.track(client, false)
		p.track(server, false)
	}
	defer closeBoth()

	var mu sync.Mutex
	cutIDs := map[uint64]bool{} // request ids whose response is dropped
	go func() {
		defer closeBoth()
		fr := wire.NewFrameReader(client, 0)
		for {
			payload, err := fr.Next()
			if err != nil {
				return
			}
			frame := wire.AppendFrame(nil, payload)
			req, err := wire.DecodeRequest(payload)
			if err == nil {
				r := *req
				r.Data = nil
				p.mu.Lock()
				p.reqs = append(p.reqs, r)
				held := p.hold != nil && p.hold(req)
				if p.cut != nil && p.cut(req) {
					p.cut = nil
					mu.Lock()
					cutIDs[req.ID] = true
					mu.Unlock()
				}
				p.mu.Unlock()
				if held {
					continue
				}
			}
			if _, err := server.Write(frame); err != nil {
				return
			}
		}
	}()
	fr := wire.NewFrameReader(server, 0)
	for {
		payload, err := fr.Next()
		if err != nil {
			return
		}
		if resp, err := wire.DecodeResponse(payload); err == nil {
			mu.Lock()
			cut := cutIDs[resp.ID]
			mu.Unlock()
			if cut {
				p.mu.Lock()
				p.cuts++
				p.mu.Unlock()
				return // applied, answer lost: close both sides
			}
		}
		if _, err := client.Write(wire.AppendFrame(nil, payload)); err != nil {
			return
		}
	}
}
