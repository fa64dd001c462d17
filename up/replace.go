package up

import (
	"context"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// Replacing a node whose process keeps dying ("replace a dead node"). A node that exits flapExits times within flapWindow has
// something wrong with it or its disk that restarting will not fix; the
// supervisor gives it up and puts a fresh node in its place: a new raft id
// (ids are never reused: a node that forgot its votes must not come back
// under its old id), a new port and an empty data directory, started with
// --join. The routers then add it as a learner, promote it once it has
// caught up by snapshot and log, and remove the dead member
// (client.ReplaceNode). up.json records the change before anything starts,
// so a restart of `cleave up` runs the new node, not the old one.

// replaceTimeout bounds one replacement, snapshot included.
const replaceTimeout = 5 * time.Minute

// flapped is the procs hook: it takes over a flapping node (returns true)
// and leaves routers and unknown children to be restarted (false). The
// replacement runs under ctx, the node's supervision context, so it stops
// when the supervisor does; only the replacement itself stops the node it
// takes over, after its last use of ctx.
func (s *supervisor) flapped(ctx context.Context, name string) bool {
	s.mu.Lock()
	var cluster string
	var dead uint64
	for _, c := range s.topo.Clusters {
		for _, n := range c.Nodes {
			if nodeName(c, n) == name && !c.Pending {
				cluster, dead = c.ID, n.ID
			}
		}
	}
	s.mu.Unlock()
	if cluster == "" {
		return false
	}
	go func() {
		if err := s.replaceNode(ctx, cluster, dead); err != nil {
			s.log.Error("replace: failed; restarting the old node", "cluster", cluster, "node", dead, "err", err)
		}
	}()
	return true
}

// replaceNode replaces node dead of cluster with a fresh node, within
// replaceTimeout and while ctx is live. On failure the old node is put back
// and supervised again.
func (s *supervisor) replaceNode(ctx context.Context, cluster string, dead uint64) error {
	s.splitMu.Lock() // one topology change at a time (splits too)
	defer s.splitMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, replaceTimeout)
	defer cancel()

	s.mu.Lock()
	c, ok := s.topo.Cluster(cluster)
	if !ok {
		s.mu.Unlock()
		return fmt.Errorf("no cluster %s", cluster)
	}
	i := slices.IndexFunc(c.Nodes, func(n NodeSpec) bool { return n.ID == dead })
	if i < 0 {
		s.mu.Unlock()
		return fmt.Errorf("no node %d in %s", dead, cluster)
	}
	old := c.Nodes[i]
	addrs, err := FreePorts(4, s.topo.addrs()...)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	fresh := NodeSpec{ID: s.topo.nextNodeID(), Addr: addrs[0], Gossip: addrs[1], Peer: addrs[2], HTTP: addrs[3], Join: true}
	c.Nodes[i] = fresh
	spec := *c
	if err := SaveTopology(s.cfg.DataDir, s.topo); err != nil {
		c.Nodes[i] = old
		s.mu.Unlock()
		return err
	}
	chs := nodeChildren(s.cfg, s.topo, spec)
	s.mu.Unlock()

	putBack := func(why error) error {
		s.mu.Lock()
		if c, ok := s.topo.Cluster(cluster); ok {
			if j := slices.IndexFunc(c.Nodes, func(n NodeSpec) bool { return n.ID == fresh.ID }); j >= 0 {
				c.Nodes[j] = old
			}
			SaveTopology(s.cfg.DataDir, s.topo)
			spec = *c
		}
		chs := nodeChildren(s.cfg, s.topo, spec)
		s.mu.Unlock()
		s.procs.stop(nodeName(spec, fresh))
		s.procs.stop(nodeName(spec, old)) // the given-up supervision
		for _, ch := range chs {
			if ch.name == nodeName(spec, old) {
				s.procs.start(ch)
			}
		}
		return why
	}

	s.log.Warn("replace: node keeps dying; starting a fresh node in its place",
		"cluster", cluster, "dead", dead, "new", fresh.ID, "addr", fresh.Addr)
	for _, ch := range chs {
		if ch.name == nodeName(spec, fresh) {
			s.procs.start(ch)
		}
	}
	if err := s.waitNodes(ctx, spec.Info().Members[i:i+1]); err != nil {
		return putBack(err)
	}
	cl, err := s.dial(ctx)
	if err != nil {
		return putBack(err)
	}
	defer cl.Close()
	if _, err := cl.ReplaceNode(ctx, cluster, dead, fresh.ID, wire.JoinAddrs(fresh.Addr, fresh.Peer), func(step string) {
		s.log.Info("replace: " + step)
	}); err != nil {
		return putBack(err)
	}
	s.procs.stop(nodeName(spec, old))
	if err := os.RemoveAll(nodeDir(s.cfg.DataDir, spec, old)); err != nil {
		s.log.Warn("replace: cannot remove the dead node's data", "err", err)
	}
	s.log.Warn("replace: done", "cluster", cluster, "dead", dead, "new", fresh.ID)
	return nil
}
