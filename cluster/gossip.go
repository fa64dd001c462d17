package cluster

import (
	"strconv"

	"github.com/cleavefs/cleave/internal/gossip"
)

// startGossip joins the deployment's gossip pool (Config.Gossip), telling
// it this node's cluster, leadership and applied index, so routers find
// leaders and notice deaths without polling.
func (n *Node) startGossip() error {
	if n.cfg.Gossip == "" {
		return nil
	}
	p, err := gossip.Start(gossip.Config{
		Bind:      n.cfg.Gossip,
		Advertise: n.cfg.GossipAdvertise,
		Seeds:     n.cfg.GossipSeeds,
		Keys:      n.cfg.GossipKeys,
		Logger:    n.log,
		Meta: func() gossip.Meta {
			st := n.rep.Status()
			return gossip.Meta{
				Role: "node", ID: strconv.FormatUint(n.cfg.NodeID, 10), Cluster: n.cfg.ClusterID,
				Leader: st.Role == "leader", Applied: st.Applied, Addr: n.Addr(), PID: n.cfg.PID,
			}
		},
	})
	if err != nil {
		return err
	}
	n.gossip = p
	return nil
}
