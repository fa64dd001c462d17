package cluster

// Repair of corrupt chunks from a healthy replica.
//
// A node that finds a chunk whose stored bytes are missing or do not match
// its name — a GET reading it, or the scrubber — asks the other members of
// its group for their copy (CHUNK_FETCH, answered from the peer's local
// copy after the peer verified it), verifies the bytes against the name
// itself, and rewrites its own copy with a local Pebble write, outside the
// Raft log. The read that found it is then served again; if no member has
// a healthy copy, it fails INTERNAL naming the chunk, never with data.
//
// Why the local write is safe: see fsm.FSM.RepairChunk. See
// docs/protocol.md (CHUNK_FETCH).

import (
	"context"
	"errors"
	"fmt"
	"github.com/cleavefs/cleave/fsm"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
)

const (
	// repairFetchTimeout bounds one CHUNK_FETCH from one member.
	repairFetchTimeout = 10 * time.Second
	// maxRepairsPerRead bounds the chunks one GET repairs before it gives
	// up (a file whose every chunk rotted is not fixed by one read).
	maxRepairsPerRead = 16
)

// repairStats counts repairs for NodeStatus.
type repairStats struct {
	repaired, failed atomic.Uint64
}

func (r *repairStats) report(ns *wire.NodeStatus) {
	ns.ChunksRepaired = r.repaired.Load()
	ns.RepairFailed = r.failed.Load()
}

// serveChunkFetch answers CHUNK_FETCH from this node's verified copy.
func (n *Node) serveChunkFetch(req *wire.Request) *wire.Response {
	if len(req.Chunks) != 1 {
		return &wire.Response{Code: wire.Invalid, Message: fmt.Sprintf("CHUNK_FETCH names %d chunks; it takes exactly one in chunks", len(req.Chunks))}
	}
	data, err := n.fsm.ChunkData(req.Chunks[0])
	if err != nil {
		return errResponse(err)
	}
	return &wire.Response{Data: data, Chunk: req.Chunks[0]}
}

// repairChunk fetches chunk h from the other members in turn and rewrites
// the local copy from the first verified one.
func (n *Node) repairChunk(ctx context.Context, h fsm.ChunkID) error {
	var errs []error
	for _, m := range n.rep.Members() {
		if m.ID == n.cfg.NodeID {
			continue
		}
		addr := n.peerAddrOf(m.ID)
		data, err := n.fetchChunk(ctx, addr, h)
		if err != nil {
			errs = append(errs, fmt.Errorf("node %d: %w", m.ID, err))
			continue
		}
		wrote, err := n.fsm.RepairChunk(h, data)
		if err != nil {
			errs = append(errs, err)
			break
		}
		if wrote {
			n.repairs.repaired.Add(1)
			n.log.Warn("repaired corrupt chunk from another member", "chunk", h.String(), "from", m.ID)
		}
		return nil
	}
	n.repairs.failed.Add(1)
	if len(errs) == 0 {
		errs = append(errs, errors.New("no other member to fetch it from"))
	}
	err := fmt.Errorf("repair %v: %w", h, errors.Join(errs...))
	n.log.Error("corrupt chunk not repaired", "chunk", h.String(), "err", err)
	return err
}

// fetchChunk asks the member at addr for chunk h and verifies the answer.
func (n *Node) fetchChunk(ctx context.Context, addr string, h fsm.ChunkID) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, repairFetchTimeout)
	defer cancel()
	c, err := n.pool.Get(ctx, addr)
	if err != nil {
		return nil, err
	}
	resp, err := c.Call(ctx, &wire.Request{Op: wire.OpChunkFetch, Chunks: []string{h.String()}})
	if err != nil {
		return nil, err
	}
	if resp.Code != wire.OK {
		return nil, &wire.Error{Code: resp.Code, Message: resp.Message}
	}
	if fsm.ChunkOf(resp.Data) != h {
		return nil, fmt.Errorf("%s answered bytes that do not match the name", addr)
	}
	return resp.Data, nil
}

// readRepairing is fsm.View.Read that repairs each corrupt or missing
// chunk it meets from another member and reads again, from a new view (v
// predates the repair); a chunk that cannot be repaired fails the read
// INTERNAL, naming the chunk and why.
func (n *Node) readRepairing(ctx context.Context, v *fsm.View, path string, offset, length, maxBytes int64) ([]byte, *wire.Stat, error) {
	read := v.Read
	for range maxRepairsPerRead {
		data, st, err := read(path, offset, length, maxBytes)
		var ce *fsm.CorruptError
		if !errors.As(err, &ce) {
			return data, st, err
		}
		if rerr := n.repairChunk(ctx, ce.Chunk); rerr != nil {
			return nil, nil, &wire.Error{Code: wire.Internal, Message: ce.Err.Message + "; no healthy copy found: " + rerr.Error()}
		}
		read = n.fsm.Read
	}
	return n.fsm.Read(path, offset, length, maxBytes)
}
