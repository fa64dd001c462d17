package router

import (
	"strings"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

func TestPeerRule(t *testing.T) {
	for _, tc := range []struct {
		role, id string
		op       wire.Op
		sender   uint64
		refused  string
	}{
		{"router", "2", wire.OpRaft, 2, ""},
		{"router", "2", wire.OpSnapshot, 2, ""},
		{"router", "2", wire.OpRouterInfo, 0, ""},
		{"router", "2", wire.OpSplit, 0, ""},
		{"router", "2", wire.OpRemoveMember, 0, ""},
		{"router", "2", wire.OpStatus, 0, ""},
		{"router", "r2", wire.OpRaft, 0, "router-r2 may not send RAFT"},
		{"node", "2", wire.OpRaft, 0, "node-2 may not send RAFT"},
		{"node", "2", wire.OpRemoveMember, 0, "node-2 may not send REMOVE_MEMBER"},
		{"user", "ann", wire.OpSplit, 0, "user-ann may not send SPLIT"},
	} {
		t.Run(tc.role+"-"+tc.id+"/"+tc.op.String(), func(t *testing.T) {
			sender, err := peerRule(tc.role, tc.id, tc.op)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("got sender %d, err %v; want a refusal saying %q", sender, err, tc.refused)
				}
				return
			}
			if err != nil || sender != tc.sender {
				t.Fatalf("got sender %d, err %v; want %d", sender, err, tc.sender)
			}
		})
	}
}
