package cluster

// Receiving snapshots. A node whose log is behind the leader's retained log,
// or that joined with an empty disk, is sent a snapshot: the leader's
// transport (transport.go, SendSnapshot) streams the state as OpSnapshot
// frames, one call at a time, and this node hands each frame to its replica,
// which writes the stream into an SST file and, after the last frame,
// installs it atomically (replica/snapshot.go has the format and the
// atomicity argument). The answer to the last frame is sent once the
// snapshot is installed, so the leader reports it finished to raft only
// then.

import (
	"context"
	"errors"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

func (n *Node) receiveSnapshot(ctx context.Context, req *wire.Request) *wire.Response {
	sc := req.Snap
	if sc == nil || sc.From == 0 || sc.To != n.cfg.NodeID {
		return &wire.Response{Code: wire.Invalid, Message: "SNAPSHOT frame without a stream for this node"}
	}
	c := replica.SnapshotChunk{From: sc.From, ID: sc.ID, Offset: sc.Offset, Data: req.Data, Done: sc.Done, CRC: sc.CRC}
	if len(sc.Raft) > 0 {
		m := new(raftpb.Message)
		if err := proto.Unmarshal(sc.Raft, m); err != nil {
			return &wire.Response{Code: wire.Invalid, Message: "SNAPSHOT frame: malformed raft message: " + err.Error()}
		}
		c.Msg = m
	}
	if err := n.rep.ReceiveSnapshot(ctx, c); err != nil {
		code := wire.Unavailable
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			code = wire.Timeout
		case errors.Is(err, replica.ErrSnapshotAborted):
			code = wire.Conflict
		}
		if sc.Done || sc.Offset == 0 {
			n.log.Warn("snapshot frame refused", "from", sc.From, "stream", sc.ID, "offset", sc.Offset, "err", err)
		}
		return &wire.Response{Code: code, Message: err.Error()}
	}
	return &wire.Response{}
}
