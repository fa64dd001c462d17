package cluster

import (
	"encoding/binary"
	"fmt"
	"github.com/cleavefs/cleave/fsm"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// Checksum returns "sha256:<hex>" over every key and value of the state
// machine (everything under "s/": files, directories, chunks, sessions, the
// owned range) and the applied index that state is at, both read from one
// Pebble snapshot. Replicas of a cluster at the same applied index return
// the same checksum; a node that rejoined by snapshot is compared with the
// leader this way (tests/wipe_test.go). It reads the whole state: it is
// for tests and operators, asked for with wire.FlagChecksum, never on a
// hot path. Safe for concurrent use.
func (n *Node) Checksum() (sum string, applied uint64, err error) {
	snap := n.db.NewSnapshot()
	defer snap.Close()
	p := n.split.rc.Prefix
	if len(p) == 0 {
		p = replica.DefaultConfig().Prefix
	}
	if v, closer, err := snap.Get(append(append([]byte{}, p...), "applied"...)); err == nil {
		if len(v) == 8 {
			applied = binary.BigEndian.Uint64(v)
		}
		closer.Close()
	} else if err != pebble.ErrNotFound {
		return "", 0, fmt.Errorf("cluster: checksum: applied index: %w", err)
	}
	sum, err = fsm.StateChecksum(snap)
	if err != nil {
		return "", 0, fmt.Errorf("cluster: checksum: %w", err)
	}
	return sum, applied, nil
}

// statusChecksum is Checksum for a STATUS request that set
// wire.FlagChecksum, else nothing. A failure is logged and reported as an
// empty checksum.
func (n *Node) statusChecksum(f wire.Flags) (string, uint64) {
	if f&wire.FlagChecksum == 0 {
		return "", 0
	}
	sum, applied, err := n.Checksum()
	if err != nil {
		n.log.Warn("state checksum failed", "err", err)
		return "", 0
	}
	return sum, applied
}
