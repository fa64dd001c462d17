package replica

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// peerQueue bounds the raft messages waiting for one peer; beyond it
// messages are dropped and raft retransmits.
const peerQueue = 4096

// WireTransport carries raft messages to peers as one-way OpRaft frames over
// the wire protocol; it serves storage clusters and the routers' meta group
// alike. The receiving side is Replica.ServeWire. Send never blocks: each peer has a bounded queue drained by
// its own goroutine, which (re)dials through the pool.
//
// Peers' addresses come from the flags at start and, for every other
// member, from replicated state: a message to an unknown id looks the id up
// in the replica's member list (addresses recorded by bootstrap and by
// membership changes, persisted, restored by snapshots), so members added
// later, and members known only from state after a restart, are reachable.
// A member's address record is wire.JoinAddrs's form of its client and
// peer address; the transport dials the peer address.
//
// Snapshots (SendSnapshot) go as a sequence of OpSnapshot calls on the
// peer's pooled connection, each waiting for its answer, so one stream
// holds at most one chunk in flight.
type WireTransport struct {
	closeOnce sync.Once
	self      uint64
	pool      *rpc.Pool
	log       *slog.Logger
	rep       atomic.Pointer[Replica] // set once the replica is open

	mu    sync.Mutex
	peers map[uint64]*peer
	done  chan struct{}
	wg    sync.WaitGroup
}

type peer struct {
	id   uint64
	addr string
	ch   chan outMsg
	stop chan struct{} // closed by Forget
}

// outMsg is a queued raft message with the group of the replica that sent
// it: a fork may replace the replica while its messages are queued.
type outMsg struct {
	g Group
	m *raftpb.Message
}

// NewWireTransport returns a transport for member self that reaches the
// members in addrs, address records by raft id (wire.JoinAddrs's form), and
// any learned later from replicated state, at their peer addresses through
// pool. Call SetReplica once the replica is open, and Close after the
// replica is closed.
func NewWireTransport(self uint64, addrs map[uint64]string, pool *rpc.Pool, log *slog.Logger) *WireTransport {
	t := &WireTransport{self: self, pool: pool, log: log, peers: map[uint64]*peer{}, done: make(chan struct{})}
	t.mu.Lock()
	for id, rec := range addrs {
		if id != self {
			t.addPeerLocked(id, peerAddr(rec))
		}
	}
	t.mu.Unlock()
	return t
}

// SetReplica connects the transport to its replica: for unreachable
// reports and member addresses.
func (t *WireTransport) SetReplica(r *Replica) { t.rep.Store(r) }

func (t *WireTransport) unreachable(id uint64) {
	if r := t.rep.Load(); r != nil {
		r.ReportUnreachable(id)
	}
}

// addrOf returns the peer address of member id: from replicated state,
// else from the flags.
func (t *WireTransport) addrOf(id uint64) string {
	if r := t.rep.Load(); r != nil {
		if a := r.MemberAddr(id); a != "" {
			return peerAddr(a)
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		return p.addr
	}
	return ""
}

// peerLocked returns the peer for id, adding it if its address is known
// from replicated state. t.mu is held.
func (t *WireTransport) peerLocked(id uint64) *peer {
	if p := t.peers[id]; p != nil {
		return p
	}
	r := t.rep.Load()
	if r == nil || id == t.self {
		return nil
	}
	addr := peerAddr(r.MemberAddr(id))
	if addr == "" {
		return nil
	}
	t.log.Info("learned peer address from replicated state", "peer", id, "addr", addr)
	return t.addPeerLocked(id, addr)
}

func (t *WireTransport) addPeerLocked(id uint64, addr string) *peer {
	p := &peer{id: id, addr: addr, ch: make(chan outMsg, peerQueue), stop: make(chan struct{})}
	t.peers[id] = p
	t.wg.Add(1)
	go t.run(p)
	return p
}

// Send implements Transport. It must not block.
func (t *WireTransport) Send(g Group, msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p := t.peerLocked(m.GetTo())
		if p == nil {
			t.log.Debug("raft message to unknown peer dropped", "to", m.GetTo(), "type", m.GetType().String())
			continue
		}
		select {
		case p.ch <- outMsg{g, m}:
		default:
			t.unreachable(m.GetTo())
		}
	}
}

func (t *WireTransport) run(p *peer) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-t.done
		cancel()
	}()
	for {
		var m outMsg
		select {
		case m = <-p.ch:
		case <-t.done:
			return
		case <-p.stop:
			return
		}
		conn, err := t.pool.Get(ctx, p.addr)
		if err != nil {
			// Drop what is queued: raft will resend once the peer is back.
			t.unreachable(p.id)
			drain(p.ch)
			continue
		}
		for {
			data, err := proto.Marshal(m.m)
			if err != nil {
				t.log.Error("marshal raft message", "err", err)
			} else if !conn.Send(&wire.Request{Op: wire.OpRaft, Data: data, Group: m.g.Name, Epoch: m.g.Epoch}) {
				t.unreachable(p.id)
				break
			}
			select {
			case m = <-p.ch:
				continue
			default:
			}
			break
		}
	}
}

func drain(ch chan outMsg) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// snapshotCallTimeout bounds one OpSnapshot call; the last one waits for the
// receiver to install the snapshot.
const snapshotCallTimeout = time.Minute

// SendSnapshot implements SnapshotTransport.
func (t *WireTransport) SendSnapshot(ctx context.Context, m *raftpb.Message, s *SnapshotStream) error {
	to, g := m.GetTo(), s.Group()
	addr := t.addrOf(to)
	if addr == "" {
		return fmt.Errorf("snapshot to %d: address unknown", to)
	}
	raw, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("snapshot to %d: %w", to, err)
	}
	conn, err := t.pool.Get(ctx, addr)
	if err != nil {
		return fmt.Errorf("snapshot to %d at %s: %w", to, addr, err)
	}
	call := func(req *wire.Request) error {
		cctx, cancel := context.WithTimeout(ctx, snapshotCallTimeout)
		defer cancel()
		resp, err := conn.Call(cctx, req)
		if err != nil {
			return err
		}
		return resp.Err()
	}
	var off uint64
	first := raw
	for {
		data, err := s.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("snapshot to %d: read state: %w", to, err)
		}
		sc := &wire.SnapChunk{ID: s.ID(), From: t.self, To: to, Offset: off, Raft: first}
		if err := call(&wire.Request{Op: wire.OpSnapshot, Data: data, Snap: sc, Group: g.Name, Epoch: g.Epoch}); err != nil {
			return fmt.Errorf("snapshot to %d at offset %d: %w", to, off, err)
		}
		first = nil
		off += uint64(len(data))
	}
	sc := &wire.SnapChunk{ID: s.ID(), From: t.self, To: to, Offset: off, Raft: first, Done: true, CRC: s.CRC()}
	if err := call(&wire.Request{Op: wire.OpSnapshot, Snap: sc, Group: g.Name, Epoch: g.Epoch}); err != nil {
		return fmt.Errorf("snapshot to %d, last frame: %w", to, err)
	}
	return nil
}

// Forget drops the queue and sender goroutine of peer id, a member that was
// removed from the group. It does not block. A message to id later (the id
// added again) starts a new sender from the address in replicated state.
func (t *WireTransport) Forget(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		delete(t.peers, id)
		close(p.stop)
	}
}

// Close stops every peer's sender goroutine. Later calls do nothing.
func (t *WireTransport) Close() {
	t.closeOnce.Do(func() { close(t.done) })
	t.wg.Wait()
}

// peerAddr returns the peer address of a member's address record.
func peerAddr(rec string) string {
	_, p := wire.SplitAddrs(rec)
	return p
}
