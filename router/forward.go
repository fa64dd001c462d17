package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// Retry timing. A round is one try at every member of the cluster; between
// rounds the router waits minBackoff, doubling up to maxBackoff.
const (
	minBackoff = 10 * time.Millisecond
	maxBackoff = 200 * time.Millisecond
	// maxMargin is the most of the caller's deadline kept back for writing
	// the answer; a tenth of the deadline if that is less.
	maxMargin = 50 * time.Millisecond
	// wrongRangeTries is how many WRONG_RANGE answers a request takes before
	// the last one is returned to the caller.
	wrongRangeTries = 4
)

// route names the cluster a request goes to under table t; false if t has
// no such route.
type route func(t *wire.TableInfo) (cluster string, ok bool)

// targets appends to out the addresses to try for req in cluster c, best
// first, and returns it. A read any member may serve goes first to the
// member its path hashes to (replicas.go); everything else to the cached
// leader; then the other members in table order, those gossip says are
// dead last.
func (r *Router) targets(out []string, c wire.ClusterInfo, version uint64, req *wire.Request) []string {
	first := r.leader(c.ID)
	if !listed(c, first) {
		first = "" // cached before a membership change
	}
	if r.readAnywhere(req) {
		if a := r.replicas.pick(version, c, req.Path); a != "" && r.live.of(a) != "dead" {
			first = a
		}
	}
	if first != "" {
		out = append(out, first)
	}
	var dead []string
	for _, m := range c.Members {
		switch {
		case m.Addr == first:
		case r.live.of(m.Addr) == "dead":
			dead = append(dead, m.Addr)
		default:
			out = append(out, m.Addr)
		}
	}
	return append(out, dead...)
}

// nodeAddr returns where a node of c known by its client address addr
// serves op: addr itself, or for an op of the peer plane (membership, the
// split's fork and cleanup) the member's peer address in the table; addr
// when the table does not list it.
func nodeAddr(c wire.ClusterInfo, addr string, op wire.Op) string {
	if wire.NodePlane(op, wire.ClientPlane) {
		return addr
	}
	for _, m := range c.Members {
		if m.Addr == addr {
			return m.Peer()
		}
	}
	return addr
}

// attempt is the result of one try at one node.
type attempt struct {
	resp *wire.Response // nil on a transport failure
	err  error
	sent bool // the request may have reached the node (outcome unknown on err)
	// inFlight: the try ran out of time with the call still pending on a
	// live connection to a node gossip does not call dead; trying the node
	// again waits for that call instead of sending the request again.
	inFlight bool
}

// calls are one forwarded request's calls still awaiting their answers,
// by node address: the node is slow, not gone, and sending it the request
// again would only add work.
type calls map[string]*rpc.Pending

// abandon gives up every call still pending.
func (cs calls) abandon() {
	for _, p := range cs {
		p.Abandon()
	}
}

// forward sends req to the cluster chosen by rt and retries until a node
// gives a definite answer or the caller's deadline (less a margin) passes.
// What to do after each answer is the retry policy, retryState.next
// (policy.go); forward performs it: route, pick a node, try it, act.
//
// When time runs out the answer is TIMEOUT if some try may have reached a
// node (the outcome is unknown), else UNAVAILABLE; both name the cluster and
// the last error.
func (r *Router) forward(ctx context.Context, req *wire.Request, rt route) *wire.Response {
	start := time.Now()
	dl, ok := ctx.Deadline()
	f := newForwarding(ctx, deadline(start, dl, ok, r.cfg.DefaultTimeout))
	defer f.release()

	_, refreshes := r.table.(control.Refresher)
	st := newRetryState(retriable(req), req.Op.Mutating(), refreshes, r.cfg.AttemptTimeout)
	var (
		cluster string
		tried   = map[string]bool{} // addresses tried this round
		hint    string              // a hinted leader to try before the rest
		pending = calls{}
	)
	defer pending.abandon()
	for {
		t := r.table.Current()
		c, resp := r.routeTo(t, req, rt)
		if resp != nil {
			return resp
		}
		if c.ID != cluster {
			cluster = c.ID
			clear(tried)
			hint = ""
		}
		addr := r.pick(c, t.Version, req, tried, hint)
		a := answer{roundDone: addr == "", addr: addr, version: t.Version}
		if addr != "" {
			tried[addr] = true
			at := r.try(f, nodeAddr(c, addr, req.Op), req, t.Version, pending)
			a.resp, a.err, a.sent, a.inFlight, a.expired = at.resp, at.err, at.sent, at.inFlight, f.expired()
			if a.resp != nil {
				a.hintTried = tried[a.resp.Leader]
			}
		}
		d := st.next(a)
		if d.lead != "" && d.lead != addr && !r.acceptLeader(c.ID, d.lead, "not_leader") {
			d.lead, d.hint = "", ""
		}
		if d.forget {
			r.forgetLeader(c.ID, addr)
		}
		if d.lead != "" {
			r.setLeader(c.ID, d.lead)
		}
		hint = d.hint
		switch d.act {
		case actTry:
			if a.err != nil {
				r.log.Debug("forward: try failed", "cluster", c.ID, "addr", addr, "op", req.Op.String(), "err", a.err)
			}
		case actRound, actAwaitTable:
			if !r.backOff(f.context(), d) {
				return r.gaveUp(req, cluster, start, &st)
			}
			clear(tried)
		case actAnswer:
			return a.resp
		case actMisrouted:
			a.resp.Message = fmt.Sprintf("cluster %s does not own %s (routing table version %d, node's %d): %s", c.ID, req.Path, t.Version, a.resp.Table, a.resp.Message)
			return a.resp
		case actNotRetried:
			err := a.err
			if err == nil {
				err = a.resp.Err()
			}
			return notRetried(req, c.ID, addr, err)
		case actGiveUp:
			return r.gaveUp(req, cluster, start, &st)
		}
	}
}

// forwarding is the time of one forwarded request: the caller's ctx, the
// request's own deadline (the caller's less a margin) and one timer that
// bounds each try. It stands for context.WithDeadline(ctx, end) without
// building one on the common path, where a request is answered at the
// first try: a context per request and per try was a tenth of a busy
// router's CPU (registering each child with its parent).
type forwarding struct {
	parent context.Context
	end    time.Time
	timer  *time.Timer // nil until the first try needs it; from timers

	ctx    context.Context // WithDeadline(parent, end), built on first use
	cancel context.CancelFunc
}

// timers holds stopped timers between forwarded requests.
var timers sync.Pool

func newForwarding(parent context.Context, end time.Time) *forwarding {
	return &forwarding{parent: parent, end: end}
}

// expired reports what ctx.Err() != nil reports of the deadline context:
// the caller's ctx ended or the request's deadline passed.
func (f *forwarding) expired() bool {
	return f.parent.Err() != nil || !time.Now().Before(f.end)
}

// context returns the request's deadline context, for the steps off the
// common path (dialling, refreshing the table, backing off).
func (f *forwarding) context() context.Context {
	if f.ctx == nil {
		f.ctx, f.cancel = context.WithDeadline(f.parent, f.end)
	}
	return f.ctx
}

// attempt arms the timer for one try of at most d and returns its channel
// and the try's deadline; the channel delivers when the try's time is up
// (d, or the request's deadline if sooner).
func (f *forwarding) attempt(d time.Duration) (<-chan time.Time, time.Time) {
	now := time.Now()
	end := now.Add(d)
	if f.end.Before(end) {
		end = f.end
	}
	wait := max(end.Sub(now), 0)
	if f.timer == nil {
		if t, ok := timers.Get().(*time.Timer); ok {
			f.timer = t
			f.timer.Reset(wait)
		} else {
			f.timer = time.NewTimer(wait)
		}
	} else {
		f.timer.Reset(wait) // since Go 1.23 no stale value is delivered after Reset
	}
	return f.timer.C, end
}

// remainingMs is the request's time left in milliseconds, at least 1.
func (f *forwarding) remainingMs() uint32 {
	return uint32(min(max(time.Until(f.end).Milliseconds(), 1), 1<<31))
}

// release stops the timer for reuse and cancels the deadline context.
func (f *forwarding) release() {
	if f.timer != nil {
		f.timer.Stop()
		timers.Put(f.timer)
		f.timer = nil
	}
	if f.cancel != nil {
		f.cancel()
	}
}

// routeTo returns the cluster rt gives req under table t, or the answer
// when t has no such route.
func (r *Router) routeTo(t *wire.TableInfo, req *wire.Request, rt route) (wire.ClusterInfo, *wire.Response) {
	cid, ok := rt(t)
	if !ok {
		return wire.ClusterInfo{}, wire.Errorf(req.ID, wire.Unavailable, "no route for %s in routing table version %d", req.Path, t.Version)
	}
	c, ok := control.Cluster(t, cid)
	if !ok {
		return wire.ClusterInfo{}, wire.Errorf(req.ID, wire.Unavailable, "cluster %s is not in routing table version %d", cid, t.Version)
	}
	return c, nil
}

// pick returns the address to try next: the hint, else the best target not
// tried this round, else "" (the round is over).
func (r *Router) pick(c wire.ClusterInfo, version uint64, req *wire.Request, tried map[string]bool, hint string) string {
	if hint != "" {
		return hint
	}
	var buf [8]string // a cluster's members fit: no allocation per request
	for _, a := range r.targets(buf[:0], c, version, req) {
		if !tried[a] {
			return a
		}
	}
	return ""
}

// backOff performs a wait decision: the table refresh it asks for, then
// the wait. False if forward must give up: the wait was cut short, or,
// after a WRONG_RANGE, the deadline passed meanwhile.
func (r *Router) backOff(ctx context.Context, d decision) bool {
	if rf, ok := r.table.(control.Refresher); ok && d.refresh != 0 {
		if err := rf.Refresh(ctx, d.refresh); err != nil {
			r.log.Debug("forward: refresh table", "seen", d.refresh, "err", err)
		}
	}
	if !r.wait(ctx, d.wait) {
		return false
	}
	return d.act != actAwaitTable || ctx.Err() == nil
}

// gaveUp is forward's answer when the deadline passed.
func (r *Router) gaveUp(req *wire.Request, cluster string, start time.Time, st *retryState) *wire.Response {
	return wire.Errorf(req.ID, st.code(), "cluster %s: no answer for %v %s within %v (%d tries); last error: %s",
		cluster, req.Op, req.Path, time.Since(start).Round(time.Millisecond), st.tries, st.lastError())
}

// retriable reports whether req may be sent again after an attempt whose
// outcome is unknown: a read; a mutation with a session (the cluster
// applies a (session, seq) once); or one that sets state to what the
// request names, so that applying it twice is applying it once — CHUNK
// (content-addressed), PUT, WRITE, COMMIT and MKDIR -p, without a
// precondition (a retry of an applied IF_ABSENT or IF_VERSION write would
// answer CONFLICT). APPEND, RENAME, REMOVE and COPY without a session are
// not retried.
func retriable(req *wire.Request) bool {
	if !req.Op.Mutating() || req.Session != 0 {
		return true
	}
	if req.IfVersion != 0 || req.Flags&wire.FlagIfAbsent != 0 {
		return false
	}
	switch req.Op {
	case wire.OpChunk, wire.OpPut, wire.OpWrite, wire.OpCommit:
		return true
	case wire.OpMkdir:
		return req.Flags&wire.FlagParents != 0
	}
	return false
}

// notRetried answers a request that retriable refuses to send again.
func notRetried(req *wire.Request, cluster, addr string, err error) *wire.Response {
	return wire.Errorf(req.ID, wire.Timeout, "cluster %s: %v %s may have been applied and is not retried without a session; last error: %s: %v",
		cluster, req.Op, req.Path, addr, err)
}

// try sends one copy of req to addr, or waits again for the copy already
// pending there (pending holds the request's calls by address), for at
// most AttemptTimeout within the request's deadline. The copy carries the
// routing-table version and, in TimeoutMs, the time left of the request:
// a node is given the caller's whole deadline, not one attempt's, so a
// slow node finishes the one copy it has.
func (r *Router) try(f *forwarding, addr string, req *wire.Request, version uint64, pending calls) attempt {
	expire, end := f.attempt(r.cfg.AttemptTimeout)
	p := pending[addr]
	if p != nil && !p.Alive() {
		p.Abandon()
		delete(pending, addr)
		p = nil
	}
	if p == nil {
		conn, err := r.conn(f, addr, req.Op, end)
		if err != nil {
			return attempt{err: err}
		}
		out := *req // Data is shared, read-only
		out.ID = 0
		out.TimeoutMs = f.remainingMs()
		out.Table = version
		out.Hello = nil
		if p, err = conn.StartUntil(f.parent, &out, expire); err != nil {
			return attempt{err: err, sent: true}
		}
		pending[addr] = p
	}
	resp, err := p.WaitUntil(f.parent, expire)
	if err == nil {
		delete(pending, addr)
		return attempt{resp: resp}
	}
	if !f.expired() && p.Alive() && r.live.of(addr) != "dead" {
		return attempt{err: err, sent: true, inFlight: true}
	}
	p.Abandon()
	delete(pending, addr)
	return attempt{err: err, sent: true}
}

// conn returns the pooled connection to addr for op, dialling it within
// the try's deadline end when there is none.
func (r *Router) conn(f *forwarding, addr string, op wire.Op, end time.Time) (*rpc.Conn, error) {
	pool := r.poolFor(op)
	if c := pool.Open(addr); c != nil {
		return c, nil
	}
	ctx, cancel := context.WithDeadline(f.context(), end)
	defer cancel()
	return pool.Get(ctx, addr)
}

// wait sleeps for d; false if ctx ended or the router closed first.
func (r *Router) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-r.done:
		return false
	}
}

// poolFor returns the pool for a request of op to a node: the peer pool
// for the ops a node serves only on its peer listener (nodeAddr sends
// them there), the client pool for the rest.
func (r *Router) poolFor(op wire.Op) *rpc.Pool {
	if !wire.NodePlane(op, wire.ClientPlane) {
		return r.peers
	}
	return r.pool
}
