package client

import "github.com/cleavefs/cleave/wire"

// Conversions between the protocol's messages and the SDK's admin types.
// Each copies every field; a test fills every field of the wire type and
// checks that nothing is lost and that the JSON forms are equal.

func statusFromWire(w *wire.Status) *Status {
	s := &Status{Router: w.Router, Version: w.Version}
	for _, r := range w.Routers {
		s.Routers = append(s.Routers, RouterStatus{
			ID: r.ID, RaftID: r.RaftID, Addr: r.Addr, PeerAddr: r.PeerAddr,
			WrongPlaneFrames: r.WrongPlaneFrames, Leader: r.Leader, Applied: r.Applied,
			Version: r.Version, PID: r.PID, Error: r.Error,
		})
	}
	if w.Clusters != nil {
		s.Clusters = make([]ClusterStatus, len(w.Clusters))
	}
	for i, c := range w.Clusters {
		s.Clusters[i] = ClusterStatus{ID: c.ID, Range: Range(c.Range), Leader: c.Leader}
		if c.HotRoot != nil {
			h := HotRoot(*c.HotRoot)
			s.Clusters[i].HotRoot = &h
		}
		if c.Nodes != nil {
			s.Clusters[i].Nodes = make([]NodeStatus, len(c.Nodes))
		}
		for j := range c.Nodes {
			s.Clusters[i].Nodes[j] = *nodeFromWire(&c.Nodes[j])
		}
	}
	s.Splits = splitsFromWire(w.Splits)
	return s
}

func nodeFromWire(w *wire.NodeStatus) *NodeStatus {
	n := &NodeStatus{
		ID: w.ID, Cluster: w.Cluster, Addr: w.Addr, PeerAddr: w.PeerAddr, Role: w.Role,
		Term: w.Term, Leader: w.Leader, LeaderAddr: w.LeaderAddr, Commit: w.Commit,
		Applied: w.Applied, PID: w.PID, Range: Range(w.Range), Error: w.Error,

		ScrubChecked: w.ScrubChecked, ScrubBytes: w.ScrubBytes,
		ScrubCorrupt: w.ScrubCorrupt, ScrubPasses: w.ScrubPasses,

		Files: w.Files, Bytes: w.Bytes, Ops: w.Ops,
		Chunks: w.Chunks, ChunkBytes: w.ChunkBytes,
		PendingChunks: w.PendingChunks, PendingBytes: w.PendingBytes,

		ChunksRepaired: w.ChunksRepaired, RepairFailed: w.RepairFailed,
		ForeignFrames: w.ForeignFrames, BadCommitFrames: w.BadCommitFrames,
		InvalidFrames: w.InvalidFrames, WrongPlaneFrames: w.WrongPlaneFrames,

		LogFirst: w.LogFirst, Replaces: w.Replaces, Checksum: w.Checksum, ChecksumIndex: w.ChecksumIndex,

		CheckIndex: w.CheckIndex, CheckHash: w.CheckHash,
		CheckCompared: w.CheckCompared, CheckMismatches: w.CheckMismatches,
		Alarm: w.Alarm, AlarmIndex: w.AlarmIndex, Quarantined: w.Quarantined,

		FreeBytes: w.FreeBytes, MinFreeBytes: w.MinFreeBytes,
		StorageError: w.StorageError, StorageErrorAt: w.StorageErrorAt,

		Liveness: w.Liveness, Lag: w.Lag,
	}
	for _, r := range w.Roots {
		n.Roots = append(n.Roots, RootUsage(r))
	}
	for _, m := range w.Members {
		n.Members = append(n.Members, MemberStatus(m))
	}
	n.Diverged = append([]uint64(nil), w.Diverged...)
	n.Conditions = append([]string(nil), w.Conditions...)
	return n
}

func splitsFromWire(ws []wire.SplitStatus) []SplitStatus {
	if ws == nil {
		return nil
	}
	out := make([]SplitStatus, len(ws))
	for i := range ws {
		out[i] = *splitFromWire(&ws[i])
	}
	return out
}

func splitFromWire(w *wire.SplitStatus) *SplitStatus {
	return &SplitStatus{
		ID: w.ID, Cluster: w.Cluster, NewCluster: w.NewCluster, Nodes: membersFromWire(w.Nodes),
		Range: Range(w.Range), At: w.At, Phase: SplitPhase(w.Phase),
		Index: w.Index, Version: w.Version, Error: w.Error,
	}
}

func membersFromWire(ws []wire.Member) []Member {
	if ws == nil {
		return nil
	}
	out := make([]Member, len(ws))
	for i, m := range ws {
		out[i] = Member(m)
	}
	return out
}

func (s *SplitSpec) toWire() *wire.SplitSpec {
	w := &wire.SplitSpec{Cluster: s.Cluster, NewCluster: s.NewCluster, At: s.At, Abandon: s.Abandon}
	if s.Nodes != nil {
		w.Nodes = make([]wire.Member, len(s.Nodes))
		for i, m := range s.Nodes {
			w.Nodes[i] = wire.Member(m)
		}
	}
	return w
}

func tableFromWire(w *wire.TableInfo) *RoutingTable {
	t := &RoutingTable{Version: w.Version}
	if w.Ranges != nil {
		t.Ranges = make([]RangeOwner, len(w.Ranges))
	}
	for i, r := range w.Ranges {
		t.Ranges[i] = RangeOwner{Range: Range(r.Range), Cluster: r.Cluster}
	}
	if w.Clusters != nil {
		t.Clusters = make([]ClusterInfo, len(w.Clusters))
	}
	for i, c := range w.Clusters {
		t.Clusters[i] = ClusterInfo{ID: c.ID, Members: membersFromWire(c.Members)}
	}
	return t
}

func usersFromWire(ws []wire.UserInfo) []User {
	if ws == nil {
		return nil
	}
	out := make([]User, len(ws))
	for i, u := range ws {
		out[i] = User{Name: u.Name}
		if u.Grants != nil {
			out[i].Grants = make([]Grant, len(u.Grants))
		}
		for j, g := range u.Grants {
			out[i].Grants[j] = Grant(g)
		}
	}
	return out
}

// UnmarshalJSON reads what MarshalJSON writes, including an end of 2^64.
func (r *Range) UnmarshalJSON(b []byte) error {
	var w wire.Range
	if err := w.UnmarshalJSON(b); err != nil {
		return err
	}
	*r = Range(w)
	return nil
}

// Contains reports whether point p lies in r.
func (r Range) Contains(p uint64) bool { return wire.Range(r).Contains(p) }

// MarshalJSON writes End == 0 as 18446744073709551616 so readers see 2^64.
func (r Range) MarshalJSON() ([]byte, error) { return wire.Range(r).MarshalJSON() }

// String returns r as "[0x…, 0x…)", the top of the ring as 2^64.
func (r Range) String() string { return wire.Range(r).String() }
