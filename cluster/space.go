package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cleavefs/cleave/fsm"
	"github.com/cleavefs/cleave/wire"
)

const (
	// defaultMinFreeFloor and defaultMinFreePercent make the default
	// free-space watermark: max(256 MiB, 2% of the volume).
	defaultMinFreeFloor   = 256 << 20
	defaultMinFreePercent = 2
	// spaceRefresh is how old the free space a write is checked against
	// may be while the writes admitted since are small next to the
	// headroom: one statfs per this period, not one per request.
	spaceRefresh = 250 * time.Millisecond
	// spaceAmplification bounds the disk bytes one admitted byte may take
	// before a statfs sees them: the log's copy and the state's, a
	// compaction rewriting the state, and the other nodes of a deployment
	// sharing the volume (cleave up). The guard samples again once the
	// writes admitted since its last sample, times this, could have taken
	// half the headroom above the watermark.
	spaceAmplification = 8
	// requestOverhead is what a write is counted beyond its data: its
	// entry in the log and its metadata in the state.
	requestOverhead = 1 << 10
)

// spaceGuard keeps the free space of the volume holding a node's data
// directory and refuses writes that add data below the watermark
// (Config.MinFreeBytes). Safe for concurrent use.
type spaceGuard struct {
	dir string
	min int64 // Config.MinFreeBytes: 0 the default rule, negative off
	log *slog.Logger

	mu        sync.Mutex
	at        time.Time // of the last statfs; zero before the first
	admitted  uint64    // bytes of the writes admitted since it
	free      uint64    // bytes available to the node
	watermark uint64    // bytes below which writes are refused; 0 when off
	low       bool      // free < watermark at the last statfs
	err       error     // the last statfs failed: nothing is refused
}

func newSpaceGuard(dir string, min int64, log *slog.Logger) *spaceGuard {
	return &spaceGuard{dir: dir, min: min, log: log}
}

// sample returns the free bytes, the watermark and whether free is below
// it. They are at most spaceRefresh old, and fresh once the writes
// admitted since the last statfs could have taken half the headroom (see
// spaceAmplification): a volume filling fast is sampled at every write
// near the watermark, so a burst cannot run past it and fill the disk. A
// failed statfs refuses nothing (it is logged once per failure run and
// reported as 0 free bytes).
func (g *spaceGuard) sample() (free, watermark uint64, low bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.sampleLocked()
}

// sampleLocked is sample with g.mu held.
func (g *spaceGuard) sampleLocked() (free, watermark uint64, low bool) {
	if !g.at.IsZero() && time.Since(g.at) < spaceRefresh && !g.nearWatermark() {
		return g.free, g.watermark, g.low
	}
	g.at, g.admitted = time.Now(), 0
	var st unix.Statfs_t
	if err := unix.Statfs(g.dir, &st); err != nil {
		if g.err == nil {
			g.log.Error("cannot read the free space of the data directory; the free-space watermark is not enforced", "dir", g.dir, "err", err)
		}
		g.err, g.free, g.low = err, 0, false
		return 0, g.watermark, false
	}
	g.err = nil
	bsize := uint64(st.Bsize)
	g.free = uint64(st.Bavail) * bsize
	g.watermark = watermarkFor(g.min, uint64(st.Blocks)*bsize)
	low = g.watermark > 0 && g.free < g.watermark
	switch {
	case low && !g.low:
		g.log.Warn("disk below the free-space watermark; refusing writes that add data with NO_SPACE", "dir", g.dir, "free_bytes", g.free, "min_free_bytes", g.watermark)
	case !low && g.low:
		g.log.Info("disk above the free-space watermark again; accepting writes", "dir", g.dir, "free_bytes", g.free, "min_free_bytes", g.watermark)
	}
	g.low = low
	return g.free, g.watermark, g.low
}

// nearWatermark reports whether the writes admitted since the last statfs
// could have taken half the headroom it found above the watermark.
func (g *spaceGuard) nearWatermark() bool {
	if g.watermark == 0 || g.err != nil || g.low {
		return false
	}
	return g.admitted*spaceAmplification >= (g.free-g.watermark)/2
}

// watermarkFor is the watermark of a volume of size bytes: min itself
// when positive, none when negative, else max(256 MiB, 2% of size).
func watermarkFor(min int64, size uint64) uint64 {
	switch {
	case min > 0:
		return uint64(min)
	case min < 0:
		return 0
	}
	return max(defaultMinFreeFloor, size/100*defaultMinFreePercent)
}

// addsData reports whether op may take more disk space when applied:
// every mutation but REMOVE.
func addsData(op wire.Op) bool { return op.Mutating() && op != wire.OpRemove }

// refuse returns the NO_SPACE answer to a request with op and size bytes
// of data on node id when op adds data and the disk is below the
// watermark, else nil, counting size towards the next sample.
func (g *spaceGuard) refuse(op wire.Op, size int, id uint64) *wire.Response {
	if !addsData(op) {
		return nil
	}
	g.mu.Lock()
	free, watermark, low := g.sampleLocked()
	if !low {
		g.admitted += uint64(size) + requestOverhead
	}
	g.mu.Unlock()
	if !low {
		return nil
	}
	return &wire.Response{Code: wire.NoSpace, Message: fmt.Sprintf(
		"node %d: %d bytes free on its data volume, below the %d-byte watermark; %v refused, nothing applied (reads and removes still work)",
		id, free, watermark, op)}
}

// storageErrorRecent is how long after the storage engine's latest
// background error a node keeps the storage_error condition.
const storageErrorRecent = time.Minute

// reportStorage fills ns's storage fields: the free space and watermark
// from g, the latest storage error from h, and the conditions of both.
func reportStorage(ns *wire.NodeStatus, g *spaceGuard, h *fsm.StorageHealth) {
	free, watermark, low := g.sample()
	ns.FreeBytes, ns.MinFreeBytes = free, watermark
	if low {
		ns.Conditions = append(ns.Conditions, wire.ConditionNoSpace)
	}
	r := h.Report()
	if r.LastError != "" {
		ns.StorageError, ns.StorageErrorAt = r.LastError, r.LastErrorAt.UTC().Format(time.RFC3339)
		if time.Since(r.LastErrorAt) < storageErrorRecent {
			ns.Conditions = append(ns.Conditions, wire.ConditionStorageError)
		}
	}
	if r.Stalled {
		ns.Conditions = append(ns.Conditions, wire.ConditionWriteStall)
	}
}

// storageStuckAfter is how long the storage engine may stall writes while
// its background work keeps failing before the node gives up: a full disk
// makes every flush fail, and the stalled writes would wait forever.
const storageStuckAfter = 30 * time.Second

// storageStuck returns why the storage engine is stuck at now, or "".
func storageStuck(r fsm.StorageReport, now time.Time) string {
	if !r.Stalled || now.Sub(r.StalledSince) < storageStuckAfter || r.LastErrorAt.Before(r.StalledSince) {
		return ""
	}
	return fmt.Sprintf("storage stuck: writes stalled for %v while its flushes and compactions fail (latest: %s)",
		now.Sub(r.StalledSince).Round(time.Second), r.LastError)
}

// watchStorage fails the node (Failed, FailErr) once its storage is stuck,
// so that the process exits and its supervisor acts, instead of the node
// hanging with its writes stalled. It returns when stop closes.
func (n *Node) watchStorage(stop <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-n.failc:
			return
		case now := <-t.C:
			if why := storageStuck(n.health.Report(), now); why != "" {
				n.fail(errors.New(why))
				return
			}
		}
	}
}
