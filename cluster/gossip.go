package cluster

import (
	"strconv"

	"github.com/cleavefs/cleave/internal/gossip"
)

// startGossip joins the deployment's gossip pool (Config.Gossip), telling
// it this node's cluster and leadership, so routers find leaders and
// notice deaths without polling. The meta leaves out the applied index:
// it changes with every write, and each change of a member's meta is
// broadcast to, and re-sent by, every member of the pool, a cost per node
// that grows with the number of nodes. Nothing reads it from gossip
// (status asks the nodes).
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
			return gossip.Meta{
				Role: "node", ID: strconv.FormatUint(n.cfg.NodeID, 10), Cluster: n.cfg.ClusterID,
				Leader: n.rep.Status().Role == "leader", Addr: n.Addr(), PID: n.cfg.PID,
			}
		},
	})
	if err != nil {
		return err
	}
	n.gossip = p
	return nil
}
