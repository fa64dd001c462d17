package up

// Splits under `cleave up` (docs/split.md, "Splits under cleave up").
//
// The routers' meta group drives a split once its new nodes run; under
// `cleave up` the supervisor is who starts them. A split request (from
// `cleave split` through the admin socket, or from the auto-splitter)
// chooses the new cluster's id, raft ids and ports, records the cluster in
// up.json as pending (so a restart starts its nodes again), starts its
// nodes with --join and asks the routers to split. reconcile then follows
// the split's record in the meta group: when it is cleaned the ranges in
// up.json are taken from the routing table and the cluster is no longer
// pending; when it is abandoned (or was never recorded) the new nodes are
// stopped and the cluster is dropped from up.json with its data.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// SplitRequest asks the supervisor to split a cluster.
type SplitRequest struct {
	Cluster    string `json:"cluster"`               // the source cluster
	NewCluster string `json:"new_cluster,omitempty"` // the new cluster's id; "" picks the next cN
	At         uint64 `json:"at,omitempty"`          // cut point; 0 = the middle of the source's range
}

// nodeStartTimeout bounds the wait for a new node to answer after it is
// started.
const nodeStartTimeout = 30 * time.Second

// supervisor is the running `cleave up`: its children and its topology,
// which splits change while it runs.
type supervisor struct {
	cfg   Config
	log   *slog.Logger
	procs *procs

	splitMu sync.Mutex // one split request or reconcile at a time

	mu   sync.Mutex // guards topo and writing up.json
	topo *Topology
}

func newSupervisor(ctx context.Context, cfg Config, topo *Topology, log *slog.Logger) *supervisor {
	return &supervisor{cfg: cfg, log: log, topo: topo, procs: newProcs(ctx, cfg.StopTimeout, log)}
}

// dial connects a client to every router of the deployment.
func (s *supervisor) dial(ctx context.Context) (*client.Client, error) {
	s.mu.Lock()
	routers := s.topo.RouterAddrs()
	s.mu.Unlock()
	opts := []client.Option{client.WithToken(s.cfg.Token), client.WithClientName("cleave-up")}
	if s.cfg.clientTLS != nil {
		opts = append(opts, client.WithTLS(s.cfg.clientTLS))
	}
	return client.Dial(ctx, routers, append(opts, client.WithLogger(slog.New(slog.DiscardHandler)))...)
}

// split starts the split of req.Cluster: new nodes first, then the
// routers' split. It returns the planned record; the meta leader drives the
// rest. A request for a split already in progress returns its record.
func (s *supervisor) split(ctx context.Context, req SplitRequest) (client.SplitStatus, error) {
	s.splitMu.Lock()
	defer s.splitMu.Unlock()
	c, err := s.dial(ctx)
	if err != nil {
		return client.SplitStatus{}, err
	}
	defer c.Close()
	splits, err := c.Splits(ctx)
	if err != nil {
		return client.SplitStatus{}, fmt.Errorf("read splits: %w", err)
	}
	var taken []string
	for _, sp := range splits {
		taken = append(taken, sp.NewCluster)
		if sp.Phase.Final() {
			continue
		}
		if sp.Cluster == req.Cluster && (req.NewCluster == "" || req.NewCluster == sp.NewCluster) {
			return sp, nil // a retry of the request that started it
		}
		return client.SplitStatus{}, &wire.Error{Code: wire.Conflict, Message: fmt.Sprintf("split %d of %s into %s is in progress (%s); one split at a time", sp.ID, sp.Cluster, sp.NewCluster, sp.Phase)}
	}

	s.mu.Lock()
	spec, err := s.planCluster(req, taken)
	var chs []child
	if err == nil {
		s.topo.Clusters = append(s.topo.Clusters, spec)
		if err = SaveTopology(s.cfg.DataDir, s.topo); err != nil {
			s.topo.Clusters = s.topo.Clusters[:len(s.topo.Clusters)-1]
		} else {
			chs = nodeChildren(s.cfg, s.topo, spec)
		}
	}
	s.mu.Unlock()
	if err != nil {
		return client.SplitStatus{}, err
	}
	s.log.Info("split: starting the new cluster's nodes", "cluster", req.Cluster, "new_cluster", spec.ID, "nodes", len(spec.Nodes))
	for _, ch := range chs {
		s.procs.start(ch)
	}
	members := spec.Info().Members
	rec, err := func() (*client.SplitStatus, error) {
		if err := s.waitNodes(ctx, members); err != nil {
			return nil, err
		}
		nodes := make([]client.Member, len(members))
		for i, m := range members {
			nodes[i] = client.Member(m)
		}
		return c.Split(ctx, client.SplitSpec{Cluster: req.Cluster, NewCluster: spec.ID, Nodes: nodes, At: req.At})
	}()
	if err != nil {
		s.drop(spec.ID, "the split was not started: "+err.Error())
		return client.SplitStatus{}, err
	}
	s.log.Info("split: planned", "split", rec.ID, "cluster", rec.Cluster, "new_cluster", rec.NewCluster, "at", fmt.Sprintf("%#016x", rec.At))
	return *rec, nil
}

// planCluster chooses the new cluster of a split of req.Cluster: its id,
// as many nodes as the source has, raft ids above every one in up.json and
// free loopback ports. Called with s.mu held.
func (s *supervisor) planCluster(req SplitRequest, taken []string) (ClusterSpec, error) {
	t := s.topo
	src, ok := t.Cluster(req.Cluster)
	if !ok {
		return ClusterSpec{}, &wire.Error{Code: wire.NotFound, Message: fmt.Sprintf("no cluster %s in %s", req.Cluster, TopologyFile)}
	}
	if src.Pending {
		return ClusterSpec{}, &wire.Error{Code: wire.Conflict, Message: fmt.Sprintf("cluster %s is itself being split off", src.ID)}
	}
	id := req.NewCluster
	if id == "" {
		id = t.nextClusterID(taken...)
	} else if _, dup := t.Cluster(id); dup || slices.Contains(taken, id) {
		return ClusterSpec{}, &wire.Error{Code: wire.Exists, Message: fmt.Sprintf("cluster id %s is taken", id)}
	}
	used := t.addrs()
	addrs, err := FreePorts(4*len(src.Nodes), used...)
	if err != nil {
		return ClusterSpec{}, err
	}
	spec := ClusterSpec{ID: id, Parent: src.ID, Pending: true}
	next := t.nextNodeID()
	for i := range src.Nodes {
		spec.Nodes = append(spec.Nodes, NodeSpec{ID: next + uint64(i), Addr: addrs[4*i], Gossip: addrs[4*i+1], Peer: addrs[4*i+2], HTTP: addrs[4*i+3]})
	}
	return spec, nil
}

// waitNodes waits until every member answers STATUS.
func (s *supervisor) waitNodes(ctx context.Context, members []wire.Member) error {
	ctx, cancel := context.WithTimeout(ctx, nodeStartTimeout)
	defer cancel()
	for _, m := range members {
		for {
			dctx, dcancel := context.WithTimeout(ctx, time.Second)
			conn, err := rpc.Dial(dctx, m.Addr, rpc.DialConfig{Client: "cleave-up", Token: s.cfg.Token, TLS: s.cfg.clientTLS})
			if err == nil {
				_, err = conn.Call(dctx, &wire.Request{Op: wire.OpStatus})
				conn.Close()
			}
			dcancel()
			if err == nil {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("new node %d at %s did not answer within %v (see its log): %w", m.ID, m.Addr, nodeStartTimeout, err)
			case <-time.After(100 * time.Millisecond): // poll interval
			}
		}
	}
	return nil
}

// drop stops the nodes of pending cluster id, removes it from up.json and
// deletes its data.
func (s *supervisor) drop(id, why string) {
	s.mu.Lock()
	c, ok := s.topo.Cluster(id)
	if !ok || !c.Pending {
		s.mu.Unlock()
		return
	}
	spec := *c
	s.mu.Unlock()
	s.log.Warn("split: dropping the new cluster", "new_cluster", id, "why", why)
	for _, n := range spec.Nodes {
		s.procs.stop(nodeName(spec, n))
	}
	s.mu.Lock()
	s.topo.Clusters = slices.DeleteFunc(s.topo.Clusters, func(c ClusterSpec) bool { return c.ID == id })
	err := SaveTopology(s.cfg.DataDir, s.topo)
	s.mu.Unlock()
	if err != nil {
		s.log.Error("split: cannot save the topology", "err", err)
		return
	}
	if err := os.RemoveAll(filepath.Join(s.cfg.DataDir, id)); err != nil {
		s.log.Warn("split: cannot remove the dropped cluster's data", "err", err)
	}
}

// reconcileLoop calls reconcile every second until ctx is done.
func (s *supervisor) reconcileLoop(ctx context.Context) {
	first := true
	for {
		if err := s.reconcile(ctx, first); err != nil && ctx.Err() == nil {
			s.log.Debug("split: reconcile", "err", err)
		} else if err == nil {
			first = false
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second): // poll interval
		}
	}
}

// reconcile brings the pending clusters of up.json in line with their
// splits' records. orphans: also drop a pending cluster whose split is not
// recorded at all (a supervisor that crashed between saving up.json and
// asking for the split); only safe before this process asked for any split.
func (s *supervisor) reconcile(ctx context.Context, orphans bool) error {
	if !s.splitMu.TryLock() {
		return nil // a split request is running; it leaves things consistent
	}
	defer s.splitMu.Unlock()
	s.mu.Lock()
	var pending []ClusterSpec
	for _, c := range s.topo.Clusters {
		if c.Pending {
			pending = append(pending, c)
		}
	}
	s.mu.Unlock()
	if len(pending) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	c, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	splits, err := c.Splits(ctx)
	if err != nil {
		return err
	}
	for _, pc := range pending {
		i := slices.IndexFunc(splits, func(sp client.SplitStatus) bool {
			return sp.NewCluster == pc.ID && sp.Cluster == pc.Parent && sp.Phase != client.SplitAbandoned
		})
		if i < 0 {
			abandoned := slices.ContainsFunc(splits, func(sp client.SplitStatus) bool { return sp.NewCluster == pc.ID && sp.Phase == client.SplitAbandoned })
			if abandoned || orphans {
				s.drop(pc.ID, "its split was abandoned or never recorded")
			}
			continue
		}
		if splits[i].Phase != client.SplitCleaned {
			continue
		}
		tab, err := c.Table(ctx)
		if err != nil {
			return err
		}
		if err := s.settle(pc.ID, tab); err != nil {
			return err
		}
		s.log.Info("split: done; up.json updated", "split", splits[i].ID, "cluster", pc.Parent, "new_cluster", pc.ID)
	}
	return nil
}

// settle marks cluster id as no longer pending and takes every cluster's
// range from the routing table tab.
func (s *supervisor) settle(id string, tab *client.RoutingTable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := *s.topo
	next.Clusters = slices.Clone(s.topo.Clusters)
	for i := range next.Clusters {
		c := &next.Clusters[i]
		for _, o := range tab.Ranges {
			if o.Cluster == c.ID {
				c.Range = wire.Range(o.Range)
				if c.ID == id {
					c.Pending = false
				}
			}
		}
	}
	if err := SaveTopology(s.cfg.DataDir, &next); err != nil {
		return err
	}
	*s.topo = next
	return nil
}

// ErrNoSupervisor says no `cleave up` answers on a data directory's admin
// socket.
var ErrNoSupervisor = errors.New("up: no cleave up is running on this data directory")
