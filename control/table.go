package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/cleavefs/cleave/internal/atomicfile"
	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

// Table is the store of the routing table. The router reads it on every
// request and never caches a table across requests. A FileTable serves a
// single router; a replicated meta group will implement the same interface.
//
// Implementations are safe for concurrent use.
type Table interface {
	// Current returns the current table; never nil. The value is shared and
	// immutable: callers must not modify it (use CloneTable to get a copy).
	// It must not block.
	Current() *wire.TableInfo

	// Update applies fn to a private copy of the current table, sorts its
	// ranges, sets its version to the current version + 1, checks it with
	// ValidateTable and makes it durable before publishing it, so a table
	// returned by Current has always been committed. Updates are serialised.
	// If fn or any check fails nothing changes and the error is returned.
	Update(ctx context.Context, fn func(*wire.TableInfo) error) error
}

// Refresher is implemented by a Table that may lag behind the truth (a meta
// group follower). The router calls Refresh when a node answers WRONG_RANGE
// with a table version newer than the one the request was routed with; it
// blocks until the table has caught up to at least version seen, or ctx ends.
type Refresher interface {
	Refresh(ctx context.Context, seen uint64) error
}

// FileTable is a Table kept in one JSON file, for a deployment with a single
// router. Every update is written to a temporary file, fsynced, renamed over
// the old file and the directory fsynced, so a crash leaves the old or the
// new table, never a mix. Safe for concurrent use.
type FileTable struct {
	path string
	mu   sync.Mutex // serialises Update
	cur  atomic.Pointer[wire.TableInfo]
}

var _ Table = (*FileTable)(nil)

// OpenFileTable loads the table at path. If the file does not exist it
// writes bootstrap there first (a bootstrap Version of 0 is written as 1);
// with no file and no bootstrap it fails. An existing file always wins over
// bootstrap. A file that does not decode or breaks a rule of ValidateTable is
// an error naming the file and the problem.
func OpenFileTable(path string, bootstrap *wire.TableInfo) (*FileTable, error) {
	f := &FileTable{path: path}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		t, err := decodeTable(b)
		if err != nil {
			return nil, fmt.Errorf("routing table file %s: %w", path, err)
		}
		f.cur.Store(t)
		return f, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, fmt.Errorf("routing table file: %w", err)
	case bootstrap == nil:
		return nil, fmt.Errorf("routing table file %s does not exist and no bootstrap table was given", path)
	}
	t := normalBootstrap(bootstrap)
	if err := ValidateTable(t); err != nil {
		return nil, fmt.Errorf("bootstrap routing table: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("routing table file: %w", err)
	}
	if err := writeTable(path, t); err != nil {
		return nil, err
	}
	f.cur.Store(t)
	return f, nil
}

// Path returns the file the table is kept in.
func (f *FileTable) Path() string { return f.path }

// Current returns the current table; see Table.
func (f *FileTable) Current() *wire.TableInfo { return f.cur.Load() }

// Update changes the table; see Table.
func (f *FileTable) Update(ctx context.Context, fn func(*wire.TableInfo) error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return err
	}
	t, err := nextTable(f.cur.Load(), fn)
	if err != nil {
		return err
	}
	if err := writeTable(f.path, t); err != nil {
		return err
	}
	f.cur.Store(t)
	return nil
}

// nextTable returns the table after old that fn makes of a private copy:
// version old's + 1, ranges sorted, checked by ValidateTable. An error from
// fn is returned as it is.
func nextTable(old *wire.TableInfo, fn func(*wire.TableInfo) error) (*wire.TableInfo, error) {
	t := CloneTable(old)
	if err := fn(t); err != nil {
		return nil, err
	}
	t.Version = old.Version + 1
	sortRanges(t)
	if err := ValidateTable(t); err != nil {
		return nil, fmt.Errorf("update routing table to version %d: %w", t.Version, err)
	}
	return t, nil
}

// decodeTable parses a table file strictly (no unknown fields, no trailing
// data), then validates it.
func decodeTable(b []byte) (*wire.TableInfo, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	t := new(wire.TableInfo)
	if err := dec.Decode(t); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: JSON syntax error at offset %d: %v", ErrInvalidTable, se.Offset, err)
		}
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%w: file is empty", ErrInvalidTable)
		}
		return nil, fmt.Errorf("%w: at offset %d: %v", ErrInvalidTable, dec.InputOffset(), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: trailing data after the table at offset %d", ErrInvalidTable, dec.InputOffset())
	}
	if err := ValidateTable(t); err != nil {
		return nil, err
	}
	return t, nil
}

// writeTable writes t to path as indented JSON, atomically.
func writeTable(path string, t *wire.TableInfo) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return fmt.Errorf("encode routing table: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("routing table: %w", err)
	}
	return nil
}

// ValidateTable returns an error wrapping ErrInvalidTable unless t has a
// version of at least 1; clusters with unique non-empty ids, each with at
// least one member, member ids non-zero and unique and addresses non-empty
// and unique within the cluster; and ranges sorted by start that partition
// the ring (ring.CheckPartition), each owned by a listed cluster. A cluster
// may own no range (a split target before the table change).
func ValidateTable(t *wire.TableInfo) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidTable, fmt.Sprintf(format, args...))
	}
	if t == nil {
		return bad("no table")
	}
	if t.Version == 0 {
		return bad("version is 0; versions start at 1")
	}
	if len(t.Clusters) == 0 {
		return bad("no clusters")
	}
	clusters := make(map[string]bool, len(t.Clusters))
	for i, c := range t.Clusters {
		if c.ID == "" {
			return bad("cluster %d has an empty id", i)
		}
		if clusters[c.ID] {
			return bad("cluster %q is listed twice", c.ID)
		}
		clusters[c.ID] = true
		if len(c.Members) == 0 {
			return bad("cluster %q has no members", c.ID)
		}
		ids := map[uint64]bool{}
		addrs := map[string]bool{}
		for j, m := range c.Members {
			switch {
			case m.ID == 0:
				return bad("cluster %q member %d has id 0", c.ID, j)
			case ids[m.ID]:
				return bad("cluster %q lists member id %d twice", c.ID, m.ID)
			case m.Addr == "":
				return bad("cluster %q member %d has no address", c.ID, m.ID)
			case addrs[m.Addr]:
				return bad("cluster %q lists address %s twice", c.ID, m.Addr)
			case m.PeerAddr != "" && (m.PeerAddr == m.Addr || addrs[m.PeerAddr]):
				return bad("cluster %q lists address %s twice (as member %d's peer address)", c.ID, m.PeerAddr, m.ID)
			}
			ids[m.ID], addrs[m.Addr] = true, true
			if m.PeerAddr != "" {
				addrs[m.PeerAddr] = true
			}
		}
	}
	rs := make([]wire.Range, len(t.Ranges))
	for i, o := range t.Ranges {
		if i > 0 && o.Range.Start <= t.Ranges[i-1].Range.Start {
			return bad("ranges not sorted by start: %v after %v", o.Range, t.Ranges[i-1].Range)
		}
		if !clusters[o.Cluster] {
			return bad("range %v is owned by unknown cluster %q", o.Range, o.Cluster)
		}
		rs[i] = o.Range
	}
	if err := ring.CheckPartition(rs); err != nil {
		return bad("ranges do not partition the ring: %v", err)
	}
	return nil
}

// CloneTable returns a deep copy of t (nil for nil).
func CloneTable(t *wire.TableInfo) *wire.TableInfo {
	if t == nil {
		return nil
	}
	c := &wire.TableInfo{Version: t.Version, Ranges: append([]wire.RangeOwner(nil), t.Ranges...)}
	c.Clusters = make([]wire.ClusterInfo, len(t.Clusters))
	for i, ci := range t.Clusters {
		c.Clusters[i] = wire.ClusterInfo{ID: ci.ID, Members: append([]wire.Member(nil), ci.Members...)}
	}
	return c
}

func sortRanges(t *wire.TableInfo) {
	sort.SliceStable(t.Ranges, func(i, j int) bool { return t.Ranges[i].Range.Start < t.Ranges[j].Range.Start })
}

// BootstrapTable returns a version-1 table giving clusters[i] the i-th of
// ring.Even(len(clusters)) ranges. The clusters are copied.
func BootstrapTable(clusters []wire.ClusterInfo) *wire.TableInfo {
	t := CloneTable(&wire.TableInfo{Version: 1, Clusters: clusters})
	for i, r := range ring.Even(len(clusters)) {
		t.Ranges = append(t.Ranges, wire.RangeOwner{Range: r, Cluster: clusters[i].ID})
	}
	return t
}

// Owner returns the range (and its cluster) of a valid table t that contains
// point p (wire.TableInfo.Owner).
func Owner(t *wire.TableInfo, p uint64) (wire.RangeOwner, bool) { return t.Owner(p) }

// Cluster returns the cluster of t with the given id and its members
// (wire.TableInfo.Cluster).
func Cluster(t *wire.TableInfo, id string) (wire.ClusterInfo, bool) { return t.Cluster(id) }

// ClusterRange returns the first range cluster id owns in t.
func ClusterRange(t *wire.TableInfo, id string) (wire.Range, bool) {
	for _, o := range t.Ranges {
		if o.Cluster == id {
			return o.Range, true
		}
	}
	return wire.Range{}, false
}

// OwningClusters returns the ids of the clusters that own at least one
// range, in ring order, each once.
func OwningClusters(t *wire.TableInfo) []string {
	var ids []string
	seen := map[string]bool{}
	for _, o := range t.Ranges {
		if !seen[o.Cluster] {
			seen[o.Cluster] = true
			ids = append(ids, o.Cluster)
		}
	}
	return ids
}

// normalBootstrap returns a copy of t as OpenFileTable writes it: version 0
// becomes 1 and the ranges are sorted.
func normalBootstrap(t *wire.TableInfo) *wire.TableInfo {
	c := CloneTable(t)
	if c.Version == 0 {
		c.Version = 1
	}
	sortRanges(c)
	return c
}

// ValidateBootstrap checks t as OpenFileTable and OpenMetaTable would
// write it (version 0 as 1, ranges sorted): nil, or an error wrapping
// ErrInvalidTable.
func ValidateBootstrap(t *wire.TableInfo) error { return ValidateTable(normalBootstrap(t)) }
