package cluster

import (
	"fmt"
	"strconv"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/wire"
)

// peerRule decides whether a peer whose verified certificate names role
// and id may send op on a node's peer plane. For RAFT and SNAPSHOT it
// returns the raft id the frame's sender (From) must be: the node the
// certificate names. Nodes replicate and fetch chunks; routers change
// membership and drive splits; both may ask STATUS. The error names the
// identity and the op.
func peerRule(role, id string, op wire.Op) (sender uint64, err error) {
	ok := false
	switch op {
	case wire.OpStatus:
		ok = role == certs.RoleNode || role == certs.RoleRouter
	case wire.OpRaft, wire.OpSnapshot, wire.OpChunkFetch:
		ok = role == certs.RoleNode
	case wire.OpAddLearner, wire.OpPromote, wire.OpRemoveMember, wire.OpSplitFork, wire.OpSplitCleanup:
		ok = role == certs.RoleRouter
	}
	if !ok {
		return 0, fmt.Errorf("peer %s may not send %v to a node", certs.Name(role, id), op)
	}
	if op == wire.OpRaft || op == wire.OpSnapshot {
		if sender, err = strconv.ParseUint(id, 10, 64); err != nil || sender == 0 {
			return 0, fmt.Errorf("peer %s may not send %v: its id is not a raft id", certs.Name(role, id), op)
		}
	}
	return sender, nil
}
