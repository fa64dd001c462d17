package router

import (
	"sync"

	"github.com/cleavefs/cleave/internal/gossip"
)

// Gossip: the router joins the deployment's memberlist pool.
// A node that gossips that it leads its cluster becomes that cluster's
// cached leader at once, and a node memberlist declares dead is dropped
// from the cache and shown dead in status. Gossip only chooses where to try
// first: a stale hint costs one NOT_LEADER retry, never correctness.
// News about an address the routing table does not list for the member's
// cluster is ignored (replicas.go, acceptLeader): a stranger in the pool
// cannot become a leader, nor be marked alive or dead.

// liveness is what gossip says about node addresses.
type liveness struct {
	mu   sync.Mutex
	dead map[string]bool // node address → declared dead (false: alive)
}

func (l *liveness) set(addr string, dead bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dead == nil {
		l.dead = map[string]bool{}
	}
	l.dead[addr] = dead
}

// of returns "alive", "dead", or "" when gossip has not seen addr.
func (l *liveness) of(addr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	dead, ok := l.dead[addr]
	switch {
	case !ok:
		return ""
	case dead:
		return "dead"
	}
	return "alive"
}

// startGossip joins the pool when Config.Gossip is set.
func (r *Router) startGossip() error {
	if r.cfg.Gossip == "" {
		return nil
	}
	p, err := gossip.Start(gossip.Config{
		Bind:      r.cfg.Gossip,
		Advertise: r.cfg.GossipAdvertise,
		Seeds:     r.cfg.GossipSeeds,
		Keys:      r.cfg.GossipKeys,
		Logger:    r.log,
		Meta: func() gossip.Meta {
			m := gossip.Meta{Role: "router", ID: r.cfg.ID, Addr: r.Addr(), PID: r.cfg.PID}
			if r.meta != nil {
				st := r.meta.Replica().Status()
				m.Leader, m.Applied = st.Role == "leader", st.Applied
			}
			return m
		},
		OnChange: r.gossiped,
	})
	if err != nil {
		return err
	}
	r.gossip = p
	return nil
}

// gossiped updates the leader cache and liveness from one member's news.
func (r *Router) gossiped(m gossip.Member) {
	if m.Meta.Role == "router" && !m.Alive && r.meta != nil {
		// It may have led the meta group: an idle group elects within
		// the usual timeout only once woken (replica.Replica.Wake).
		r.meta.Replica().Wake()
	}
	if m.Meta.Role != "node" || m.Meta.Addr == "" {
		return
	}
	if !r.acceptLeader(m.Meta.Cluster, m.Meta.Addr, "gossip") {
		return
	}
	r.live.set(m.Meta.Addr, !m.Alive)
	switch {
	case !m.Alive:
		r.forgetLeader(m.Meta.Cluster, m.Meta.Addr)
	case m.Meta.Leader:
		r.setLeader(m.Meta.Cluster, m.Meta.Addr)
	}
}
