package tests

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/replica"
	"github.com/cleavefs/cleave/wire"
)

// TestRobustCorruptChunkDuringWrites corrupts the stored chunks of one
// follower while clients write, append and read. It runs a procCluster
// (three `cleave node` processes and a router, started by the test, so
// the test can stop a node and open its Pebble itself; `cleave up` would
// restart it at once). The clients run on eight roots and append to files
// in the first four only (an append keeps the bytes of the file's last,
// partial block: the leader reads and verifies that block before it
// proposes, and the entry carries the new blocks, so apply reads no chunk
// on any replica). A quarter into each schedule the test kills a
// follower, flips one byte in the middle of chunk values on its disk (key
// "s/c/" + SHA-256: the bytes as the state machine stores them), and
// starts it again under a small supervisor that, like `cleave up`,
// restarts it whenever it exits. The node's scrubber (on by default) finds
// corrupt chunks and rewrites them from a peer; a read that meets one
// repairs it the same way; so does the node when, as leader, it prepares
// an append over one.
//
//   - put-files: the chunks of files in the roots without appends are
//     flipped.
//   - appended-files: the chunks of files in the roots with appends are
//     flipped, so appends to those files are applied over them.
//
// In both the node must never stop; at the end the three replicas hold the
// same state at one applied index (the checksum covers every chunk value,
// so a corrupt chunk left anywhere fails it) and a stale read of every key
// through the corrupted node returns what the final read through the
// router did.
//
// Both: the history is linearizable (unknown outcomes as maybe applied,
// every key read back through the router).
func TestRobustCorruptChunkDuringWrites(t *testing.T) {
	skipInShortMode(t, "robustness schedules")
	pc := startProcCluster(t, 3, nil, 0)
	pool := rpc.NewPool(rpc.DialConfig{Client: "robust-corrupt"})
	t.Cleanup(pool.Close)
	seed := scheduleSeed(t)
	const nroots, appendRoots = 8, 4
	for i, appended := range []bool{false, true} {
		name := map[bool]string{false: "put-files", true: "appended-files"}[appended]
		t.Run(name, func(t *testing.T) {
			seed := seed + uint64(i)
			var (
				sup     *nodeSupervisor
				victim  *procNode
				flipped int
			)
			// Cold files: written before the schedule and never touched by
			// it, so their chunks stay live on every replica and a flipped
			// copy can be repaired from a peer.
			cold := fmt.Sprintf("cold-%s-%d", name, seed%1000)
			coldFiles := writeColdFiles(t, pc.d, cold, 8)
			f := fault{name: name, inject: func(t *testing.T, d *deployment, rng *rand.Rand) func() {
				victim = pc.node(pc.follower(rng, 20*time.Second))
				// Stopped, not killed: a clean stop flushes the node's
				// state into its tables, where the flips below can reach
				// it (after a crash the log replays what the tables lack).
				victim.stop(20 * time.Second)
				target, keep := map[string]bool{cold: true}, map[string]bool{}
				for r := range nroots {
					if (r < appendRoots) == appended {
						target[scheduleRoot(name, seed, r)] = true
					} else {
						keep[scheduleRoot(name, seed, r)] = true
					}
				}
				flipped = flipChunksOf(t, victim.data, target, keep)
				t.Logf("follower %d stopped, one byte flipped in each of the %d chunks of files in %d roots (%d cold files among them), restarted under a supervisor", victim.id, flipped, len(target), len(coldFiles))
				if flipped == 0 {
					t.Fatalf("follower %d stores no chunk of those roots a quarter into the schedule", victim.id)
				}
				sup = superviseNode(pc, victim)
				t.Cleanup(func() { sup.stop() }) // before the procCluster's own cleanup kills the nodes
				return nil
			}}
			ops := runScheduleOpts(t, pc.d, f, seed, scheduleDuration(12*time.Second), nroots, appendRoots)
			requireLinearizable(t, f.name, seed, ops)
			var addrs []string
			for _, id := range pc.ids() {
				addrs = append(addrs, pc.node(id).addr)
			}
			requireEqualChecksums(t, pool, map[string][]string{clusterID: addrs}, 60*time.Second)
			if exits := sup.stop(); len(exits) > 0 {
				t.Errorf("node %d stopped %d times (%v) though apply reads no chunk bytes:\n%s", victim.id, len(exits), exits, strings.Join(failLines(victim.log), "\n"))
			}
			st := requireStaleReads(t, pool, victim, ops, coldFiles)
			if st.ChunksRepaired < uint64(len(coldFiles)) {
				t.Errorf("node %d repaired %d chunks from its peers; want at least the %d of the cold files flipped on it", victim.id, st.ChunksRepaired, len(coldFiles))
			}
		})
	}
}

// writeColdFiles writes n files of 100 KiB under root and returns their
// contents by path.
func writeColdFiles(t *testing.T, d *deployment, root string, n int) map[string][]byte {
	t.Helper()
	c := d.dial(t)
	rng := rand.New(rand.NewPCG(uint64(n), 3))
	files := map[string][]byte{}
	for i := range n {
		p := fmt.Sprintf("/%s/f%d", root, i)
		b := make([]byte, 100<<10)
		for j := range b {
			b[j] = byte(rng.IntN(256))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := c.Put(ctx, p, b, client.Parents())
		cancel()
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		files[p] = b
	}
	return files
}

// requireStaleReads reads every key of the schedule's final reads, and
// every cold file, from node nd's own state (a stale read): it must return
// what the final read through the router returned, or what was written.
// It returns nd's status after the reads.
func requireStaleReads(t *testing.T, pool *rpc.Pool, nd *procNode, ops []porcupine.Operation, cold map[string][]byte) *wire.NodeStatus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	checked := 0
	for _, op := range ops {
		in, out := op.Input.(fsOp), op.Output.(fsResult)
		if op.ClientId != 6 || in.Kind != "get" { // the final reads
			continue
		}
		resp, err := callNode(ctx, pool, nd.addr, &wire.Request{Op: wire.OpGet, Path: "/" + in.Root + "/" + in.Name, Flags: wire.FlagStale})
		if err != nil {
			t.Fatalf("stale read of /%s/%s at node %d: %v", in.Root, in.Name, nd.id, err)
		}
		switch {
		case out.NotFound && resp.Code == wire.NotFound:
		case !out.NotFound && resp.Code == wire.OK && string(resp.Data) == out.Value:
		default:
			t.Errorf("stale read of /%s/%s at node %d: %v %q, %q; the final read gave %+v", in.Root, in.Name, nd.id, resp.Code, resp.Message, resp.Data, out)
		}
		checked++
	}
	for p, want := range cold {
		resp, err := callNode(ctx, pool, nd.addr, &wire.Request{Op: wire.OpGet, Path: p, Flags: wire.FlagStale})
		if err != nil {
			t.Fatalf("stale read of %s at node %d: %v", p, nd.id, err)
		}
		if resp.Code != wire.OK || !bytes.Equal(resp.Data, want) {
			t.Errorf("stale read of cold file %s at node %d: %v %q, %d bytes, equal %v", p, nd.id, resp.Code, resp.Message, len(resp.Data), bytes.Equal(resp.Data, want))
		}
		checked++
	}
	st, err := statusOf(pool, nd.addr, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("node %d: %d stale reads matched the final reads or the cold files; since the corruption its scrubber found %d corrupt chunks in %d passes, %d chunks were repaired, %d repairs found no copy (chunks the peers had already deleted)",
		nd.id, checked, st.ScrubCorrupt, st.ScrubPasses, st.ChunksRepaired, st.RepairFailed)
	return st
}

// flipChunksOf flips one byte in the middle of the stored value of every
// chunk that a file under a root in target refers to and no file under a
// root in keep does, in the Pebble of a stopped node; it returns how many
// it changed. A block record is "s/d/" + 8 bytes + path + "\x00" + be64(i)
// and holds the chunk's SHA-256.
func flipChunksOf(t *testing.T, dataDir string, target, keep map[string]bool) int {
	t.Helper()
	db, err := pebble.Open(filepath.Join(dataDir, "db"), &pebble.Options{Logger: replica.PebbleLogger(testLogger())})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte("s/d/"), UpperBound: []byte("s/d0")})
	if err != nil {
		t.Fatal(err)
	}
	hit, spare := map[string]bool{}, map[string]bool{}
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) < 4+8+9 || len(it.Value()) != 32 {
			continue
		}
		root, _, _ := strings.Cut(strings.TrimPrefix(string(k[12:len(k)-9]), "/"), "/")
		switch {
		case target[root]:
			hit[string(it.Value())] = true
		case keep[root]:
			spare[string(it.Value())] = true
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	n := 0
	for h := range hit {
		if spare[h] {
			continue
		}
		key := append([]byte("s/c/"), h...)
		v, closer, err := db.Get(key)
		if err != nil {
			t.Fatalf("chunk %x: %v", h, err)
		}
		bad := bytes.Clone(v)
		closer.Close()
		if len(bad) == 0 {
			continue
		}
		bad[len(bad)/2] ^= 0x01
		if err := b.Set(key, bad, nil); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	return n
}

// nodeSupervisor restarts one node of a procCluster whenever its process
// exits, as `cleave up` does, and records each exit. While it runs, it
// alone starts and waits for that node's process.
type nodeSupervisor struct {
	stopc chan struct{}
	done  chan struct{}
	once  sync.Once
	mu    sync.Mutex
	exits []string
}

// superviseNode starts nd and restarts it on every exit, at most 100
// times.
func superviseNode(pc *procCluster, nd *procNode) *nodeSupervisor {
	s := &nodeSupervisor{stopc: make(chan struct{}), done: make(chan struct{})}
	pc.start(&nd.proc)
	go func() {
		defer close(s.done)
		for range 100 {
			select {
			case <-nd.done:
			case <-s.stopc:
				return
			}
			s.mu.Lock()
			s.exits = append(s.exits, nd.cmd.ProcessState.String())
			s.mu.Unlock()
			select {
			case <-time.After(200 * time.Millisecond): // a supervisor's restart delay, as cleave up's
			case <-s.stopc:
				return
			}
			pc.start(&nd.proc)
		}
	}()
	return s
}

// stop ends supervision (the node keeps running) and returns the exits
// seen.
func (s *nodeSupervisor) stop() []string {
	s.once.Do(func() { close(s.stopc) })
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exits
}

// failLines returns the last lines (at most 10) of a node's log that say
// why it stopped.
func failLines(log string) []string {
	f, err := os.Open(log)
	if err != nil {
		return []string{err.Error()}
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if l := sc.Text(); strings.Contains(l, "stopped") || strings.Contains(l, "cannot apply entry") {
			out = append(out, l)
			if len(out) > 10 {
				out = out[1:]
			}
		}
	}
	return out
}
