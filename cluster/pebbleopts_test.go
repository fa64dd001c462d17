package cluster

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/cleavefs/cleave/wire"
)

// The raft log shares the node's Pebble with the state, and an entry is
// deleted (by one range deletion) once it is LogRetention entries behind
// the applied index. A memtable that outlives that span holds most
// entries until their deletion, so a flush drops them instead of writing
// them into a table that compactions then rewrite; the file data the puts
// wrote is flushed as usual. (With Pebble's 4 MiB memtables 1.64 bytes
// were flushed per byte of file data here; with 16 MiB, 1.42.)
func TestTruncatedLogMostlyDroppedAtFlush(t *testing.T) {
	mn := newMemberNet(t, 1)
	cfg := mn.cfgs[1]
	cfg.LogRetention = 16
	mn.cfgs[1] = cfg
	mn.start(1)
	lead := mn.leader()
	db := mn.nodes[lead].db
	const puts, size = 1600, 64 << 10 // 100 MiB of file data
	before := db.Metrics().Total().TableBytesFlushed
	for i := range puts {
		resp := mn.call(lead, &wire.Request{Op: wire.OpPut, Path: fmt.Sprintf("/big/f%d", i), Data: bytes.Repeat([]byte{byte(i)}, size), Flags: wire.FlagParents})
		if resp.Code != wire.OK {
			t.Fatalf("put %d: %v", i, resp.Err())
		}
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	flushed := db.Metrics().Total().TableBytesFlushed - before
	data := uint64(puts * size)
	t.Logf("flushed %.1f MiB for %.1f MiB of file data (%.2fx)", float64(flushed)/(1<<20), float64(data)/(1<<20), float64(flushed)/float64(data))
	if flushed > data*15/10 {
		t.Errorf("flushed %d bytes for %d bytes of file data: most of the log reached tables", flushed, data)
	}
}
