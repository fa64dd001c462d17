package replica

// The receiving side of WireTransport. A member whose log is behind the
// leader's retained log, or that joined with an empty disk, is sent a
// snapshot: the leader's transport (SendSnapshot) streams the state as
// OpSnapshot frames, one call at a time, and each frame is handed to
// ReceiveSnapshot, which writes the stream into an SST file and, after the
// last frame, installs it atomically (snapshot.go has the format and the
// atomicity argument). The answer to the last frame is sent once the
// snapshot is installed, so the leader reports it finished to raft only
// then.

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/wire"
)

// ServeWire handles the replication traffic of the wire protocol addressed
// to this member: OpRaft (one-way; returns nil) and OpSnapshot frames. It
// reports false for any other op. Malformed input is dropped or answered
// INVALID, never a panic.
func (r *Replica) ServeWire(ctx context.Context, req *wire.Request) (*wire.Response, bool) {
	return r.ServeWireFrom(ctx, req, 0)
}

// ServeWireFrom is ServeWire for a frame whose sender the transport has
// authenticated (a peer certificate) as member sender: a RAFT frame whose
// From is another member is dropped (Stats.Invalid), a SNAPSHOT frame
// answered FORBIDDEN. sender 0 checks nothing, as ServeWire.
func (r *Replica) ServeWireFrom(ctx context.Context, req *wire.Request, sender uint64) (*wire.Response, bool) {
	switch req.Op {
	case wire.OpRaft:
		m := new(raftpb.Message)
		if err := proto.Unmarshal(req.Data, m); err != nil {
			r.log.Warn("malformed raft message dropped", "err", err)
			return nil, true
		}
		if m.GetTo() != r.cfg.ID {
			r.log.Warn("raft message for another member dropped", "to", m.GetTo())
			return nil, true
		}
		if sender != 0 && m.GetFrom() != sender {
			r.stats.invalid.Add(1)
			r.log.Warn("raft message from another member than its sender dropped", "from", m.GetFrom(), "sender", sender)
			return nil, true
		}
		r.Step(frameGroup(req), m)
		return nil, true
	case wire.OpSnapshot:
		if sc := req.Snap; sender != 0 && sc != nil && sc.From != sender {
			return &wire.Response{Code: wire.Forbidden, Message: fmt.Sprintf("SNAPSHOT frame from node %d sent by node %d", sc.From, sender)}, true
		}
		return r.receiveSnapshotFrame(ctx, req, sender), true
	}
	return nil, false
}

func frameGroup(req *wire.Request) Group { return Group{Name: req.Group, Epoch: req.Epoch} }

func (r *Replica) receiveSnapshotFrame(ctx context.Context, req *wire.Request, sender uint64) *wire.Response {
	sc := req.Snap
	if sc == nil || sc.From == 0 || sc.To != r.cfg.ID {
		return &wire.Response{Code: wire.Invalid, Message: "SNAPSHOT frame without a stream for this node"}
	}
	c := SnapshotChunk{Group: frameGroup(req), From: sc.From, ID: sc.ID, Offset: sc.Offset, Data: req.Data, Done: sc.Done, CRC: sc.CRC}
	if len(sc.Raft) > 0 {
		m := new(raftpb.Message)
		if err := proto.Unmarshal(sc.Raft, m); err != nil {
			return &wire.Response{Code: wire.Invalid, Message: "SNAPSHOT frame: malformed raft message: " + err.Error()}
		}
		if sender != 0 && m.GetFrom() != sender {
			return &wire.Response{Code: wire.Forbidden, Message: fmt.Sprintf("SNAPSHOT frame: raft message from node %d sent by node %d", m.GetFrom(), sender)}
		}
		c.Msg = m
	}
	if err := r.ReceiveSnapshot(ctx, c); err != nil {
		code := wire.Unavailable
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = wire.Timeout
		case errors.Is(err, ErrSnapshotAborted):
			code = wire.Conflict
		case errors.Is(err, ErrForeignGroup):
			code = wire.Invalid
		}
		if sc.Done || sc.Offset == 0 {
			r.log.Warn("snapshot frame refused", "from", sc.From, "stream", sc.ID, "offset", sc.Offset, "err", err)
		}
		return &wire.Response{Code: code, Message: err.Error()}
	}
	return &wire.Response{}
}
