package client

// Direct mode (WithDirect): a file operation goes straight to the cluster
// that owns its root directory, one hop less than through a router.
//
// The client keeps the routing table (fetched from a router), the member
// it believes leads each cluster and a connection to each member it
// talks to. A call is sent directly only when all of that is at hand —
// the table routes the path, and a live connection to the member is open
// — and the request may be sent again after an unknown outcome
// (wire.Request.Retriable): anything else, and every answer a router would
// act on rather than pass back (NOT_LEADER, WRONG_RANGE, UNAVAILABLE,
// TIMEOUT, UNAUTHORIZED, FORBIDDEN, a broken connection, no answer within
// the attempt time), sends the same request, with the same (session,
// seq), through a router, which retries as it always does. So a call
// never fails for being direct, and a mutation whose direct try may have
// applied still applies once: the cluster keeps each (session, seq)'s
// result.
//
// Each such answer also teaches the client: NOT_LEADER names the leader
// (accepted only if it is a member of that cluster in the table),
// WRONG_RANGE and broken connections have the table fetched again (at
// most once per tableRefreshGap), a member that cannot be dialled is left
// alone for memberRetry, and one that refuses the client's credentials
// (nodes know the deployment's token, not users' grants) for
// memberRefused. Connections are dialled in the background: a call never
// waits for a dial.

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

const (
	// directAttempt bounds a direct try (also by half the call's time
	// left), so a paused or partitioned member leaves time for a router.
	directAttempt = 2 * time.Second
	// tableRefreshGap is the least time between two fetches of the table.
	tableRefreshGap = time.Second
	// memberRetry is how long a member that could not be dialled is not
	// dialled again.
	memberRetry = 5 * time.Second
	// memberRefused is how long a member that refused HELLO is not dialled
	// again.
	memberRefused = time.Minute
)

// direct is a Client's direct mode. Safe for concurrent use.
type direct struct {
	c      *Client
	dc     rpc.DialConfig
	ctx    context.Context // ends at close: background dials and fetches stop
	cancel context.CancelFunc
	bg     sync.WaitGroup // background dials and fetches

	mu        sync.Mutex
	table     *wire.TableInfo    // nil until fetched
	leaders   map[string]string  // cluster id -> member address last known to lead it
	members   map[string]*member // by client address
	fetching  bool               // a table fetch is running
	fetchedAt time.Time          // when the last fetch started
	closed    bool
}

// member is the client's connection to one node.
type member struct {
	conn     *rpc.Conn // nil while none is open
	dialling bool
	notUntil time.Time // no dial before this, after a failed one
}

func newDirect(c *Client, dc rpc.DialConfig) *direct {
	ctx, cancel := context.WithCancel(context.Background())
	return &direct{c: c, dc: dc, ctx: ctx, cancel: cancel, leaders: map[string]string{}, members: map[string]*member{}}
}

// directable reports whether req may go direct: a file operation one
// cluster answers by itself that may be sent again if its direct try ends
// without an answer.
func directable(req *wire.Request) bool { return req.FileOp() && req.Retriable() }

// try sends req straight to the member believed to lead the cluster that
// owns req.Path. It returns the answer and true when that is the call's
// answer; false when the call should go through a router (sent tells
// whether req reached a member, whose outcome is then unknown).
func (d *direct) try(ctx context.Context, deadline time.Time, req *wire.Request) (resp *wire.Response, done, sent bool) {
	if !directable(req) {
		return nil, false, false
	}
	cid, addr, version, conn := d.route(req.Path)
	if conn == nil {
		return nil, false, false
	}
	attempt := min(directAttempt, time.Until(deadline)/2)
	if attempt <= 0 {
		return nil, false, false
	}
	r := *req // CallUntil assigns ID and TimeoutMs
	r.Table = version
	resp, err := conn.CallUntil(ctx, time.Now().Add(attempt), &r)
	if err != nil {
		if errors.Is(err, rpc.ErrConnClosed) {
			d.broken(addr, conn)
		}
		d.forgetLeader(cid, addr)
		return nil, false, true
	}
	switch resp.Code {
	case wire.NotLeader:
		d.learnLeader(cid, addr, resp.Leader)
		return nil, false, true
	case wire.WrongRange:
		d.refresh()
		return nil, false, true
	case wire.Unavailable, wire.Timeout, wire.Unauthorized, wire.Forbidden:
		d.forgetLeader(cid, addr)
		return nil, false, true
	}
	return resp, true, true
}

// route returns where a request for path goes directly: its cluster, the
// member's address, the table version and a live connection to the
// member, or a nil connection when the call must go through a router (no
// table yet, no route, or no connection open: one is then dialled in the
// background).
func (d *direct) route(path string) (cid, addr string, version uint64, conn *rpc.Conn) {
	d.mu.Lock()
	defer d.mu.Unlock()
	t := d.table
	if t == nil || d.closed {
		d.refreshLocked()
		return "", "", 0, nil
	}
	o, ok := t.Owner(ring.PathPoint(path))
	if !ok {
		return "", "", 0, nil
	}
	c, ok := t.Cluster(o.Cluster)
	if !ok || len(c.Members) == 0 {
		return "", "", 0, nil
	}
	addr = d.leaders[c.ID]
	if addr == "" {
		addr = c.Members[0].Addr
	}
	m := d.members[addr]
	if m == nil {
		m = &member{}
		d.members[addr] = m
	}
	if m.conn != nil && m.conn.Err() != nil {
		m.conn.Close()
		m.conn = nil
	}
	if m.conn == nil {
		d.dialLocked(addr, m)
		return "", "", 0, nil
	}
	return c.ID, addr, t.Version, m.conn
}

// dialLocked starts a background dial of the member at addr unless one
// runs or a failed one is too recent. d.mu is held.
func (d *direct) dialLocked(addr string, m *member) {
	if m.dialling || time.Now().Before(m.notUntil) || d.closed {
		return
	}
	m.dialling = true
	d.bg.Go(func() {
		ctx, cancel := context.WithTimeout(d.ctx, d.c.cfg.dialTimeout)
		conn, err := rpc.Dial(ctx, addr, d.dc)
		cancel()
		d.mu.Lock()
		defer d.mu.Unlock()
		m.dialling = false
		var we *wire.Error
		switch {
		case err == nil && d.closed:
			conn.Close()
		case err == nil:
			m.conn = conn
		case errors.As(err, &we):
			d.c.log.Debug("member refused a direct connection; calls to it go through a router", "member", addr, "err", err)
			m.notUntil = time.Now().Add(memberRefused)
		default:
			d.c.log.Debug("member unreachable directly", "member", addr, "err", err)
			m.notUntil = time.Now().Add(memberRetry)
		}
	})
}

// broken forgets conn to addr after a transport failure, and has the
// table fetched again (the member may have left).
func (d *direct) broken(addr string, conn *rpc.Conn) {
	d.mu.Lock()
	if m := d.members[addr]; m != nil && m.conn == conn {
		m.conn = nil
	}
	d.refreshLocked()
	d.mu.Unlock()
	conn.Close()
}

// learnLeader records the leader a NOT_LEADER answer from addr named for
// cluster cid, if the table lists it as a member there; else it forgets
// addr as the leader.
func (d *direct) learnLeader(cid, addr, leader string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leaders[cid] == addr {
		delete(d.leaders, cid)
	}
	if leader == "" || leader == addr || d.table == nil {
		return
	}
	c, ok := d.table.Cluster(cid)
	if !ok {
		return
	}
	for _, m := range c.Members {
		if m.Addr == leader {
			d.leaders[cid] = leader
			return
		}
	}
}

// forgetLeader stops sending cid's calls to addr first: the next go to
// the first member, until another leader is learnt.
func (d *direct) forgetLeader(cid, addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.leaders[cid] == addr {
		delete(d.leaders, cid)
	}
}

// refresh has the table fetched again, in the background.
func (d *direct) refresh() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refreshLocked()
}

// refreshLocked starts a background fetch of the table through a router
// unless one runs or the last began less than tableRefreshGap ago. d.mu
// is held.
func (d *direct) refreshLocked() {
	if d.fetching || d.closed || time.Since(d.fetchedAt) < tableRefreshGap {
		return
	}
	d.fetching, d.fetchedAt = true, time.Now()
	d.bg.Go(func() {
		ctx, cancel := context.WithTimeout(d.ctx, d.c.cfg.timeout)
		d.fetch(ctx)
		cancel()
	})
}

// fetch fetches the table through a router and keeps it, if it is newer
// than the one kept. Leaders learnt stay: an answer corrects a wrong one.
func (d *direct) fetch(ctx context.Context) {
	resp, err := d.c.call(ctx, "table", &wire.Request{Op: wire.OpTable})
	d.mu.Lock()
	defer d.mu.Unlock()
	d.fetching = false
	if err != nil || resp.Routes == nil {
		d.c.log.Debug("direct mode: routing table not fetched", "err", err)
		return
	}
	if d.table == nil || resp.Routes.Version >= d.table.Version {
		d.table = resp.Routes
	}
}

// close closes every member connection and waits for background dials
// and fetches.
func (d *direct) close() {
	d.mu.Lock()
	d.closed = true
	for _, m := range d.members {
		if m.conn != nil {
			m.conn.Close()
			m.conn = nil
		}
	}
	d.mu.Unlock()
	d.cancel()
	d.bg.Wait()
}
