package client

import (
	"fmt"

	"github.com/cleavefs/cleave/wire"
)

// The answers of the admin calls (Status, Table, Splits, the membership
// and user calls), in the SDK's own types. Their JSON forms are the ones
// the CLI prints with -o json (docs/cli.md).

// Status is the deployment as a router sees it.
type Status struct {
	Router   string          `json:"router"`
	Version  uint64          `json:"version"`
	Routers  []RouterStatus  `json:"routers,omitempty"`
	Clusters []ClusterStatus `json:"clusters"`
	Splits   []SplitStatus   `json:"splits,omitempty"` // splits recorded in the meta group, newest last
}

// RouterStatus is one router of the meta group.
type RouterStatus struct {
	ID     string `json:"id"`      // router id, e.g. "r1"
	RaftID uint64 `json:"raft_id"` // its member id in the meta group
	Addr   string `json:"addr"`    // client address
	// PeerAddr is its peer address (meta group, router to router).
	PeerAddr string `json:"peer_addr,omitempty"`
	// WrongPlaneFrames counts one-way frames (RAFT) that arrived on its
	// client listener and were dropped, since start.
	WrongPlaneFrames uint64 `json:"wrong_plane_frames,omitempty"`
	Leader           bool   `json:"leader"` // leads the meta group
	Applied          uint64 `json:"applied"`
	Version          uint64 `json:"version"` // routing-table version it routes with
	PID              int    `json:"pid"`     // OS pid under `cleave up`, else 0
	Error            string `json:"error,omitempty"`
}

// ClusterStatus is one cluster as the router sees it.
type ClusterStatus struct {
	ID     string       `json:"id"`
	Range  Range        `json:"range"`
	Leader string       `json:"leader"` // leader's address, "" if none
	Nodes  []NodeStatus `json:"nodes"`
	// HotRoot, when set, is a root directory that carried at least half of
	// the cluster's requests lately: all of a root lives in one cluster, so
	// a split cannot spread its load, and an automatic split by request
	// rate leaves the cluster alone.
	HotRoot *HotRoot `json:"hot_root,omitempty"`
}

// HotRoot is a root directory that carries most of its cluster's requests.
type HotRoot struct {
	Name  string `json:"name"`
	Ops   uint64 `json:"ops"`   // its requests over Seconds (at least)
	Total uint64 `json:"total"` // the cluster's requests over Seconds
	// Seconds is the span the counters were compared over; 0: since the
	// nodes started (the router had no earlier sample).
	Seconds float64 `json:"seconds"`
}

// String says what the hot root did and why a split does not help.
func (h HotRoot) String() string {
	span := "since the nodes started"
	if h.Seconds > 0 {
		span = fmt.Sprintf("in the last %.0fs", h.Seconds)
	}
	return fmt.Sprintf("root %q carried %d of the cluster's %d requests %s; a root lives whole in one cluster, so a split cannot spread its load", h.Name, h.Ops, h.Total, span)
}

// NodeStatus is what a storage node reports about itself.
type NodeStatus struct {
	ID         uint64 `json:"id"`
	Cluster    string `json:"cluster"`
	Addr       string `json:"addr"`                // client address
	PeerAddr   string `json:"peer_addr,omitempty"` // peer address
	Role       string `json:"role"`                // leader, follower, candidate, learner, down
	Term       uint64 `json:"term"`
	Leader     uint64 `json:"leader_id"` // raft id of the leader it knows, 0 if none
	LeaderAddr string `json:"-"`
	Commit     uint64 `json:"commit"`
	Applied    uint64 `json:"applied"`
	PID        int    `json:"pid"` // OS pid under `cleave up`, else 0
	Range      Range  `json:"range"`
	Error      string `json:"error,omitempty"` // why the router could not reach it

	ScrubChecked uint64 `json:"scrub_checked"` // chunks the scrubber verified since start
	ScrubBytes   uint64 `json:"scrub_bytes"`   // bytes the scrubber verified since start
	ScrubCorrupt uint64 `json:"scrub_corrupt"` // chunks found corrupt since start (each is logged)
	ScrubPasses  uint64 `json:"scrub_passes"`  // complete passes over every chunk since start

	// What the node holds and serves (cleave up's auto-split reads them):
	// files whose root is in its range and the sum of their sizes (a few
	// seconds old; a split's source counts the moved half until cleanup),
	// and client requests handled since start (STATUS excluded).
	Files uint64 `json:"files"`
	Bytes uint64 `json:"bytes"`
	Ops   uint64 `json:"ops"`
	// The chunks the node stores, with the same age as Files: Chunks and
	// ChunkBytes count every stored chunk; PendingChunks and PendingBytes
	// the part of them no file references any more, kept until the chunk
	// TTL passes (an upload racing with the delete may still commit them).
	Chunks        uint64 `json:"chunks"`
	ChunkBytes    uint64 `json:"chunk_bytes"`
	PendingChunks uint64 `json:"pending_chunks"`
	PendingBytes  uint64 `json:"pending_bytes"`
	// Roots are the busiest and biggest root directories of the node's
	// range (at most 5), so a user can see why halving a range would
	// not help: all of one root lives in one cluster.
	Roots []RootUsage `json:"roots,omitempty"`
	// ChunksRepaired counts corrupt or missing chunks this node rewrote
	// from another member's verified copy since start (found by a read or
	// by the scrubber); RepairFailed the attempts that found no healthy copy.
	ChunksRepaired uint64 `json:"chunks_repaired"`
	RepairFailed   uint64 `json:"repair_failed"`
	// Raft frames this node's replica dropped since it opened (a split's
	// fork opens a new one): frames naming another group or epoch, and
	// heartbeats declaring a commit beyond the local log, and frames no
	// honest peer sends (a local type, a sender outside the group, a term
	// or index beyond the replica's bounds).
	ForeignFrames   uint64 `json:"foreign_frames,omitempty"`
	BadCommitFrames uint64 `json:"bad_commit_frames,omitempty"`
	InvalidFrames   uint64 `json:"invalid_frames,omitempty"`
	// WrongPlaneFrames counts one-way frames (RAFT) that arrived on the
	// client listener and were dropped, since start.
	WrongPlaneFrames uint64 `json:"wrong_plane_frames,omitempty"`

	Members  []MemberStatus `json:"members,omitempty"`   // the raft group's members as this node knows them
	LogFirst uint64         `json:"log_first,omitempty"` // first index still in the local log (older ones are compacted)
	// Replaces is the node id this node took over from after that id's
	// data was lost, until the replacement (ReplaceNode) has reached it.
	Replaces uint64 `json:"replaces,omitempty"`

	// Checksum is "sha256:<hex>" over every state machine key and value at
	// applied index ChecksumIndex; set only when STATUS asked for it with
	// its checksum flag (the SDK does not). Replicas at the same index have
	// the same checksum.
	Checksum      string `json:"checksum,omitempty"`
	ChecksumIndex uint64 `json:"checksum_index,omitempty"`

	// The continuous cross-replica consistency check: every replica hashes
	// its state at the applied index of each check entry the leader
	// proposes, and compares with its peers at equal indexes. CheckIndex
	// and CheckHash are this node's latest result ("sha256:<hex>" of the
	// state machine, chunk bytes stood in for by their content-addressed
	// names); CheckCompared the highest index it compared with peers;
	// CheckMismatches the compared indexes at which replicas differed,
	// since start.
	CheckIndex      uint64 `json:"check_index"`
	CheckHash       string `json:"check_hash,omitempty"`
	CheckCompared   uint64 `json:"check_compared"`
	CheckMismatches uint64 `json:"check_mismatches"`
	// Alarm is set while the latest compared check found replicas that
	// differ: it says at which index and which replicas. Diverged are the
	// raft ids of the replicas outside the majority (empty while no
	// majority agrees); Quarantined says this node is one of them and
	// refuses reads until a later check agrees again.
	Alarm       string   `json:"alarm,omitempty"`
	AlarmIndex  uint64   `json:"alarm_index,omitempty"`
	Diverged    []uint64 `json:"diverged,omitempty"`
	Quarantined bool     `json:"quarantined,omitempty"`

	// The node's storage: the bytes free on its data volume and the
	// watermark below which its leader refuses writes that add data with
	// NO_SPACE (both refreshed at most every quarter second); Conditions
	// name what is wrong now (the Condition constants). StorageError is
	// the latest error of the storage engine's background work (a flush or
	// a compaction) and StorageErrorAt when it happened (RFC 3339); both
	// stay after the error clears.
	FreeBytes      uint64   `json:"free_bytes"`
	MinFreeBytes   uint64   `json:"min_free_bytes"`
	Conditions     []string `json:"conditions,omitempty"`
	StorageError   string   `json:"storage_error,omitempty"`
	StorageErrorAt string   `json:"storage_error_at,omitempty"`

	// Set by the router in its status: what gossip says of the node
	// ("alive", "dead", "" if unknown) and how many entries it has applied
	// fewer than the most caught-up member of its cluster.
	Liveness string `json:"liveness,omitempty"`
	Lag      uint64 `json:"lag"`
}

// MemberStatus is one member of a node's raft group as that node sees it.
type MemberStatus struct {
	ID       uint64 `json:"id"`
	Addr     string `json:"addr"`                // client address
	PeerAddr string `json:"peer_addr,omitempty"` // peer address; "" means Addr
	Voter    bool   `json:"voter"`               // false: learner
	Match    uint64 `json:"match,omitempty"`     // leader only: highest log index known replicated there
	// Acked is true if the node answering saw this member act on its
	// durable raft state (lead, vote, answer a leader): a member whose
	// disk is lost must come back under a new id.
	Acked bool `json:"acked,omitempty"`
}

// RootUsage is one root directory's share of a node's data and requests.
type RootUsage struct {
	Name  string `json:"name"`
	Files uint64 `json:"files"`
	Bytes uint64 `json:"bytes"`
	Ops   uint64 `json:"ops"` // client requests for paths under it since start
}

// SplitSpec names a split: the source cluster, the new cluster and its
// nodes (already started empty with --join), and the cut point.
type SplitSpec struct {
	Cluster    string   `json:"cluster"`     // source cluster
	NewCluster string   `json:"new_cluster"` // the new cluster's id
	Nodes      []Member `json:"nodes"`       // the new cluster's nodes
	At         uint64   `json:"at"`          // cut point; 0 = the middle of the source's range
	Abandon    bool     `json:"abandon"`     // abandon the split in progress of Cluster instead
}

// SplitStatus is a split as recorded in the meta group.
type SplitStatus struct {
	ID         uint64     `json:"id"`
	Cluster    string     `json:"cluster"`
	NewCluster string     `json:"new_cluster"`
	Nodes      []Member   `json:"nodes"`
	Range      Range      `json:"range"` // the source's range before the split
	At         uint64     `json:"at"`
	Phase      SplitPhase `json:"phase"`
	Index      uint64     `json:"index,omitempty"`   // log index of the SPLIT entry in the source
	Version    uint64     `json:"version,omitempty"` // routing version that moved the upper half
	Error      string     `json:"error,omitempty"`   // last error of the driver, if any
}

// Member is one node of a cluster in the routing table: its client
// address (data ops) and its peer address (raft, membership, split). A
// record without a peer address, written by older builds, means one
// address for both.
type Member struct {
	ID       uint64 `json:"id"`
	Addr     string `json:"addr"`
	PeerAddr string `json:"peer_addr,omitempty"`
}

// Range is a half-open interval [Start, End) of the 64-bit hash ring.
// End == 0 stands for 2^64, the top of the ring, so [0, 0) is the whole ring;
// an empty range is never stored.
type Range struct {
	Start uint64 `json:"start"`
	End   uint64 `json:"end"`
}

// RangeOwner assigns a range to a cluster.
type RangeOwner struct {
	Range   Range  `json:"range"`
	Cluster string `json:"cluster"`
}

// ClusterInfo names a cluster's members.
type ClusterInfo struct {
	ID      string   `json:"id"`
	Members []Member `json:"members"`
}

// RoutingTable is the routing table: ranges sorted by start, covering the ring.
type RoutingTable struct {
	Version  uint64        `json:"version"`
	Ranges   []RangeOwner  `json:"ranges"`
	Clusters []ClusterInfo `json:"clusters"`
}

// User is one user and its grants, as Users reports them.
type User struct {
	Name   string  `json:"name"`
	Grants []Grant `json:"grants"`
}

// Grant is one permission of a user: Perm ("read", "write" or "admin") on
// Prefix and every path under it. Each permission includes the ones before
// it; admin also allows the admin verbs when Prefix is "/".
type Grant struct {
	Prefix string `json:"prefix"`
	Perm   string `json:"perm"`
}

// Peer returns m's peer address: PeerAddr, else Addr.
func (m Member) Peer() string {
	if m.PeerAddr != "" {
		return m.PeerAddr
	}
	return m.Addr
}

// SplitPhase is how far a split has got, as the meta group records it. The
// phases of a split that completes come in the order of the constants
// below; SplitAbandoned ends one before SPLIT commits.
type SplitPhase string

// The split phases, in order, with the protocol's values.
const (
	SplitPlanned       = SplitPhase(wire.SplitPlanned)       // recorded; nothing done yet
	SplitLearnersAdded = SplitPhase(wire.SplitLearnersAdded) // the new nodes are learners of the source
	SplitCaughtUp      = SplitPhase(wire.SplitCaughtUp)      // the learners are within a small lag of the source's log
	SplitCommitted     = SplitPhase(wire.SplitCommitted)     // the source applied SPLIT (Index)
	SplitTableUpdated  = SplitPhase(wire.SplitTableUpdated)  // the routing table gives [At, End) to the new cluster (Version)
	SplitCleaned       = SplitPhase(wire.SplitCleaned)       // learners removed from the source, moved half deleted there
	SplitAbandoned     = SplitPhase(wire.SplitAbandoned)     // stopped before SPLIT committed; the source is unchanged
)

// Final reports whether p ends a split: cleaned or abandoned.
func (p SplitPhase) Final() bool { return p == SplitCleaned || p == SplitAbandoned }

// Conditions a node reports in NodeStatus.Conditions.
const (
	// ConditionNoSpace: the data volume is below the free-space watermark;
	// the node's leader refuses writes that add data.
	ConditionNoSpace = "no_space"
	// ConditionStorageError: the storage engine's background work failed
	// within the last minute (NodeStatus.StorageError says how).
	ConditionStorageError = "storage_error"
	// ConditionWriteStall: the storage engine is delaying writes until its
	// flushes and compactions catch up.
	ConditionWriteStall = "write_stall"
)
