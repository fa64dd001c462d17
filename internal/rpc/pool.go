package rpc

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Pool keeps one live Conn per address, redialling a dead one on demand.
// After a failed dial it refuses to redial that address for a short backoff,
// failing fast instead. A connection on which no call was made for the
// config's IdleTimeout (default 5 minutes) is closed and redialled when next
// asked for, so a pooled call never races the server's own idle close
// (ServerConfig.IdleTimeout, default 15 minutes). Safe for concurrent use.
type Pool struct {
	cfg  DialConfig
	idle time.Duration

	mu    sync.Mutex
	conns map[string]*poolEntry
}

type poolEntry struct {
	mu      sync.Mutex // serialises dialling
	conn    *Conn
	lastErr error
	retryAt time.Time
	backoff time.Duration
}

// NewPool returns a pool that dials with cfg.
func NewPool(cfg DialConfig) *Pool {
	return &Pool{cfg: cfg, idle: cfg.withDefaults().IdleTimeout, conns: map[string]*poolEntry{}}
}

// Get returns a live connection to addr, dialling if needed.
func (p *Pool) Get(ctx context.Context, addr string) (*Conn, error) {
	p.mu.Lock()
	e := p.conns[addr]
	if e == nil {
		e = &poolEntry{}
		p.conns[addr] = e
	}
	p.mu.Unlock()

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil && e.conn.Err() == nil {
		if e.conn.idleFor() < p.idle {
			return e.conn, nil
		}
		e.conn.Close()
		e.conn = nil
	}
	if now := time.Now(); now.Before(e.retryAt) {
		return nil, fmt.Errorf("%w: %s: not redialling for %v after: %v", ErrConnClosed, addr, e.retryAt.Sub(now).Round(time.Millisecond), e.lastErr)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	c, err := Dial(dctx, addr, p.cfg)
	if err != nil {
		e.backoff = min(max(2*e.backoff, 20*time.Millisecond), 500*time.Millisecond)
		e.retryAt = time.Now().Add(e.backoff)
		e.lastErr = err
		return nil, err
	}
	e.conn, e.backoff, e.lastErr = c, 0, nil
	return c, nil
}

// Live returns the pool's connection to addr if it is up and not due to
// be redialled as idle, else nil. It never dials or waits: nil also while
// another caller is dialling addr.
func (p *Pool) Live(addr string) *Conn {
	p.mu.Lock()
	e := p.conns[addr]
	p.mu.Unlock()
	if e == nil || !e.mu.TryLock() {
		return nil
	}
	defer e.mu.Unlock()
	if c := e.conn; c != nil && c.Err() == nil && c.idleFor() < p.idle {
		return c
	}
	return nil
}

// Drop closes the connection to addr if it is c (so a newer one is kept).
func (p *Pool) Drop(addr string, c *Conn) {
	p.mu.Lock()
	e := p.conns[addr]
	p.mu.Unlock()
	if e == nil {
		return
	}
	e.mu.Lock()
	if e.conn == c {
		e.conn = nil
	}
	e.mu.Unlock()
	c.Close()
}

// Close closes every connection.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.conns {
		e.mu.Lock()
		if e.conn != nil {
			e.conn.Close()
		}
		e.mu.Unlock()
	}
	p.conns = map[string]*poolEntry{}
}
