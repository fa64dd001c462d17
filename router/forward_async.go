package router

import (
	"context"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// HandleAsync (rpc.AsyncHandler) takes a file operation whose first try
// can be sent at once — the caller may do it, the path is valid, the table
// routes it and the pool holds a live connection to the node to try — and
// sends it from the client connection's reader goroutine. A definite
// answer is returned from the node connection's reader; anything else (a
// retry, the try's time running out, the caller's context ending) hands
// the request to a goroutine that goes on exactly as forward would after
// that first try. Every other request is left to Handle.
func (r *Router) HandleAsync(ctx context.Context, req *wire.Request, reply func(*wire.Response)) bool {
	if !req.FileOp() { // Handle answers the rest, and the errors
		return false
	}
	if ci := rpc.ConnInfoFrom(ctx); ci != nil {
		p, _ := ci.Principal.(principal)
		if r.check(p, req) != nil {
			return false // refused, or a user's grants to catch up on: Handle
		}
	}
	t := r.table.Current()
	rt := ownerOf(req.Path)
	c, resp := r.routeTo(t, req, rt)
	if resp != nil {
		return false
	}
	addr := r.pick(c, t.Version, req, nil, "")
	if addr == "" {
		return false
	}
	node := nodeAddr(c, addr, req.Op)
	conn := r.poolFor(req.Op).Live(node)
	if conn == nil {
		return false
	}
	start := time.Now()
	dl := r.deadline(ctx, start)
	wait := min(r.cfg.AttemptTimeout, dl.Sub(start))
	if wait <= 0 {
		return false
	}
	ft := &firstTry{r: r, ctx: ctx, reply: reply, dl: dl, addr: addr, node: node, version: t.Version}
	ft.f = forwarding{req: req, rt: rt, start: start, st: r.retryState(req), cluster: c.ID}
	ft.mu.Lock()
	defer ft.mu.Unlock()
	pc, err := conn.StartNotify(nodeCopy(req, t.Version, msUntil(dl)), ft.answered)
	if err != nil {
		ft.claimed = true // a notify from a connection dying meanwhile is not ours to act on
		return false      // nothing was sent
	}
	ft.p = pc
	ft.timer = time.AfterFunc(wait, ft.expired)
	ft.stopCtx = rpc.AfterFunc(ctx, ft.expired)
	return true
}

// firstTry is a request's first try as HandleAsync sent it. The first of
// its answer, its attempt time running out and the caller's context ending
// claims it; the others then do nothing.
type firstTry struct {
	r       *Router
	ctx     context.Context // the server's: the caller's deadline, or its connection closing
	reply   func(*wire.Response)
	dl      time.Time // forward's own deadline
	addr    string    // the member tried
	node    string    // its address for the op (nodeAddr)
	version uint64    // the table version the try was routed with
	f       forwarding

	mu      sync.Mutex // held by HandleAsync until the fields below are set
	claimed bool
	p       *rpc.Pending
	timer   *time.Timer
	stopCtx func() bool
}

// claim reports whether the caller is the first to act on the try, and
// stops what would act on it next.
func (ft *firstTry) claim() bool {
	ft.mu.Lock()
	defer ft.mu.Unlock()
	if ft.claimed {
		return false
	}
	ft.claimed = true
	ft.timer.Stop()
	ft.stopCtx()
	return true
}

// answered is the node's answer arriving (or its connection dying), on
// that connection's reader: a definite answer is the reply; anything else
// goes on in forward's loop.
func (ft *firstTry) answered() {
	if !ft.claim() {
		return
	}
	resp, err := ft.p.Wait(context.Background()) // ready: notify says so
	a := answer{addr: ft.addr, version: ft.version, resp: resp, err: err, sent: true, expired: ft.expiredNow()}
	if resp != nil {
		a.hintTried = resp.Leader == ft.addr
	}
	d := ft.r.step(&ft.f, a)
	if d.act == actAnswer {
		ft.reply(resp)
		return
	}
	go ft.resume(a, d)
}

// expired is the try's attempt time, or the caller's context, running
// out first: forward's loop decides, waiting again for the same call if
// the node is only slow.
func (ft *firstTry) expired() {
	if !ft.claim() {
		return
	}
	a := answer{addr: ft.addr, version: ft.version, err: ft.ctx.Err(), sent: true, expired: ft.expiredNow()}
	if a.err == nil {
		a.err = context.DeadlineExceeded
	}
	a.inFlight = !a.expired && ft.r.stillWorking(ft.p, ft.node)
	if a.inFlight {
		ft.f.pending = calls{ft.node: ft.p}
	} else {
		ft.p.Abandon()
	}
	go ft.resume(a, ft.r.step(&ft.f, a))
}

// expiredNow reports whether forward's deadline has passed or the
// caller's context ended.
func (ft *firstTry) expiredNow() bool {
	return ft.ctx.Err() != nil || !time.Now().Before(ft.dl)
}

// resume carries out decision d on the first try's answer a and goes on
// as forward would, then replies.
func (ft *firstTry) resume(a answer, d decision) {
	ctx, cancel := context.WithDeadline(ft.ctx, ft.dl)
	defer cancel()
	f := &ft.f
	f.ctx = ctx
	f.tried = map[string]bool{ft.addr: true}
	if f.pending == nil {
		f.pending = calls{}
	}
	defer f.pending.abandon()
	resp, done := ft.r.perform(f, a, d)
	if !done {
		resp = ft.r.run(f)
	}
	ft.reply(resp)
}
