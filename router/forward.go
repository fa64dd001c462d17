package router

import (
	"context"
	"fmt"
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

// targets returns the addresses to try for req in cluster c, best first.
// A read any member may serve goes first to the member its path hashes to
// (replicas.go); everything else to the cached leader; then the other
// members in table order, those gossip says are dead last.
func (r *Router) targets(c wire.ClusterInfo, version uint64, req *wire.Request) []string {
	first := r.leader(c.ID)
	if !listed(c, first) {
		first = "" // cached before a membership change
	}
	if r.readAnywhere(req) {
		if a := r.replicas.pick(version, c, req.Path); a != "" && r.live.of(a) != "dead" {
			first = a
		}
	}
	out := make([]string, 0, len(c.Members)+1)
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
	ctx, cancel := context.WithDeadline(ctx, r.deadline(ctx, start))
	defer cancel()
	f := r.newForwarding(ctx, req, rt, start)
	defer f.pending.abandon()
	return r.run(f)
}

// forwarding is one request on its way through forward: what is fixed for
// it and what its tries so far have left.
type forwarding struct {
	ctx     context.Context // ends at forward's own deadline
	req     *wire.Request
	rt      route
	start   time.Time
	st      retryState
	cluster string          // the cluster routed to last
	tried   map[string]bool // addresses tried this round
	hint    string          // a hinted leader to try before the rest
	pending calls
}

// newForwarding returns req's state before its first try; ctx ends at
// forward's own deadline.
func (r *Router) newForwarding(ctx context.Context, req *wire.Request, rt route, start time.Time) *forwarding {
	return &forwarding{
		ctx: ctx, req: req, rt: rt, start: start,
		st:    r.retryState(req),
		tried: map[string]bool{}, pending: calls{},
	}
}

// retryState is req's retry state before its first try.
func (r *Router) retryState(req *wire.Request) retryState {
	_, refreshes := r.table.(control.Refresher)
	return newRetryState(req.Retriable(), req.Op.Mutating(), refreshes, r.cfg.AttemptTimeout)
}

// deadline is forward's own deadline for a request whose context is ctx,
// started at start (policy.go's deadline with the router's default).
func (r *Router) deadline(ctx context.Context, start time.Time) time.Time {
	dl, ok := ctx.Deadline()
	return deadline(start, dl, ok, r.cfg.DefaultTimeout)
}

// run routes, picks and tries nodes for f until its answer.
func (r *Router) run(f *forwarding) *wire.Response {
	for {
		t := r.table.Current()
		c, resp := r.routeTo(t, f.req, f.rt)
		if resp != nil {
			return resp
		}
		if c.ID != f.cluster {
			f.cluster = c.ID
			clear(f.tried)
			f.hint = ""
		}
		addr := r.pick(c, t.Version, f.req, f.tried, f.hint)
		a := answer{roundDone: addr == "", addr: addr, version: t.Version}
		if addr != "" {
			f.tried[addr] = true
			at := r.try(f.ctx, nodeAddr(c, addr, f.req.Op), f.req, t.Version, f.pending)
			a.resp, a.err, a.sent, a.inFlight, a.expired = at.resp, at.err, at.sent, at.inFlight, f.ctx.Err() != nil
			if a.resp != nil {
				a.hintTried = f.tried[a.resp.Leader]
			}
		}
		if resp, done := r.perform(f, a, r.step(f, a)); done {
			return resp
		}
	}
}

// step is the retry policy's decision on a, the last try of f at a node
// of f.cluster, with that cluster's cached leader updated as it says. It
// never blocks.
func (r *Router) step(f *forwarding, a answer) decision {
	d := f.st.next(a)
	if d.lead != "" && d.lead != a.addr && !r.acceptLeader(f.cluster, d.lead, "not_leader") {
		d.lead, d.hint = "", ""
	}
	if d.forget {
		r.forgetLeader(f.cluster, a.addr)
	}
	if d.lead != "" {
		r.setLeader(f.cluster, d.lead)
	}
	return d
}

// perform carries out d, step's decision on a: the request's answer and
// true, or false to try again. It may wait (a back-off) until f.ctx ends.
func (r *Router) perform(f *forwarding, a answer, d decision) (*wire.Response, bool) {
	f.hint = d.hint
	switch d.act {
	case actTry:
		if a.err != nil {
			r.log.Debug("forward: try failed", "cluster", f.cluster, "addr", a.addr, "op", f.req.Op.String(), "err", a.err)
		}
	case actRound, actAwaitTable:
		if !r.backOff(f.ctx, d) {
			return r.gaveUp(f), true
		}
		clear(f.tried)
	case actAnswer:
		return a.resp, true
	case actMisrouted:
		a.resp.Message = fmt.Sprintf("cluster %s does not own %s (routing table version %d, node's %d): %s", f.cluster, f.req.Path, a.version, a.resp.Table, a.resp.Message)
		return a.resp, true
	case actNotRetried:
		err := a.err
		if err == nil {
			err = a.resp.Err()
		}
		return notRetried(f.req, f.cluster, a.addr, err), true
	case actGiveUp:
		return r.gaveUp(f), true
	}
	return nil, false
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
	for _, a := range r.targets(c, version, req) {
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
func (r *Router) gaveUp(f *forwarding) *wire.Response {
	return wire.Errorf(f.req.ID, f.st.code(), "cluster %s: no answer for %v %s within %v (%d tries); last error: %s",
		f.cluster, f.req.Op, f.req.Path, time.Since(f.start).Round(time.Millisecond), f.st.tries, f.st.lastError())
}

// notRetried answers a request that Request.Retriable refuses to send again.
func notRetried(req *wire.Request, cluster, addr string, err error) *wire.Response {
	return wire.Errorf(req.ID, wire.Timeout, "cluster %s: %v %s may have been applied and is not retried without a session; last error: %s: %v",
		cluster, req.Op, req.Path, addr, err)
}

// try sends one copy of req to addr, or waits again for the copy already
// pending there (pending holds the request's calls by address), for at
// most AttemptTimeout within ctx. The copy carries the routing-table
// version and, in TimeoutMs, the time left of ctx: a node is given the
// caller's whole deadline, not one attempt's, so a slow node finishes the
// one copy it has.
func (r *Router) try(ctx context.Context, addr string, req *wire.Request, version uint64, pending calls) attempt {
	actx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	p := pending[addr]
	if p != nil && !p.Alive() {
		p.Abandon()
		delete(pending, addr)
		p = nil
	}
	if p == nil {
		conn, err := r.poolFor(req.Op).Get(actx, addr)
		if err != nil {
			return attempt{err: err}
		}
		if p, err = conn.Start(actx, nodeCopy(req, version, remainingMs(ctx))); err != nil {
			return attempt{err: err, sent: true}
		}
		pending[addr] = p
	}
	resp, err := p.Wait(actx)
	if err == nil {
		delete(pending, addr)
		return attempt{resp: resp}
	}
	if ctx.Err() == nil && r.stillWorking(p, addr) {
		return attempt{err: err, sent: true, inFlight: true}
	}
	p.Abandon()
	delete(pending, addr)
	return attempt{err: err, sent: true}
}

// nodeCopy is the copy of req a node is sent: with the connection's own
// id, the routing-table version it was routed with and timeoutMs, and no
// HELLO. Data is shared, read-only.
func nodeCopy(req *wire.Request, version uint64, timeoutMs uint32) *wire.Request {
	out := *req
	out.ID = 0
	out.TimeoutMs = timeoutMs
	out.Table = version
	out.Hello = nil
	return &out
}

// stillWorking reports whether a call p to addr that ran out of attempt
// time may still be answered: its connection is up and gossip does not
// call the node dead. Such a node is slow, not gone, and is waited for
// rather than sent the request again (attempt.inFlight).
func (r *Router) stillWorking(p *rpc.Pending, addr string) bool {
	return p.Alive() && r.live.of(addr) != "dead"
}

// remainingMs is ctx's time left in milliseconds (msUntil), or 0 (the
// server's default) without a deadline.
func remainingMs(ctx context.Context) uint32 {
	dl, ok := ctx.Deadline()
	if !ok {
		return 0
	}
	return msUntil(dl)
}

// msUntil is the time until dl in milliseconds, at least 1.
func msUntil(dl time.Time) uint32 {
	return uint32(min(max(time.Until(dl).Milliseconds(), 1), 1<<31))
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
