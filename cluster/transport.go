package cluster

import (
	"context"
	"log/slog"
	"sync"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// peerQueue bounds the raft messages waiting for one peer; beyond it
// messages are dropped and raft retransmits.
const peerQueue = 4096

// transport carries raft messages to peers as one-way OpRaft frames over the
// wire protocol. Send never blocks: each peer has a bounded queue drained by
// its own goroutine, which (re)dials through the pool.
type transport struct {
	self        uint64
	pool        *rpc.Pool
	log         *slog.Logger
	unreachable func(id uint64)

	mu    sync.Mutex
	peers map[uint64]*peer
	done  chan struct{}
	wg    sync.WaitGroup
}

type peer struct {
	id   uint64
	addr string
	ch   chan *raftpb.Message
}

func newTransport(self uint64, addrs map[uint64]string, pool *rpc.Pool, log *slog.Logger, unreachable func(uint64)) *transport {
	t := &transport{self: self, pool: pool, log: log, unreachable: unreachable, peers: map[uint64]*peer{}, done: make(chan struct{})}
	for id, addr := range addrs {
		if id != self {
			t.addPeer(id, addr)
		}
	}
	return t
}

func (t *transport) addPeer(id uint64, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.peers[id]; ok {
		return
	}
	p := &peer{id: id, addr: addr, ch: make(chan *raftpb.Message, peerQueue)}
	t.peers[id] = p
	t.wg.Add(1)
	go t.run(p)
}

// Send implements replica.Transport. It must not block.
func (t *transport) Send(msgs []*raftpb.Message) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, m := range msgs {
		p := t.peers[m.GetTo()]
		if p == nil {
			t.log.Debug("raft message to unknown peer dropped", "to", m.GetTo(), "type", m.GetType().String())
			continue
		}
		select {
		case p.ch <- m:
		default:
			t.unreachable(m.GetTo())
		}
	}
}

func (t *transport) run(p *peer) {
	defer t.wg.Done()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-t.done
		cancel()
	}()
	for {
		var m *raftpb.Message
		select {
		case m = <-p.ch:
		case <-t.done:
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
			data, err := proto.Marshal(m)
			if err != nil {
				t.log.Error("marshal raft message", "err", err)
			} else if !conn.Send(&wire.Request{Op: wire.OpRaft, Data: data}) {
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

func drain(ch chan *raftpb.Message) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func (t *transport) close() {
	close(t.done)
	t.wg.Wait()
}
