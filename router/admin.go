package router

// Membership admin through a router ("add/remove/replace node",
// docs/robustness.md). ADD_LEARNER, PROMOTE and REMOVE_MEMBER with
// Request.Cluster set may be sent to any router. The router that leads the
// meta group passes the op on to the cluster's leader (forward follows
// NOT_LEADER), and when it succeeds records the cluster's voters, as the
// leader's answer lists them, as the cluster's members in the routing
// table: one table change through the meta group, only if the list
// changed. Other routers pass the whole request on to the meta leader, so
// the op and the table change are done by one router in order. Every step
// is idempotent, so a caller that lost an answer sends the same request
// again; a PROMOTE or REMOVE_MEMBER repeated after a lost answer also
// repairs a table change that did not happen.

import (
	"cmp"
	"context"
	"errors"
	"slices"

	"github.com/cleavefs/cleave/control"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// handleMember serves ADD_LEARNER, PROMOTE and REMOVE_MEMBER sent to a
// router.
func (r *Router) handleMember(ctx context.Context, req *wire.Request) *wire.Response {
	if req.Flags&wire.FlagMetaGroup != 0 {
		return r.handleMetaMember(ctx, req)
	}
	if req.Cluster == "" || req.Member == nil || req.Member.ID == 0 {
		return wire.Errorf(req.ID, wire.Invalid, "%s through a router needs cluster and member.id", req.Op)
	}
	if _, ok := control.Cluster(r.table.Current(), req.Cluster); !ok {
		return wire.Errorf(req.ID, wire.NotFound, "cluster %q is not in routing table version %d", req.Cluster, r.table.Current().Version)
	}
	if r.meta != nil && !r.meta.IsLeader() {
		return r.toMetaLeader(ctx, req)
	}
	out := *req
	out.ID, out.Cluster = 0, ""
	resp := r.callCluster(ctx, req.Cluster, &out)
	if resp.Code != wire.OK || resp.Node == nil {
		return resp
	}
	if err := r.syncMembers(ctx, req.Cluster, resp.Node.Members); err != nil {
		r.log.Warn("membership changed but the routing table was not updated; repeat the request", "cluster", req.Cluster, "op", req.Op.String(), "member", req.Member.ID, "err", err)
		return wire.Errorf(req.ID, wire.Unavailable, "%s of %d in %s done, routing table not updated (repeat the request): %v", req.Op, req.Member.ID, req.Cluster, err)
	}
	return resp
}

// handleSplit serves OpSplit: with no spec it reports the splits (the CLI
// polls this way); a spec (start or abandon) is passed on to the meta
// leader, whose split driver serves it.
func (r *Router) handleSplit(ctx context.Context, req *wire.Request) *wire.Response {
	if r.meta == nil {
		return wire.Errorf(req.ID, wire.Invalid, "splits need the routers' meta group (this router uses a table file)")
	}
	if req.Split == nil {
		return &wire.Response{Status: &wire.Status{Router: r.cfg.ID, Version: r.table.Current().Version, Splits: r.meta.Splits()}}
	}
	if !r.meta.IsLeader() {
		return r.toMetaLeader(ctx, req)
	}
	return r.splits.Handle(ctx, req)
}

// toMetaLeader passes req on to the router that leads the meta group, on
// its peer listener, and returns its answer.
func (r *Router) toMetaLeader(ctx context.Context, req *wire.Request) *wire.Response {
	rep := r.meta.Replica()
	_, addr := wire.SplitAddrs(rep.MemberAddr(rep.Leader()))
	if addr == "" {
		return wire.Errorf(req.ID, wire.Unavailable, "the meta group has no leader; retry")
	}
	out := *req
	out.ID = 0
	resp, err := callPool(ctx, r.peers, addr, &out)
	if err != nil {
		return wire.Errorf(req.ID, wire.Unavailable, "meta leader %s: %v", addr, err)
	}
	return resp
}

// callCluster sends req to cluster id's leader, following NOT_LEADER and
// retrying as forward does.
func (r *Router) callCluster(ctx context.Context, id string, req *wire.Request) *wire.Response {
	return r.forward(ctx, req, func(t *wire.TableInfo) (string, bool) {
		_, ok := control.Cluster(t, id)
		return id, ok
	})
}

// callNode sends req to one node's client listener.
func (r *Router) callNode(ctx context.Context, addr string, req *wire.Request) (*wire.Response, error) {
	return callPool(ctx, r.pool, addr, req)
}

// callPool sends req to addr over a connection of pool p.
func callPool(ctx context.Context, p *rpc.Pool, addr string, req *wire.Request) (*wire.Response, error) {
	conn, err := p.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	return conn.Call(ctx, req)
}

// clusterCaller is the split driver's way to the clusters
// (control.Clusters), over this router's pools.
type clusterCaller struct{ r *Router }

func (c clusterCaller) CallCluster(ctx context.Context, id string, req *wire.Request) *wire.Response {
	return c.r.callCluster(ctx, id, req)
}

func (c clusterCaller) CallNode(ctx context.Context, addr string, req *wire.Request) (*wire.Response, error) {
	return c.r.callNode(ctx, addr, req)
}

// syncMembers sets cluster's members in the routing table to the voters
// among ms (a leader's member list), keeping a table address where ms has
// none. No change if the table already says so.
func (r *Router) syncMembers(ctx context.Context, cluster string, ms []wire.MemberStatus) error {
	want := VoterMembers(ms)
	if len(want) == 0 {
		return errors.New("the leader reported no voters")
	}
	if c, ok := control.Cluster(r.table.Current(), cluster); ok && slices.Equal(c.Members, mergeAddrs(want, c.Members)) {
		return nil
	}
	err := r.table.Update(ctx, func(t *wire.TableInfo) error {
		for i := range t.Clusters {
			if t.Clusters[i].ID == cluster {
				t.Clusters[i].Members = mergeAddrs(want, t.Clusters[i].Members)
				return nil
			}
		}
		return errors.New("cluster " + cluster + " left the routing table")
	})
	if err == nil {
		r.log.Info("routing table: cluster members updated", "cluster", cluster, "members", len(want), "version", r.table.Current().Version)
	}
	return err
}

// VoterMembers returns the voters of ms as routing-table members, sorted
// by id.
func VoterMembers(ms []wire.MemberStatus) []wire.Member {
	var out []wire.Member
	for _, m := range ms {
		if m.Voter {
			out = append(out, wire.Member{ID: m.ID, Addr: m.Addr, PeerAddr: m.PeerAddr})
		}
	}
	slices.SortFunc(out, func(a, b wire.Member) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// mergeAddrs fills the empty addresses of want from old (same id).
func mergeAddrs(want, old []wire.Member) []wire.Member {
	out := slices.Clone(want)
	for i := range out {
		for _, o := range old {
			if o.ID != out[i].ID {
				continue
			}
			if out[i].Addr == "" {
				out[i].Addr = o.Addr
			}
			if out[i].PeerAddr == "" {
				out[i].PeerAddr = o.PeerAddr
			}
		}
	}
	return out
}

// handleMetaMember serves ADD_LEARNER, PROMOTE and REMOVE_MEMBER of a router
// in the meta group (wire.FlagMetaGroup), on the meta leader: a new router
// started with --join is added as a learner at its client and peer
// addresses, promoted once it has caught up, and a router removed. Like
// the clusters' membership ops each is idempotent. The answer lists the
// meta group's routers in Status.Routers as status does (each asked for
// its own line; one that does not answer has Error set).
func (r *Router) handleMetaMember(ctx context.Context, req *wire.Request) *wire.Response {
	if r.meta == nil {
		return wire.Errorf(req.ID, wire.Invalid, "this router has no meta group (it uses a table file): there is no group of routers to change")
	}
	m := req.Member
	if m == nil || m.ID == 0 {
		return wire.Errorf(req.ID, wire.Invalid, "%s of a router needs member.id (its --raft-id)", req.Op)
	}
	if !r.meta.IsLeader() {
		return r.toMetaLeader(ctx, req)
	}
	rep := r.meta.Replica()
	var err error
	switch req.Op {
	case wire.OpAddLearner:
		if m.Addr == "" || m.PeerAddr == "" {
			return wire.Errorf(req.ID, wire.Invalid, "ADD_LEARNER of router %d needs its client address and its peer address", m.ID)
		}
		err = rep.AddLearner(ctx, m.ID, wire.JoinAddrs(m.Addr, m.PeerAddr))
	case wire.OpPromote:
		err = rep.Promote(ctx, m.ID)
	case wire.OpRemoveMember:
		err = rep.RemoveMember(ctx, m.ID)
	}
	if err != nil {
		return wire.Errorf(req.ID, replica.ErrorCode(err), "%s of router %d in the meta group: %v", req.Op, m.ID, err)
	}
	r.log.Info("meta group membership changed", "op", req.Op.String(), "router", m.ID, "addr", m.Addr, "peer_addr", m.PeerAddr)
	return &wire.Response{Status: &wire.Status{Router: r.cfg.ID, Version: r.table.Current().Version, Routers: r.routers(ctx)}}
}
