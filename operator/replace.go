package operator

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/cleavefs/cleave/client"
	cleavev1 "github.com/cleavefs/cleave/operator/apis/cleave/v1alpha1"
	"github.com/cleavefs/cleave/wire"
)

// A node pod whose volume was lost starts under a new raft id (its pods
// run with --rejoin-wiped) and says which id it replaces in its status
// (NodeStatus.Replaces). The operator then runs the replacement through
// the routers, as `cleave node replace` does by hand (client.ReplaceNode):
// the new node has the old one's address, so the old id is removed first,
// then the new one is added as a learner and promoted once it has caught
// up by snapshot. Steps already done are skipped, so a replacement cut
// short by replaceTimeout or an operator restart continues at the next
// sync.

// replaceTimeout bounds the replacements of one sync.
const replaceTimeout = 30 * time.Second

// replacement is a node that took over from a member whose data was lost.
type replacement struct {
	cluster   string
	dead, id  uint64
	addr      string // "CLIENT/PEER", as AddLearner takes it
	remaining string // why it is not done, for the status
}

// replacements returns the nodes in st that report replacing another id,
// once each.
func replacements(st *client.Status) []replacement {
	var out []replacement
	for _, c := range st.Clusters {
		for _, n := range c.Nodes {
			if n.Replaces == 0 || n.Replaces == n.ID || slices.ContainsFunc(out, func(r replacement) bool { return r.id == n.ID }) {
				continue
			}
			out = append(out, replacement{cluster: c.ID, dead: n.Replaces, id: n.ID, addr: wire.JoinAddrs(n.Addr, n.PeerAddr)})
		}
	}
	return out
}

// replaceWiped runs the replacement of every node in st that reports one
// and returns those not finished within replaceTimeout, with why.
func (c *Controller) replaceWiped(ctx context.Context, s *cleavev1.CleaveStore, admin Admin, st *client.Status) []replacement {
	todo := replacements(st)
	if len(todo) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, replaceTimeout)
	defer cancel()
	var left []replacement
	for _, r := range todo {
		c.recorder.Eventf(s, corev1.EventTypeWarning, ReasonNodeReplacing,
			"node %d of %s lost its volume and restarted as node %d; replacing %d with %d (removal of %d, learner, snapshot, promotion)",
			r.dead, r.cluster, r.id, r.dead, r.id, r.dead)
		if _, err := admin.ReplaceNode(ctx, r.cluster, r.dead, r.id, r.addr, nil); err != nil {
			r.remaining = err.Error()
			left = append(left, r)
			continue
		}
		c.recorder.Eventf(s, corev1.EventTypeNormal, ReasonNodeReplaced, "node %d replaced node %d in %s", r.id, r.dead, r.cluster)
	}
	return left
}

// String says what the status reports of r.
func (r replacement) String() string {
	msg := fmt.Sprintf("node %d of %s lost its volume; node %d is replacing it", r.dead, r.cluster, r.id)
	if r.remaining != "" {
		msg += " (" + r.remaining + ")"
	}
	return msg
}
