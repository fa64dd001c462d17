package client

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// Membership of a cluster (docs/robustness.md). Each call goes
// to a router, which passes it on to the cluster's leader and then records
// the cluster's voters in the routing table. Every call is idempotent and
// is retried here while the answer is UNAVAILABLE or TIMEOUT (no leader, a
// change in progress, a learner still catching up) until ctx ends. Each
// returns the cluster leader's status after the change, with its member
// list.

// AddLearner adds node id, reachable at addr, to cluster as a non-voting
// learner. addr is the node's client address and peer address as
// "ADDR/PEER_ADDR", or one address for both. The node
// must already run with an empty data directory and --join (its --peers
// listing itself and the current members); the leader sends it a snapshot
// and then the log.
func (c *Client) AddLearner(ctx context.Context, cluster string, id uint64, addr string) (*NodeStatus, error) {
	a, peer := wire.SplitAddrs(addr)
	return c.member(ctx, wire.OpAddLearner, cluster, wire.Member{ID: id, Addr: a, PeerAddr: peer})
}

// Promote makes learner id of cluster a voter once it has caught up with
// the leader's log, waiting for that until ctx ends.
func (c *Client) Promote(ctx context.Context, cluster string, id uint64) (*NodeStatus, error) {
	return c.member(ctx, wire.OpPromote, cluster, wire.Member{ID: id})
}

// RemoveMember removes node id, voter or learner, from cluster.
func (c *Client) RemoveMember(ctx context.Context, cluster string, id uint64) (*NodeStatus, error) {
	return c.member(ctx, wire.OpRemoveMember, cluster, wire.Member{ID: id})
}

// ReplaceNode replaces member dead of cluster with a new node id at addr
// (as AddLearner takes it; already running with an empty data directory
// and --join): it adds the new node as a learner, promotes it once it has
// caught up, then removes dead. If the new node took dead's client
// address (a machine or pod restarted on a new disk), dead is removed
// first, as etcd replaces a member: two members of a cluster may not share
// an address, and the cluster runs on the others until the new node is
// promoted. progress, if not nil, is called before each step. Steps
// already done, as the cluster leader's member list shows, are skipped, so
// a failed replace is resumed by calling it again with the same arguments.
func (c *Client) ReplaceNode(ctx context.Context, cluster string, dead, id uint64, addr string, progress func(step string)) (*NodeStatus, error) {
	if dead == id {
		return nil, &Error{Code: CodeInvalid, Op: "replace", Message: fmt.Sprintf("the new node needs a new id, not the dead node's %d", dead)}
	}
	say := func(s string) {
		if progress != nil {
			progress(s)
		}
	}
	lead, err := c.clusterLeader(ctx, cluster)
	if err != nil {
		return nil, err
	}
	deadM, deadIn := findMember(lead.Members, dead)
	newM, newIn := findMember(lead.Members, id)
	if a, _ := wire.SplitAddrs(addr); deadIn && deadM.Addr == a {
		say(fmt.Sprintf("removing node %d from %s first: node %d takes its address %s", dead, cluster, id, a))
		if lead, err = c.RemoveMember(ctx, cluster, dead); err != nil {
			return nil, err
		}
		deadIn = false
	}
	if !newIn {
		say(fmt.Sprintf("adding node %d at %s to %s as a learner", id, addr, cluster))
		if lead, err = c.AddLearner(ctx, cluster, id, addr); err != nil {
			return nil, err
		}
	}
	if !newM.Voter {
		say(fmt.Sprintf("waiting for node %d to catch up, then promoting it", id))
		if lead, err = c.Promote(ctx, cluster, id); err != nil {
			return nil, err
		}
	}
	if deadIn {
		say(fmt.Sprintf("removing node %d from %s", dead, cluster))
		return c.RemoveMember(ctx, cluster, dead)
	}
	return lead, nil
}

// clusterLeader returns the status of cluster's leader, with its member
// list, waiting for one while ctx lasts.
func (c *Client) clusterLeader(ctx context.Context, cluster string) (*NodeStatus, error) {
	for {
		st, err := c.Status(ctx)
		if err != nil {
			return nil, err
		}
		i := slices.IndexFunc(st.Clusters, func(cs ClusterStatus) bool { return cs.ID == cluster })
		if i < 0 {
			return nil, &Error{Code: CodeInvalid, Op: "replace", Message: fmt.Sprintf("no cluster %q in the routing table", cluster)}
		}
		for _, n := range st.Clusters[i].Nodes {
			if n.Role == "leader" {
				return &n, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, &Error{Code: CodeTimeout, Op: "replace", Message: fmt.Sprintf("cluster %s has no leader", cluster)}
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// findMember returns member id of ms.
func findMember(ms []MemberStatus, id uint64) (MemberStatus, bool) {
	i := slices.IndexFunc(ms, func(m MemberStatus) bool { return m.ID == id })
	if i < 0 {
		return MemberStatus{}, false
	}
	return ms[i], true
}

// member sends one membership op of a cluster, retrying the answers that
// mean "not yet" until ctx ends.
func (c *Client) member(ctx context.Context, op wire.Op, cluster string, m wire.Member) (*NodeStatus, error) {
	name := op.String()
	if cluster == "" || m.ID == 0 {
		return nil, &Error{Code: CodeInvalid, Op: name, Message: name + " needs a cluster and a nonzero node id"}
	}
	resp, err := c.retryMember(ctx, name, &wire.Request{Op: op, Path: "/", Cluster: cluster, Member: &m})
	if err != nil {
		return nil, err
	}
	if resp.Node == nil {
		return nil, &Error{Code: CodeInternal, Op: name, Message: name + ": the answer carries no node status"}
	}
	return nodeFromWire(resp.Node), nil
}

// Membership of the routers' own Raft group, which keeps the routing
// table. Like a cluster's, each call is idempotent and retried while the
// answer is UNAVAILABLE or TIMEOUT; each returns the group's routers after
// the change (raft id and addresses).

// AddRouter adds router id (its --raft-id) to the routers' group as a
// learner: addr is its client address, peer its peer address. The router
// must already run with an empty --data and --join, its --peers listing
// itself and the current routers; the table reaches it from the group's
// leader.
func (c *Client) AddRouter(ctx context.Context, id uint64, addr, peer string) ([]RouterStatus, error) {
	return c.routerMember(ctx, wire.OpAddLearner, wire.Member{ID: id, Addr: addr, PeerAddr: peer})
}

// PromoteRouter makes learner router id a voter of the routers' group once
// it has caught up, waiting for that until ctx ends.
func (c *Client) PromoteRouter(ctx context.Context, id uint64) ([]RouterStatus, error) {
	return c.routerMember(ctx, wire.OpPromote, wire.Member{ID: id})
}

// RemoveRouter removes router id, voter or learner, from the routers'
// group. Removing the last voter is refused.
func (c *Client) RemoveRouter(ctx context.Context, id uint64) ([]RouterStatus, error) {
	return c.routerMember(ctx, wire.OpRemoveMember, wire.Member{ID: id})
}

func (c *Client) routerMember(ctx context.Context, op wire.Op, m wire.Member) ([]RouterStatus, error) {
	name := op.String()
	if m.ID == 0 {
		return nil, &Error{Code: CodeInvalid, Op: name, Message: name + " of a router needs its nonzero raft id"}
	}
	resp, err := c.retryMember(ctx, name, &wire.Request{Op: op, Path: "/", Flags: wire.FlagMetaGroup, Member: &m})
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, &Error{Code: CodeInternal, Op: name, Message: name + ": the answer lists no routers"}
	}
	return statusFromWire(resp.Status).Routers, nil
}

// retryMember sends a membership request, retrying the answers that mean
// "not yet" (UNAVAILABLE, TIMEOUT: no leader, a change in progress, a
// learner still catching up) until ctx ends.
func (c *Client) retryMember(ctx context.Context, name string, req *wire.Request) (*wire.Response, error) {
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	backoff := 50 * time.Millisecond
	for {
		r := *req
		resp, err := c.call(ctx, name, &r)
		if err == nil {
			return resp, nil
		}
		var ce *Error
		if !errors.As(err, &ce) || (ce.Code != CodeUnavailable && ce.Code != CodeTimeout) || ctx.Err() != nil {
			return nil, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, err
		}
		backoff = min(2*backoff, time.Second)
	}
}
