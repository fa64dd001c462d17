package cluster

import (
	"strconv"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/gossip"
)

// gossipAppliedEvery is how often a node's gossip meta may carry a newer
// applied index: each change of a member's meta is broadcast to, and
// re-sent by, every member of the pool, so an index that moved with every
// write made every node broadcast under load, a cost per node that grows
// with the deployment. Leadership changes go out at once.
const gossipAppliedEvery = 10 * time.Second

// startGossip joins the deployment's gossip pool (Config.Gossip), telling
// it this node's cluster, leadership and applied index (at most
// gossipAppliedEvery old), so routers find leaders and notice deaths
// without polling.
func (n *Node) startGossip() error {
	if n.cfg.Gossip == "" {
		return nil
	}
	var (
		mu      sync.Mutex // Meta is called from the pool's goroutines
		applied uint64     // the applied index the meta carries
		at      time.Time  // when it was taken
	)
	p, err := gossip.Start(gossip.Config{
		Bind:      n.cfg.Gossip,
		Advertise: n.cfg.GossipAdvertise,
		Seeds:     n.cfg.GossipSeeds,
		Keys:      n.cfg.GossipKeys,
		Logger:    n.log,
		OnChange:  n.gossipChanged,
		Meta: func() gossip.Meta {
			st := n.rep.Status()
			mu.Lock()
			if now := time.Now(); now.Sub(at) >= gossipAppliedEvery {
				applied, at = st.Applied, now
			}
			a := applied
			mu.Unlock()
			return gossip.Meta{
				Role: "node", ID: strconv.FormatUint(n.cfg.NodeID, 10), Cluster: n.cfg.ClusterID,
				Leader: st.Role == "leader", Applied: a, Addr: n.Addr(), PID: n.cfg.PID,
			}
		},
	})
	if err != nil {
		return err
	}
	n.gossip = p
	return nil
}

// gossipChanged wakes an idle replica (replica.Replica.Wake) when gossip
// reports a member of its group dead: if it was the leader, the group
// elects within the usual election timeout instead of the idle one.
func (n *Node) gossipChanged(m gossip.Member) {
	if m.Alive || m.Meta.Role != "node" {
		return
	}
	id, err := strconv.ParseUint(m.Meta.ID, 10, 64)
	if err != nil || id == n.cfg.NodeID {
		return
	}
	for _, mem := range n.rep.Members() {
		if mem.ID == id {
			n.rep.Wake()
			return
		}
	}
}
