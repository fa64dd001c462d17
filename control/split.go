package control

// Split records in the meta group (docs/split.md).
//
// A split's progress is a wire.SplitStatus stored in the meta state machine
// under metaSplitsKey, next to the table. It changes only through a
// metaCommand of Kind "split", which carries the new record and,
// optionally, the new table: both apply in one entry, so "the table gives
// the upper half to the new cluster" and "the split is at table-updated"
// are never out of step. Apply accepts a record only if NextPhase allows
// its phase after the stored one: the state machine is a pure function
// (NextPhase), replayed identically by every router.

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cockroachdb/pebble/v2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/cleavefs/cleave/internal/ring"
	"github.com/cleavefs/cleave/wire"
)

var phaseOrder = []wire.SplitPhase{wire.SplitPlanned, wire.SplitLearnersAdded, wire.SplitCaughtUp, wire.SplitCommitted, wire.SplitTableUpdated, wire.SplitCleaned}

// NextPhase reports whether a split may move from phase cur to next: one
// step forward, staying put (an idempotent retry), or to abandoned before
// SPLIT may have committed. A SPLIT_FORK may be in flight in caught-up, so
// abandoning there is allowed only because the driver first fences the
// source with an abandon entry (docs/split.md).
func NextPhase(cur, next wire.SplitPhase) error {
	if cur == next {
		return nil
	}
	if next == wire.SplitAbandoned {
		switch cur {
		case wire.SplitPlanned, wire.SplitLearnersAdded, wire.SplitCaughtUp:
			return nil
		}
		return fmt.Errorf("%w: %s cannot be abandoned (SPLIT has committed)", ErrBadTransition, cur)
	}
	i, j := slices.Index(phaseOrder, cur), slices.Index(phaseOrder, next)
	if i < 0 || j < 0 || j != i+1 {
		return fmt.Errorf("%w: %s to %s", ErrBadTransition, cur, next)
	}
	return nil
}

// metaSplitsKey holds every split record (msgpack []wire.SplitStatus).
var metaSplitsKey = []byte("m/splits")

const metaKindSplit = "split"

// maxSplitRecords bounds the finished records kept for status.
const maxSplitRecords = 32

// PlanSplit returns the planned record of a split of spec.Cluster under
// table t, with id. It checks the spec against the table.
func PlanSplit(t *wire.TableInfo, splits []wire.SplitStatus, id uint64, spec *wire.SplitSpec) (wire.SplitStatus, error) {
	if spec == nil || spec.Cluster == "" || spec.NewCluster == "" || len(spec.Nodes) == 0 {
		return wire.SplitStatus{}, errors.New("a split needs the source cluster, the new cluster's id and its nodes")
	}
	for _, s := range splits {
		if !s.Phase.Final() {
			return wire.SplitStatus{}, fmt.Errorf("split %d of %s is in progress (%s); one split at a time", s.ID, s.Cluster, s.Phase)
		}
		if s.Phase == wire.SplitAbandoned && s.Cluster == spec.Cluster && s.NewCluster == spec.NewCluster {
			// The abandon fenced the source against this very split: its
			// SPLIT would be refused. A new id makes a new split.
			return wire.SplitStatus{}, fmt.Errorf("the split of %s to %s was abandoned (split %d) and %s refuses it; name the new cluster differently", s.Cluster, s.NewCluster, s.ID, s.Cluster)
		}
	}
	rng, ok := ClusterRange(t, spec.Cluster)
	if !ok {
		return wire.SplitStatus{}, fmt.Errorf("cluster %s owns no range in routing table version %d", spec.Cluster, t.Version)
	}
	if _, ok := Cluster(t, spec.NewCluster); ok {
		return wire.SplitStatus{}, fmt.Errorf("cluster %s already exists", spec.NewCluster)
	}
	at := spec.At
	if at == 0 {
		at = ring.Mid(rng)
	}
	if at <= rng.Start || (rng.End != 0 && at >= rng.End) {
		return wire.SplitStatus{}, fmt.Errorf("cut point %#016x is not inside %s's range %v", at, spec.Cluster, rng)
	}
	seen := map[uint64]bool{}
	for _, c := range t.Clusters {
		for _, m := range c.Members {
			seen[m.ID] = true
		}
	}
	for _, m := range spec.Nodes {
		if m.ID == 0 || m.Addr == "" || seen[m.ID] {
			return wire.SplitStatus{}, fmt.Errorf("node %d (%q): ids must be new and nonzero, with an address", m.ID, m.Addr)
		}
		seen[m.ID] = true
	}
	return wire.SplitStatus{
		ID: id, Cluster: spec.Cluster, NewCluster: spec.NewCluster, Nodes: slices.Clone(spec.Nodes),
		Range: rng, At: at, Phase: wire.SplitPlanned,
	}, nil
}

// SplitTable moves [At, End) of rec's source to its new cluster in t.
func SplitTable(t *wire.TableInfo, rec *wire.SplitStatus) error {
	for i, o := range t.Ranges {
		if o.Cluster == rec.Cluster && o.Range == rec.Range {
			t.Ranges[i].Range.End = rec.At
			t.Ranges = append(t.Ranges, wire.RangeOwner{Range: wire.Range{Start: rec.At, End: rec.Range.End}, Cluster: rec.NewCluster})
			t.Clusters = append(t.Clusters, wire.ClusterInfo{ID: rec.NewCluster, Members: slices.Clone(rec.Nodes)})
			return nil
		}
	}
	return fmt.Errorf("cluster %s no longer owns %v", rec.Cluster, rec.Range)
}

// applySplit is the meta FSM's Apply for a split command.
func (f *metaFSM) applySplit(b *pebble.Batch, c *metaCommand) any {
	if c.Split == nil {
		return fmt.Errorf("%w: split command without a record", ErrInvalidTable)
	}
	splits := slices.Clone(f.Splits())
	i := slices.IndexFunc(splits, func(s wire.SplitStatus) bool { return s.ID == c.Split.ID })
	switch {
	case i < 0 && c.Split.Phase != wire.SplitPlanned:
		return fmt.Errorf("%w: split %d is unknown", ErrBadTransition, c.Split.ID)
	case i < 0:
		for _, s := range splits {
			if !s.Phase.Final() {
				return fmt.Errorf("%w: split %d is in progress", ErrBadTransition, s.ID)
			}
		}
		splits = append(splits, *c.Split)
	default:
		if err := NextPhase(splits[i].Phase, c.Split.Phase); err != nil {
			return err
		}
		splits[i] = *c.Split
	}
	if c.Table != nil {
		if err := f.checkTable(c); err != nil {
			return err
		}
		v, err := msgpack.Marshal(&metaCommand{Expect: c.Expect, Table: c.Table})
		if err != nil {
			return err
		}
		if err := b.Set(metaTableKey, v, nil); err != nil {
			return err
		}
	}
	for len(splits) > maxSplitRecords && splits[0].Phase.Final() {
		splits = splits[1:]
	}
	v, err := msgpack.Marshal(splits)
	if err != nil {
		return err
	}
	if err := b.Set(metaSplitsKey, v, nil); err != nil {
		return err
	}
	if c.Table != nil {
		f.cur.Store(c.Table)
	}
	f.splits.Store(&splits)
	return nil
}

// Splits returns the split records this router has applied, oldest first.
func (f *metaFSM) Splits() []wire.SplitStatus {
	if p := f.splits.Load(); p != nil {
		return *p
	}
	return nil
}

func (f *metaFSM) loadSplits() error {
	v, closer, err := f.db.Get(metaSplitsKey)
	if errors.Is(err, pebble.ErrNotFound) {
		f.splits.Store(nil)
		return nil
	}
	if err != nil {
		return err
	}
	defer closer.Close()
	var s []wire.SplitStatus
	if err := msgpack.Unmarshal(v, &s); err != nil {
		return fmt.Errorf("router: stored split records do not decode: %w", err)
	}
	f.splits.Store(&s)
	return nil
}

// Splits returns the split records of the meta group, oldest first.
func (m *MetaTable) Splits() []wire.SplitStatus { return m.fsm.Splits() }

// RecordSplit commits rec (a phase change allowed by NextPhase) in the meta
// group; with table set it also applies table to the routing table, in the
// same entry, and records the new version in rec.Version. Only on the meta
// leader (ErrNotMetaLeader elsewhere).
func (m *MetaTable) RecordSplit(ctx context.Context, rec wire.SplitStatus, table func(*wire.TableInfo) error) (wire.SplitStatus, error) {
	err := m.propose(ctx, func() (*metaCommand, string, error) {
		c := &metaCommand{Kind: metaKindSplit, Split: &rec}
		if table != nil {
			old := m.Current()
			t, err := nextTable(old, table)
			if err != nil {
				return nil, "", fmt.Errorf("split %d: %w", rec.ID, err)
			}
			c.Expect, c.Table = old.Version, t
			rec.Version = t.Version
		}
		return c, fmt.Sprintf("record split %d", rec.ID), nil
	})
	return rec, err
}
