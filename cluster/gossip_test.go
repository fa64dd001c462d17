package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cleavefs/cleave/internal/eventually"
	"github.com/cleavefs/cleave/internal/gossip"
)

// TestGossipQuietUnderWrites: a node's gossip meta says who it is, whether
// it leads, and an applied index at most gossipAppliedEvery old. Writes
// must not make the nodes broadcast a meta update each: each one reaches
// and is re-sent by every member of the pool, a cost that grows with the
// deployment's size. At most one per node may fall in the puts' seconds.
func TestGossipQuietUnderWrites(t *testing.T) {
	var mu sync.Mutex
	last := map[string]gossip.Meta{}
	updates := 0 // meta changes that are not a change of leadership
	obs, err := gossip.Start(gossip.Config{
		Bind: "127.0.0.1:0",
		Meta: func() gossip.Meta { return gossip.Meta{Role: "router", ID: "observer", Addr: "127.0.0.1:1"} },
		OnChange: func(m gossip.Member) {
			if m.Meta.Role != "node" {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if prev, ok := last[m.Name]; ok && m.Alive && prev.Leader == m.Meta.Leader && prev != m.Meta {
				updates++
			}
			last[m.Name] = m.Meta
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer obs.Close()
	mn := newMemberNet(t, 3)
	for id := uint64(1); id <= 3; id++ {
		cfg := mn.cfgs[id]
		cfg.Gossip, cfg.GossipSeeds = "127.0.0.1:0", []string{obs.Addr()}
		mn.cfgs[id] = cfg
		mn.start(id)
	}
	lead := mn.leader()
	eventually.Holds(t, 20*time.Second, "the observer to see the leader", func() error {
		mu.Lock()
		defer mu.Unlock()
		m := last[fmt.Sprintf("node/%d", lead)]
		return eventually.True(m.Leader, "meta %+v", m)
	})
	mu.Lock()
	updates = 0
	mu.Unlock()
	for i := range 40 {
		mn.put(lead, i)                   // follows the leader if it moves on a busy machine
		time.Sleep(25 * time.Millisecond) // spread over several of the nodes' 250 ms meta refreshes
	}
	mn.waitSameState(1, 2, 3)
	time.Sleep(time.Second) // the last refresh and its gossip
	mu.Lock()
	defer mu.Unlock()
	if updates > 3 {
		t.Errorf("40 puts made the nodes gossip %d meta updates (last seen: %+v), want at most one per node", updates, last)
	}
}
