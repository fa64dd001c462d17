package tests

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cleavefs/cleave/client"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// TestUpExampleCommands runs the example commands `cleave up` prints,
// verbatim, as a user would from another terminal.
func TestUpExampleCommands(t *testing.T) {
	d := sharedDeployment(t)
	out := d.stdout.String()
	if !strings.Contains(out, d.router) {
		t.Fatalf("cleave up did not print its router address %s:\n%s", d.router, out)
	}
	cmds := exampleCommands(out)
	if len(cmds) < 3 {
		t.Fatalf("cleave up printed %d example commands:\n%s", len(cmds), out)
	}
	path := filepath.Dir(cleaveBin) + string(os.PathListSeparator) + os.Getenv("PATH")
	for _, line := range cmds {
		cmd := exec.Command("sh", "-c", line)
		// CLEAVE_ROUTER is deliberately not set: the commands must carry
		// --router themselves when the address is not the default.
		cmd.Env = append(os.Environ(), "PATH="+path, "CLEAVE_ROUTER=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
		t.Logf("$ %s\n%s", line, out)
	}
}

// TestStatusJSONShape checks the shape tests and operators rely on.
func TestStatusJSONShape(t *testing.T) {
	d := sharedDeployment(t)
	d.waitLeaders(t, 30*time.Second)
	out, err := d.cli(t, nil, "status", "-o", "json")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var raw map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber() // range ends reach 2^64, beyond float64 precision
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, ok := raw["version"].(json.Number); !ok {
		t.Fatalf("no numeric version:\n%s", out)
	}
	clusters, _ := raw["clusters"].([]any)
	if len(clusters) != 2 {
		t.Fatalf("want 2 clusters:\n%s", out)
	}
	var ranges []wire.Range
	for _, c := range clusters {
		cm := c.(map[string]any)
		for _, k := range []string{"id", "range", "leader", "nodes"} {
			if _, ok := cm[k]; !ok {
				t.Fatalf("cluster lacks %q:\n%s", k, out)
			}
		}
		rb, _ := json.Marshal(cm["range"])
		var r wire.Range
		if err := json.Unmarshal(rb, &r); err != nil {
			t.Fatalf("range %s: %v", rb, err)
		}
		ranges = append(ranges, r)
		nodes := cm["nodes"].([]any)
		if len(nodes) != 3 {
			t.Fatalf("want 3 nodes per cluster:\n%s", out)
		}
		for _, n := range nodes {
			nm := n.(map[string]any)
			for _, k := range []string{"id", "addr", "role", "applied", "pid"} {
				if _, ok := nm[k]; !ok {
					t.Fatalf("node lacks %q:\n%s", k, out)
				}
			}
			if pid, _ := nm["pid"].(json.Number).Int64(); pid <= 0 {
				t.Fatalf("node under cleave up reports pid %v:\n%s", nm["pid"], out)
			}
		}
	}
	if err := ring.CheckPartition(ranges); err != nil {
		t.Fatalf("cluster ranges are not a partition of the ring: %v", err)
	}
	routers, _ := raw["routers"].([]any)
	if len(routers) != 3 {
		t.Fatalf("want 3 routers:\n%s", out)
	}
	leaders := 0
	for _, r := range routers {
		rm := r.(map[string]any)
		for _, k := range []string{"id", "addr", "leader", "pid"} {
			if _, ok := rm[k]; !ok {
				t.Fatalf("router lacks %q:\n%s", k, out)
			}
		}
		if rm["leader"] == true {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("want exactly one meta group leader among the routers:\n%s", out)
	}
}

// TestKillLeaderDuringWrites writes 1,000 files across 20 roots while the
// leader of one cluster is killed with SIGKILL, then reads back every
// acknowledged write byte for byte. It kills, so it has its own deployment.
func TestKillLeaderDuringWrites(t *testing.T) {
	d := ownDeployment(t)
	st := d.waitLeaders(t, 30*time.Second)
	c := d.dial(t)
	ctx := context.Background()

	const roots, files, writers = 20, 1000, 8
	rootNames := make([]string, roots)
	for i := range rootNames {
		rootNames[i] = fmt.Sprintf("kill-%d", i)
		if err := c.MkdirAll(ctx, "/"+rootNames[i]); err != nil {
			t.Fatal(err)
		}
	}
	victim := st.Clusters[0]
	owner := func(root string) string {
		p := ring.Point(root)
		for _, cl := range st.Clusters {
			if cl.Range.Contains(p) {
				return cl.ID
			}
		}
		return ""
	}
	victimRoots := 0
	for _, r := range rootNames {
		if owner(r) == victim.ID {
			victimRoots++
		}
	}
	if victimRoots == 0 {
		t.Fatalf("no root hashes to %s; pick other names", victim.ID)
	}
	var leaderPID int
	for _, n := range victim.Nodes {
		if n.Addr == victim.Leader {
			leaderPID = n.PID
		}
	}
	if leaderPID <= 0 {
		t.Fatalf("leader %s of %s has no pid in status: %+v", victim.Leader, victim.ID, victim)
	}

	type ack struct {
		path string
		data []byte
	}
	var (
		mu         sync.Mutex
		acked      []ack
		failed     = map[string]int{}
		killedAt   time.Time
		firstAfter time.Time // first write to the victim started after the kill and acked
		lastBefore time.Time // last write to the victim acked before the kill
	)
	next := make(chan int)
	go func() {
		for i := range files {
			next <- i
		}
		close(next)
	}()
	killAfter := files / 3
	var killOnce sync.Once
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				root := rootNames[i%roots]
				path := fmt.Sprintf("/%s/f%04d", root, i)
				data := make([]byte, 64+i%512)
				rand.Read(data)
				start := time.Now()
				wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				_, err := c.Put(wctx, path, data)
				cancel()
				end := time.Now()
				mu.Lock()
				if err == nil {
					acked = append(acked, ack{path, data})
					if owner(root) == victim.ID {
						if !killedAt.IsZero() && start.After(killedAt) && firstAfter.IsZero() {
							firstAfter = end
						}
						if killedAt.IsZero() {
							lastBefore = end
						}
					}
				} else {
					failed[client.CodeOf(err).String()]++
				}
				n := len(acked)
				mu.Unlock()
				if n == killAfter {
					killOnce.Do(func() {
						mu.Lock()
						killedAt = time.Now()
						mu.Unlock()
						if err := syscall.Kill(leaderPID, syscall.SIGKILL); err != nil {
							t.Errorf("kill -9 %d: %v", leaderPID, err)
						}
						t.Logf("killed leader of %s (pid %d, %s) after %d acknowledged writes", victim.ID, leaderPID, victim.Leader, n)
					})
				}
			}
		}()
	}
	wg.Wait()
	if killedAt.IsZero() {
		t.Fatal("the leader was never killed")
	}
	t.Logf("acknowledged %d of %d writes; failed by code: %v", len(acked), files, failed)
	if firstAfter.IsZero() {
		t.Errorf("no write to %s succeeded after its leader was killed", victim.ID)
	} else {
		t.Logf("writes to %s were unavailable for %v (kill to first acknowledged write started after it; last ack before the kill %v earlier)",
			victim.ID, firstAfter.Sub(killedAt).Round(time.Millisecond), killedAt.Sub(lastBefore).Round(time.Millisecond))
	}
	if len(acked) < files*9/10 {
		t.Errorf("only %d of %d writes acknowledged", len(acked), files)
	}

	// Every acknowledged write is there, byte for byte.
	for _, a := range acked {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		got, err := c.Get(rctx, a.path)
		cancel()
		if err != nil {
			t.Fatalf("acknowledged %s: %v", a.path, err)
		}
		if !bytes.Equal(got, a.data) {
			t.Fatalf("acknowledged %s: read %d bytes that differ from the %d written", a.path, len(got), len(a.data))
		}
	}
	t.Logf("read back all %d acknowledged files", len(acked))
}

// TestRestartKeepsData stops `cleave up` and starts it again on the same
// data directory: everything written is still there.
func TestRestartKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d := startUp(t, dir, "")
	c := d.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	want := map[string][]byte{}
	for i := range 40 {
		p := fmt.Sprintf("/restart-%d/dir/file-%d", i%8, i)
		data := []byte(fmt.Sprintf("contents of %d", i))
		if _, err := c.Put(ctx, p, data, client.Parents()); err != nil {
			t.Fatal(err)
		}
		want[p] = data
	}
	c.Close()
	d.stop(t)

	d2 := startUp(t, dir, d.router)
	defer d2.stop(t)
	c2 := d2.dial(t)
	for p, data := range want {
		got, err := c2.Get(ctx, p)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("after restart %s = %q, %v; want %q", p, got, err, data)
		}
	}
	entries, err := c2.List(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if !sort.StringsAreSorted(names) || len(names) != 8 {
		t.Fatalf("listing / after restart = %v, want the 8 roots sorted", names)
	}
}

// TestMalformedFramesLiveServers sends hostile bytes to the router and to a
// node: each gets an error frame or a closed connection, and the same
// server keeps serving.
func TestMalformedFramesLiveServers(t *testing.T) {
	d := sharedDeployment(t)
	st := d.waitLeaders(t, 30*time.Second)
	targets := map[string]string{"router": d.router, "node": st.Clusters[0].Nodes[0].Addr}
	hello, _ := wire.AppendEncode(nil, &wire.Request{ID: 1, Op: wire.OpHello, Hello: &wire.Hello{Version: wire.ProtocolVersion}})
	inputs := map[string][]byte{
		"garbage":           []byte("\x16\x03\x01 not a cleave frame at all"),
		"4 GiB prefix":      {0xff, 0xff, 0xff, 0xff, 0x00},
		"truncated frame":   append(append([]byte{}, hello...), 0x00, 0x00, 0x01, 0x00, 0x85, 0xa2),
		"undecodable frame": append(binary.BigEndian.AppendUint32(nil, 4), 0xc1, 0xc1, 0xc1, 0xc1),
	}
	for tname, addr := range targets {
		for iname, in := range inputs {
			t.Run(tname+"/"+iname, func(t *testing.T) {
				nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				defer nc.Close()
				nc.Write(in)
				nc.(*net.TCPConn).CloseWrite()
				nc.SetReadDeadline(time.Now().Add(15 * time.Second))
				fr := wire.NewFrameReader(nc, 0)
				var codes []string
				for {
					p, err := fr.Next()
					if err != nil {
						var ne net.Error
						if errors.As(err, &ne) && ne.Timeout() {
							t.Fatalf("%s neither answered nor closed within 15s", tname)
						}
						break // closed
					}
					resp, err := wire.DecodeResponse(p)
					if err != nil {
						t.Fatalf("undecodable answer: %v", err)
					}
					codes = append(codes, resp.Code.String()+" "+resp.Message)
				}
				t.Logf("%s answered %q, then closed", tname, codes)
				// The server still serves well-behaved clients.
				c := d.dial(t)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := c.Status(ctx); err != nil {
					t.Fatalf("after %s: status: %v", iname, err)
				}
				if tname == "node" {
					if _, err := c.Stat(ctx, "/"); err != nil {
						t.Fatalf("after %s: %v", iname, err)
					}
				}
			})
		}
	}
}

// TestCLIErrors checks the CLI's error contract against a live deployment.
func TestCLIErrors(t *testing.T) {
	d := sharedDeployment(t)
	n, _ := rand.Int(rand.Reader, big.NewInt(1<<40))
	missing := fmt.Sprintf("/nope-%d/file", n)
	out, err := d.cli(t, nil, "get", missing)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("get of a missing file: %v, want exit 1\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "cleave: NOT_FOUND: ") {
		t.Fatalf("stderr = %q, want it to start with %q", out, "cleave: NOT_FOUND: ")
	}
	out, err = d.cli(t, nil, "mkdir", "relative/path")
	if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.HasPrefix(string(out), "cleave: INVALID: ") {
		t.Fatalf("mkdir of a relative path: %v\n%s", err, out)
	}
	out, err = d.cli(t, nil, "put")
	if !errors.As(err, &ee) || ee.ExitCode() != 2 {
		t.Fatalf("put without arguments: %v, want exit 2 (usage)\n%s", err, out)
	}
	// Round trip through stdin and stdout.
	p := fmt.Sprintf("/cli-%d/x.txt", n)
	if out, err := d.cli(t, nil, "mkdir", "-p", filepath.Dir(p)); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if out, err := d.cli(t, strings.NewReader("hello\n"), "put", p); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	out, err = d.cli(t, nil, "get", p)
	if err != nil || string(out) != "hello\n" {
		t.Fatalf("get = %q, %v", out, err)
	}
	var _ io.Reader
}
