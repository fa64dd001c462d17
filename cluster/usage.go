package cluster

import (
	"encoding/binary"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/wire"
)

// Usage counts the files whose root hashes into the owned range and the sum
// of their sizes, from the committed state. It reads every entry of the
// range (O(entries)); a split's source counts the moved half until it is
// cleaned up, a new cluster never counts the half it did not take.
func (f *FSM) Usage() (files, bytes uint64, err error) {
	rng, err := f.Range()
	if err != nil {
		return 0, 0, err
	}
	lo := binary.BigEndian.AppendUint64([]byte(entryPrefix), rng.Start)
	hi := upperBound([]byte(entryPrefix))
	if rng.End != 0 {
		hi = binary.BigEndian.AppendUint64([]byte(entryPrefix), rng.End)
	}
	it, err := f.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, err
	}
	for valid := it.First(); valid; valid = it.Next() {
		e, err := decodeEntry("", it.Value())
		if err != nil {
			return 0, 0, errors.Join(err, it.Close())
		}
		if e.Type == wire.TypeFile {
			files++
			bytes += uint64(max(e.Size, 0))
		}
	}
	return files, bytes, errors.Join(it.Error(), it.Close())
}

// usageRefresh is how old the usage in a node's status may be.
const usageRefresh = 2 * time.Second

// usageCache keeps the last Usage of a node so that STATUS never scans:
// a status more than usageRefresh after the last scan starts one in the
// background and reports the previous figures. Safe for concurrent use.
type usageCache struct {
	mu      sync.Mutex
	at      time.Time
	running bool
	files   uint64
	bytes   uint64
	served  atomic.Uint64 // client requests handled (not STATUS, not raft)
}

// report fills ns's Files, Bytes and Ops. The first call scans in line,
// so that a new node does not report zeros.
func (u *usageCache) report(f *FSM, ns *wire.NodeStatus) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.at.IsZero() {
		u.at = time.Now()
		if files, bytes, err := f.Usage(); err == nil {
			u.files, u.bytes = files, bytes
		}
	}
	ns.Files, ns.Bytes, ns.Ops = u.files, u.bytes, u.served.Load()
	if u.running || time.Since(u.at) < usageRefresh {
		return
	}
	u.running = true
	go func() {
		files, bytes, err := f.Usage()
		u.mu.Lock()
		defer u.mu.Unlock()
		u.running, u.at = false, time.Now()
		if err == nil {
			u.files, u.bytes = files, bytes
		}
	}()
}
