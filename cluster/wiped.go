package cluster

// A node started on an empty data directory, with its bootstrap flags or
// with --join, is either new (a member of a new cluster starting for the
// first time or late, a joiner) or a member whose disk was lost. Raft
// cannot tell: the second would run under its old raft id, having
// forgotten its vote and every entry it acknowledged (a quorum counted on
// them), and the leader, whose progress still records the old match
// index, would never repair it. So before writing anything, the node asks
// its configured peers (STATUS on the peer plane) and refuses to start if
// one of them saw its id act on durable raft state (lead, vote, answer a
// leader: replica.Member.Acked, kept by every peer across restarts and
// leader changes) or a leader reports having replicated its log to it:
// the node must come back under a new id with --join (`cleave node
// replace`), or take one itself with --rejoin-wiped (identity.go).
// Raft ids are unique across the deployment, so any group's leader may
// report it. docs/robustness.md says what this check sees and what it
// cannot.

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// ErrWipedMember is matched by *WipedMemberError.
var ErrWipedMember = errors.New("cluster: member lost its data")

// wipeCheckTimeout bounds the whole peer query of checkNotWiped: a new
// cluster whose peers are not up yet waits at most this long.
const wipeCheckTimeout = 3 * time.Second

// WipedMemberError is Start's error for a node whose data directory is
// empty although a peer saw its raft id act on durable raft state.
type WipedMemberError struct {
	Node     uint64 // this node's raft id
	Cluster  string // the cluster of the peer that reported it
	Peer     uint64 // the peer that reported it
	PeerAddr string // the peer's peer address
	Match    uint64 // the log index the peer, if leader, knows this node held; 0 if not known
}

func (e *WipedMemberError) Error() string {
	seen := "saw it lead, vote or answer a leader"
	if e.Match > 0 {
		seen = fmt.Sprintf("as leader replicated the log to it up to index %d", e.Match)
	}
	return fmt.Sprintf("cluster: node %d of cluster %s has an empty data directory, but its peer (node %d at %s) "+
		"%s: its disk was lost or wiped. Starting it again under raft id %d would "+
		"forget its vote and the entries it acknowledged, so it does not start. Replace it under a new id: start the "+
		"new node with --join on an empty directory, then run `cleave node replace --cluster %s --dead %d --id NEW --addr ADDR`",
		e.Node, e.Cluster, e.Peer, e.PeerAddr, seen, e.Node, e.Cluster, e.Node)
}

// Is makes errors.Is(err, ErrWipedMember) true.
func (e *WipedMemberError) Is(target error) bool { return target == ErrWipedMember }

// peerDialConfig is how this node dials its peers' peer listeners.
func (n *Node) peerDialConfig() rpc.DialConfig {
	dc := rpc.DialConfig{Client: "node-" + strconv.FormatUint(n.cfg.NodeID, 10), Token: n.cfg.Token, MaxFrame: n.cfg.MaxFrame}
	if n.cfg.PeerTLS != nil {
		dc.TLS = n.cfg.PeerTLS.ClientConfig()
	}
	return dc
}

// checkNotWiped returns a *WipedMemberError if a configured peer, or a
// leader one of them names, saw this node's id act on durable raft state.
// Peers that do not answer within wipeCheckTimeout are taken as not up
// yet (a new cluster).
func (n *Node) checkNotWiped() error {
	ctx, cancel := context.WithTimeout(context.Background(), wipeCheckTimeout)
	defer cancel()
	var addrs []string
	for id, addr := range n.cfg.Peers {
		if id != n.cfg.NodeID {
			addrs = append(addrs, addr)
		}
	}
	sts := n.peerStatuses(ctx, addrs)
	if err := n.wipedBy(sts); err != nil {
		return err
	}
	// A configured peer may follow a leader that joined after this node's
	// flags were written: ask the leaders they name once.
	asked := map[string]bool{}
	for _, a := range addrs {
		asked[a] = true
	}
	var more []string
	for _, st := range sts {
		for _, m := range st.Members {
			if m.ID == st.Leader && m.PeerAddr != "" && !asked[m.PeerAddr] {
				asked[m.PeerAddr] = true
				more = append(more, m.PeerAddr)
			}
		}
	}
	return n.wipedBy(n.peerStatuses(ctx, more))
}

// wipedBy is checkNotWiped's rule over the statuses peers answered.
func (n *Node) wipedBy(sts []*wire.NodeStatus) error {
	for _, st := range sts {
		for _, m := range st.Members {
			if m.ID == n.cfg.NodeID && (m.Acked || m.Match > 0) {
				return &WipedMemberError{Node: n.cfg.NodeID, Cluster: st.Cluster, Peer: st.ID, PeerAddr: st.PeerAddr, Match: m.Match}
			}
		}
	}
	return nil
}

// peerStatuses asks each of addrs for its STATUS at once and returns the
// answers that came before ctx ended; failures are logged and skipped.
func (n *Node) peerStatuses(ctx context.Context, addrs []string) []*wire.NodeStatus {
	var (
		mu  sync.Mutex
		out []*wire.NodeStatus
		wg  sync.WaitGroup
	)
	dc := n.peerDialConfig()
	for _, addr := range addrs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := peerStatus(ctx, addr, dc)
			if err != nil {
				n.log.Info("empty data directory: peer did not answer the membership check", "peer", addr, "err", err)
				return
			}
			mu.Lock()
			out = append(out, st)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

// peerStatus asks the node at peer address addr for its STATUS.
func peerStatus(ctx context.Context, addr string, dc rpc.DialConfig) (*wire.NodeStatus, error) {
	c, err := rpc.Dial(ctx, addr, dc)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpStatus})
	if err != nil {
		return nil, err
	}
	if err := resp.Err(); err != nil {
		return nil, err
	}
	if resp.Node == nil {
		return nil, errors.New("status answer without a node status")
	}
	return resp.Node, nil
}
