package replica

// Group identity. Every raft frame and snapshot chunk names the group it
// belongs to, and a replica drops what names another group. Raft ids alone
// cannot tell groups apart: the new cluster of a split is formed by
// learners of the source cluster that keep their raft ids and continue its
// log indexes, so without a group a learner that has not yet applied the
// SPLIT entry would accept the new group's appends and heartbeats as if
// they came from its own leader (docs/split.md).
//
// The group is replicated raft state under the prefix (p+"group"):
// written at bootstrap as (Config.Group, epoch 1), by ForkGroup as the new
// group's (name, source epoch + 1), and on a snapshot install as the
// sender's. A replica with no group yet (a node that joined with an empty
// DB) takes the group of the first frame it receives.

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Group names a raft group: the cluster (or "meta") and an epoch that a
// split advances. The zero Group means "none yet".
type Group struct {
	Name  string
	Epoch uint64
}

func (g Group) String() string {
	if g.IsZero() {
		return "(none)"
	}
	return fmt.Sprintf("%s/%d", g.Name, g.Epoch)
}

// IsZero reports whether g names no group.
func (g Group) IsZero() bool { return g.Name == "" && g.Epoch == 0 }

func encodeGroup(g Group) []byte {
	return append(binary.BigEndian.AppendUint64(nil, g.Epoch), g.Name...)
}

func decodeGroup(v []byte) (Group, error) {
	if len(v) < 8 {
		return Group{}, fmt.Errorf("group record: bad length %d", len(v))
	}
	return Group{Epoch: binary.BigEndian.Uint64(v), Name: string(v[8:])}, nil
}

// LoadGroup reads the group of the replica whose keys are under prefix
// (DefaultConfig().Prefix if empty); the zero Group if none is recorded.
func LoadGroup(r pebble.Reader, prefix []byte) (Group, error) {
	if len(prefix) == 0 {
		prefix = DefaultConfig().Prefix
	}
	v, c, err := r.Get(newLogStore(nil, prefix).keyGroup)
	if errors.Is(err, pebble.ErrNotFound) {
		return Group{}, nil
	}
	if err != nil {
		return Group{}, fmt.Errorf("replica: read group: %w", err)
	}
	defer c.Close()
	return decodeGroup(v)
}

// Group returns the raft group this replica belongs to now (the zero Group
// for a node that joined empty and has no snapshot yet). Safe for
// concurrent use.
func (r *Replica) Group() Group { return *r.group.Load() }

// accepts reports whether a frame naming g may reach this replica. A
// replica with no group yet adopts the group of the first frame it gets
// (in memory: the snapshot that leader sends records it), so that its
// answers name the group its leader belongs to.
func (r *Replica) accepts(g Group) bool {
	for {
		own := r.group.Load()
		if g == *own {
			return true
		}
		if !own.IsZero() || g.IsZero() {
			r.stats.foreign.Add(1)
			return false
		}
		if r.group.CompareAndSwap(own, &g) {
			r.log.Info("joining raft group", "group", g.String())
			return true
		}
	}
}
