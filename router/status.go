package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/wire"
)

// RoleDown is the role of a node the router could not get a status from.
const RoleDown = "down"

// status asks every member of every cluster in the table for its NodeStatus,
// in parallel, each bounded by StatusTimeout. A node that cannot be reached
// or answers with an error is listed with Role "down" and Error set; it never
// fails the whole status. A cluster's Leader is the address of the node that
// reports itself leader in the highest term, else the leader address its
// members report; a leader found this way also refreshes the leader cache.
func (r *Router) status(ctx context.Context) *wire.Status {
	t := r.table.Current()
	st := &wire.Status{Router: r.cfg.ID, Version: t.Version, Clusters: make([]wire.ClusterStatus, len(t.Clusters))}
	if r.meta != nil {
		st.Splits = r.meta.Splits()
	}
	var wg sync.WaitGroup
	for i, c := range t.Clusters {
		rg, _ := control.ClusterRange(t, c.ID)
		cs := &st.Clusters[i]
		*cs = wire.ClusterStatus{ID: c.ID, Range: rg, Nodes: make([]wire.NodeStatus, len(c.Members))}
		for j, m := range c.Members {
			wg.Go(func() { cs.Nodes[j] = r.nodeStatus(ctx, c.ID, m) })
		}
	}
	if r.meta != nil {
		wg.Go(func() { st.Routers = r.routers(ctx) })
	}
	wg.Wait()
	for i := range st.Clusters {
		cs := &st.Clusters[i]
		var top uint64
		for _, n := range cs.Nodes {
			top = max(top, n.Applied)
		}
		for j := range cs.Nodes {
			n := &cs.Nodes[j]
			n.Liveness = r.live.of(n.Addr)
			if n.Role != RoleDown {
				n.Lag = top - n.Applied
			}
		}
		cs.Leader = pickLeader(cs.Nodes)
		cs.HotRoot = r.load.hotRoot(cs.ID, cs.Nodes, time.Now())
		if cs.Leader != "" {
			r.setLeader(cs.ID, cs.Leader)
		}
	}
	return st
}

// nodeStatus asks one member for its status.
func (r *Router) nodeStatus(ctx context.Context, cluster string, m wire.Member) wire.NodeStatus {
	down := func(format string, args ...any) wire.NodeStatus {
		return wire.NodeStatus{ID: m.ID, Cluster: cluster, Addr: m.Addr, PeerAddr: m.PeerAddr, Role: RoleDown, Error: fmt.Sprintf(format, args...)}
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.StatusTimeout)
	defer cancel()
	conn, err := r.pool.Get(ctx, m.Addr)
	if err != nil {
		return down("%v", err)
	}
	resp, err := conn.Call(ctx, &wire.Request{Op: wire.OpStatus})
	switch {
	case err != nil:
		return down("status: %v", err)
	case resp.Code != wire.OK:
		return down("status: %v", resp.Err())
	case resp.Node == nil:
		return down("status: the node's answer has no node status")
	}
	ns := *resp.Node
	if ns.Addr == "" {
		ns.Addr = m.Addr
	}
	if ns.ID == 0 {
		ns.ID = m.ID
	}
	if ns.Cluster == "" {
		ns.Cluster = cluster
	}
	return ns
}

// pickLeader returns the address of the node reporting itself leader in the
// highest term, else the leader address reported in the highest term, else "".
func pickLeader(nodes []wire.NodeStatus) string {
	var addr string
	var term uint64
	for _, n := range nodes {
		if n.Role == "leader" && (addr == "" || n.Term > term) {
			addr, term = n.Addr, n.Term
		}
	}
	if addr != "" {
		return addr
	}
	for _, n := range nodes {
		if n.Role != RoleDown && n.LeaderAddr != "" && (addr == "" || n.Term > term) {
			addr, term = n.LeaderAddr, n.Term
		}
	}
	return addr
}

// self is this router's own line of the status.
func (r *Router) self() wire.RouterStatus {
	rs := wire.RouterStatus{ID: r.cfg.ID, Addr: r.Addr(), PeerAddr: r.peerAddr, Version: r.table.Current().Version, PID: r.cfg.PID, WrongPlaneFrames: r.dropped.Load()}
	if r.meta != nil {
		st := r.meta.Replica().Status()
		rs.RaftID, rs.Leader, rs.Applied = st.ID, st.Role == "leader", st.Applied
	}
	return rs
}

// routers asks every member of the meta group for its own status, on its
// peer address, in parallel; an unreachable router is listed with Error
// set.
func (r *Router) routers(ctx context.Context) []wire.RouterStatus {
	members := r.meta.Replica().Members()
	out := make([]wire.RouterStatus, len(members))
	self := r.meta.Replica().Status().ID
	var wg sync.WaitGroup
	for i, m := range members {
		if m.ID == self {
			out[i] = r.self()
			continue
		}
		wg.Go(func() {
			addr, peer := wire.SplitAddrs(m.Addr)
			out[i] = wire.RouterStatus{RaftID: m.ID, Addr: addr, PeerAddr: peer}
			ctx, cancel := context.WithTimeout(ctx, r.cfg.StatusTimeout)
			defer cancel()
			conn, err := r.peers.Get(ctx, peer)
			if err != nil {
				out[i].Error = err.Error()
				return
			}
			resp, err := conn.Call(ctx, &wire.Request{Op: wire.OpRouterInfo})
			switch {
			case err != nil:
				out[i].Error = err.Error()
			case resp.Err() != nil:
				out[i].Error = resp.Err().Error()
			case resp.Router != nil:
				out[i] = *resp.Router
			}
		})
	}
	wg.Wait()
	return out
}
