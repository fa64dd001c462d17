package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cleavefs/cleave/control"
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

// attempt is the result of one try at one node.
type attempt struct {
	resp *wire.Response // nil on a transport failure
	err  error
	sent bool // the request may have reached the node (outcome unknown on err)
}

// forward sends req to the cluster chosen by rt and retries until a node
// gives a definite answer or the caller's deadline (less a margin) passes.
//
//   - NOT_LEADER with a leader address: try that address next, at once.
//   - NOT_LEADER without one, UNAVAILABLE, TIMEOUT, a broken connection or a
//     failed dial: try the next member; after a round of all, back off.
//   - WRONG_RANGE: refresh the table if it is behind, back off, route again;
//     after wrongRangeTries answers return the last one.
//   - anything else is the answer.
//
// A mutation whose connection broke after sending, or that a node answered
// TIMEOUT, may have been applied: it is retried only if retriable (a
// session makes the retry exactly-once; some writes are idempotent);
// otherwise it is answered TIMEOUT at once, since a retry could apply it
// twice.
// When time runs out the answer is TIMEOUT if some try may have reached a
// node (the outcome is unknown), else UNAVAILABLE; both name the cluster and
// the last error.
func (r *Router) forward(ctx context.Context, req *wire.Request, rt route) *wire.Response {
	start := time.Now()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = start.Add(r.cfg.DefaultTimeout)
	}
	dl = dl.Add(-max(0, min(maxMargin, dl.Sub(start)/10)))
	ctx, cancel := context.WithDeadline(ctx, dl)
	defer cancel()

	var (
		cluster   string
		tried     = map[string]bool{} // addresses tried this round
		next      string              // a hinted leader to try before the rest
		backoff   = minBackoff
		tries     int
		wrong     int
		unknown   bool
		lastErr   = "no node tried"
		lastTable uint64
	)
loop:
	for {
		t := r.table.Current()
		cid, ok := rt(t)
		if !ok {
			return wire.Errorf(req.ID, wire.Unavailable, "no route for %s in routing table version %d", req.Path, t.Version)
		}
		c, ok := control.Cluster(t, cid)
		if !ok {
			return wire.Errorf(req.ID, wire.Unavailable, "cluster %s is not in routing table version %d", cid, t.Version)
		}
		if cid != cluster {
			cluster = cid
			clear(tried)
			next = ""
		}
		addr := next
		next = ""
		if addr == "" {
			for _, a := range r.targets(c, t.Version, req) {
				if !tried[a] {
					addr = a
					break
				}
			}
		}
		if addr == "" { // every member tried this round
			if !r.wait(ctx, backoff) {
				break loop
			}
			backoff = min(2*backoff, maxBackoff)
			clear(tried)
			continue
		}
		tried[addr] = true
		tries++
		a := r.try(ctx, addr, req, t.Version)
		if a.err != nil {
			unknown = unknown || a.sent
			if a.sent && !retriable(req) {
				return notRetried(req, cid, addr, a.err)
			}
			if ctx.Err() != nil {
				if lastErr == "no node tried" || !errors.Is(a.err, context.DeadlineExceeded) {
					lastErr = fmt.Sprintf("%s: %v", addr, a.err)
				}
				break loop
			}
			r.forgetLeader(cid, addr)
			if errors.Is(a.err, context.DeadlineExceeded) {
				lastErr = fmt.Sprintf("%s: no answer within %v", addr, r.cfg.AttemptTimeout)
			} else {
				lastErr = fmt.Sprintf("%s: %v", addr, a.err)
			}
			r.log.Debug("forward: try failed", "cluster", cid, "addr", addr, "op", req.Op.String(), "err", a.err)
			continue
		}
		resp := a.resp
		switch resp.Code {
		case wire.NotLeader:
			r.forgetLeader(cid, addr)
			lastErr = fmt.Sprintf("%s: not leader (leader %q)", addr, resp.Leader)
			if resp.Leader != "" && !tried[resp.Leader] {
				r.setLeader(cid, resp.Leader)
				next = resp.Leader
			}
		case wire.Unavailable, wire.Timeout:
			if resp.Code == wire.Timeout && !retriable(req) {
				return notRetried(req, cid, addr, resp.Err())
			}
			r.forgetLeader(cid, addr)
			unknown = unknown || resp.Code == wire.Timeout
			lastErr = fmt.Sprintf("%s: %v", addr, resp.Err())
		case wire.WrongRange:
			// A node that knows a newer routing version than this router
			// has (a split whose table change the meta group is still
			// committing) is not a misroute when the table can catch up:
			// wait for it, within the deadline, without counting the answer.
			if _, refreshes := r.table.(control.Refresher); !refreshes || resp.Table <= t.Version {
				wrong++
			}
			lastErr = fmt.Sprintf("%s: %v", addr, resp.Err())
			if wrong >= wrongRangeTries {
				resp.Message = fmt.Sprintf("cluster %s does not own %s (routing table version %d, node's %d): %s", cid, req.Path, t.Version, resp.Table, resp.Message)
				return resp
			}
			if rf, ok := r.table.(control.Refresher); ok && resp.Table > t.Version && resp.Table > lastTable {
				lastTable = resp.Table
				if err := rf.Refresh(ctx, resp.Table); err != nil {
					r.log.Debug("forward: refresh table", "seen", resp.Table, "err", err)
				}
			}
			if !r.wait(ctx, backoff) {
				break loop
			}
			backoff = min(2*backoff, maxBackoff)
			clear(tried)
		default:
			if req.Op.Mutating() {
				r.setLeader(cid, addr) // only the leader applies mutations
			}
			return resp
		}
		if ctx.Err() != nil {
			break loop
		}
	}
	code := wire.Unavailable
	if unknown {
		code = wire.Timeout
	}
	return wire.Errorf(req.ID, code, "cluster %s: no answer for %v %s within %v (%d tries); last error: %s",
		cluster, req.Op, req.Path, time.Since(start).Round(time.Millisecond), tries, lastErr)
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

// try sends one copy of req to addr, bounded by AttemptTimeout and ctx. The
// copy carries the routing-table version and, in TimeoutMs, the time left.
func (r *Router) try(ctx context.Context, addr string, req *wire.Request, version uint64) attempt {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.AttemptTimeout)
	defer cancel()
	conn, err := r.pool.Get(ctx, addr)
	if err != nil {
		return attempt{err: err}
	}
	out := *req // Data is shared, read-only
	out.ID = 0
	out.TimeoutMs = 0 // Call fills it from ctx's deadline
	out.Table = version
	out.Hello = nil
	resp, err := conn.Call(ctx, &out)
	if err != nil {
		return attempt{err: err, sent: true}
	}
	return attempt{resp: resp}
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
