package cluster

// Repair of corrupt chunks from a healthy replica (DESIGN §4).
//
// A node that finds a chunk whose stored bytes are missing or do not match
// its name — a GET reading it, or the scrubber — asks the other members of
// its group for their copy (CHUNK_FETCH, answered from the peer's local
// copy after the peer verified it), verifies the bytes against the name
// itself, and rewrites its own copy with a local Pebble write, outside the
// Raft log. The read that found it is then served again; if no member has
// a healthy copy, it fails INTERNAL naming the chunk, never with data.
//
// Why a local write is safe. The chunk key "s/c/" H is content-addressed:
// the only value it may ever hold on any replica is the bytes whose SHA-256
// is H, so writing bytes verified against H changes nothing the log
// decides — it restores the value every replica's Apply wrote. The write
// touches only that key, and only while the chunk's metadata ("s/k/" H)
// says the chunk is stored and the stored value is still missing or
// corrupt; Apply never rewrites an existing chunk's value, so there is no
// lost update. The one race is with an Apply that deletes the chunk (its
// last reference dropped) between the check and the write: the node then
// holds an orphan value without metadata, which no file references. It is
// harmless — its bytes are right, a later CHUNK or PUT of the same bytes
// overwrites it with identical bytes and takes it over, and reads never
// reach it — but it stays on disk (and in the node's state checksum) until
// then. See docs/protocol.md (CHUNK_FETCH).

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
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

// ChunkData returns the verified bytes of the chunk named name from the
// committed state. Errors are *wire.Error: INVALID for a malformed name,
// NOT_FOUND if this node does not hold the chunk, INTERNAL if its copy is
// corrupt. Safe for concurrent use.
func (f *FSM) ChunkData(name string) ([]byte, error) {
	h, err := parseChunkName(name)
	if err != nil {
		return nil, &wire.Error{Code: wire.Invalid, Message: err.Error()}
	}
	v, err := getValue(f.db, chunkKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, &wire.Error{Code: wire.NotFound, Message: fmt.Sprintf("chunk %v is not stored here", h)}
	}
	if err != nil {
		return nil, storageErr("read chunk "+h.String(), err)
	}
	if chunkOf(v) != h {
		return nil, &corruptError{h: h, err: &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: this node's copy of chunk %v failed verification (sha256 mismatch)", h)}}
	}
	return v, nil
}

// RepairChunk rewrites the local copy of chunk h with data, which must
// hash to h, if the chunk is still stored (it has metadata) and its value
// is missing or corrupt. It reports whether it wrote. See the top of this
// file for why this write outside the log is safe. Safe for concurrent use
// with Apply and the reads.
func (f *FSM) RepairChunk(h chunkID, data []byte) (bool, error) {
	if chunkOf(data) != h {
		return false, fmt.Errorf("repair %v: the bytes given hash to %v", h, chunkOf(data))
	}
	m, err := getMeta(f.db, h)
	if err != nil {
		return false, err
	}
	if m == nil {
		return false, nil // no longer stored: its last reference went away
	}
	if m.Size != int64(len(data)) {
		return false, fmt.Errorf("repair %v: %d bytes where its metadata says %d", h, len(data), m.Size)
	}
	v, err := getValue(f.db, chunkKey(h))
	switch {
	case err == nil && chunkOf(v) == h:
		return false, nil // healthy already (repaired by someone else)
	case err != nil && !errors.Is(err, pebble.ErrNotFound):
		return false, storageErr("read chunk "+h.String(), err)
	}
	if err := f.db.Set(chunkKey(h), data, pebble.Sync); err != nil {
		return false, storageErr("repair chunk "+h.String(), err)
	}
	return true, nil
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
func (n *Node) repairChunk(ctx context.Context, h chunkID) error {
	var errs []error
	for _, m := range n.rep.Members() {
		if m.ID == n.cfg.NodeID {
			continue
		}
		addr := m.Addr
		if addr == "" {
			addr = n.addrOf(m.ID)
		}
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
func (n *Node) fetchChunk(ctx context.Context, addr string, h chunkID) ([]byte, error) {
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
	if chunkOf(resp.Data) != h {
		return nil, fmt.Errorf("%s answered bytes that do not match the name", addr)
	}
	return resp.Data, nil
}

// readRepairing is FSM.Read that repairs each corrupt or missing chunk it
// meets from another member and reads again; a chunk that cannot be
// repaired fails the read INTERNAL, naming the chunk and why.
func (n *Node) readRepairing(ctx context.Context, path string, offset, length, maxBytes int64) ([]byte, *wire.Stat, error) {
	for range maxRepairsPerRead {
		data, st, err := n.fsm.Read(path, offset, length, maxBytes)
		var ce *corruptError
		if !errors.As(err, &ce) {
			return data, st, err
		}
		if rerr := n.repairChunk(ctx, ce.h); rerr != nil {
			return nil, nil, &wire.Error{Code: wire.Internal, Message: ce.err.Message + "; no healthy copy found: " + rerr.Error()}
		}
	}
	return n.fsm.Read(path, offset, length, maxBytes)
}
