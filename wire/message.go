package wire

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/internal/fspath"
)

// ProtocolVersion is the version this build speaks in HELLO.
const ProtocolVersion = 1

// Op names the operation of a request. Values are part of the protocol.
type Op uint8

// Operations. Client operations come first; the rest are spoken between
// cleave processes (router to node, node to node) but use the same framing.
const (
	OpHello  Op = 1  // first request on every connection; Request.Hello set
	OpMkdir  Op = 2  // create a directory; FlagParents makes missing parents
	OpPut    Op = 3  // create or replace a whole file with Data; FlagParents
	OpGet    Op = 4  // read a whole file
	OpList   Op = 5  // list a directory (sorted by name)
	OpStat   Op = 6  // metadata of one path
	OpRemove Op = 7  // remove a file or empty directory; FlagRecursive for trees
	OpExists Op = 8  // Response.Exists tells whether Path exists
	OpStatus Op = 9  // router: the deployment's status; node: its own NodeStatus
	OpTable  Op = 10 // the routing table (Response.Routes)
	OpWrite  Op = 11 // write Data at Offset into a file (sparse gaps read as zeros)
	OpAppend Op = 12 // append Data to a file (created if absent)
	OpRename Op = 13 // move Path to To, atomically, within one root
	OpCopy   Op = 14 // copy the file Path to To, atomically, within one root
	OpChunk  Op = 15 // store one content-addressed chunk (Data); Response.Chunk names it
	OpCommit Op = 16 // make Path a file of the listed Chunks, atomically

	// Node to node: one frame of a snapshot stream (Request.Snap; Data is a
	// slice of the stream). Answered OK, or an error that aborts the stream.
	OpSnapshot Op = 17
	// Admin, sent to a cluster's leader: membership changes (Request.Member).
	OpAddLearner   Op = 18 // add Member{ID, Addr} as a non-voting learner
	OpPromote      Op = 19 // make learner Member.ID a voter once it is caught up
	OpRemoveMember Op = 20 // remove Member.ID (voter or learner) from the group

	OpRouterInfo Op = 32 // router to router: the answering router's own RouterStatus

	// Router admin: manage users and their grants (Request.User; docs/security.md).
	// Answered with Response.Users ("list") or Response.Token ("add").
	OpUser Op = 33

	// Split (docs/split.md). OpSplit is the admin verb sent to
	// any router (it is passed on to the meta leader): start, or resume,
	// the split of Request.Split.Cluster; answered with Response.Split, the
	// split's record. The rest are sent by the meta leader to the source
	// cluster's leader.
	OpSplit        Op = 40 // router admin: split a cluster (Request.Split)
	OpSplitFork    Op = 41 // node: propose the SPLIT entry (Request.Split); answers Response.Split with its log index
	OpSplitCleanup Op = 42 // node: delete up to Request.Limit moved entries of the last split; Response.Exists = more remain

	// Node to node: the verified local copy of one chunk, named by
	// Request.Chunks[0] ("sha256:<hex>"), in Response.Data. A node that
	// finds a chunk corrupt fetches it from another member this way and
	// rewrites its own copy (cluster/repair.go). NOT_FOUND if the answering
	// node does not hold it, INTERNAL if its copy is corrupt too.
	OpChunkFetch Op = 50

	OpRaft Op = 64 // one-way: Data is a marshalled raftpb.Message; no response
)

var opNames = map[Op]string{
	OpHello: "HELLO", OpMkdir: "MKDIR", OpPut: "PUT", OpGet: "GET", OpList: "LIST",
	OpStat: "STAT", OpRemove: "REMOVE", OpExists: "EXISTS", OpStatus: "STATUS",
	OpTable: "TABLE", OpWrite: "WRITE", OpAppend: "APPEND", OpRename: "RENAME",
	OpCopy: "COPY", OpChunk: "CHUNK", OpCommit: "COMMIT", OpRaft: "RAFT",
	OpRouterInfo: "ROUTER_INFO", OpSnapshot: "SNAPSHOT", OpAddLearner: "ADD_LEARNER", OpPromote: "PROMOTE",
	OpRemoveMember: "REMOVE_MEMBER", OpSplit: "SPLIT", OpSplitFork: "SPLIT_FORK", OpSplitCleanup: "SPLIT_CLEANUP",
	OpChunkFetch: "CHUNK_FETCH", OpUser: "USER",
}

func (o Op) String() string {
	if n, ok := opNames[o]; ok {
		return n
	}
	return "OP_" + strconv.Itoa(int(o))
}

// Known reports whether o is an operation this build understands.
func (o Op) Known() bool { _, ok := opNames[o]; return ok }

// Mutating reports whether o changes state and so goes through the leader's log.
func (o Op) Mutating() bool {
	switch o {
	case OpMkdir, OpPut, OpRemove, OpWrite, OpAppend, OpRename, OpCopy, OpChunk, OpCommit:
		return true
	}
	return false
}

// OneWay reports whether o expects no response.
func (o Op) OneWay() bool { return o == OpRaft }

// Plane is one of the two listeners of a cleave process: the client plane
// (SDK and CLI to router, router to node data ops) and the peer plane
// (raft, snapshots, membership, split, router to router). A process serves
// an op only on the planes it belongs to and refuses it on the other.
type Plane uint8

// The planes.
const (
	ClientPlane Plane = iota
	PeerPlane
)

func (p Plane) String() string {
	if p == PeerPlane {
		return "peer"
	}
	return "client"
}

// NodePlane reports whether a storage node serves o on plane p. The peer
// plane serves raft traffic, snapshots, chunk fetches between members,
// membership changes, a split's fork and cleanup, and STATUS; the client
// plane serves the data ops and STATUS.
func NodePlane(o Op, p Plane) bool {
	switch o {
	case OpStatus, OpHello:
		return true
	case OpRaft, OpSnapshot, OpChunkFetch, OpAddLearner, OpPromote, OpRemoveMember, OpSplitFork, OpSplitCleanup:
		return p == PeerPlane
	}
	return p == ClientPlane
}

// RouterPlane reports whether a router serves o on plane p. The peer plane
// serves the meta group's raft traffic and snapshots, ROUTER_INFO, and the
// admin verbs a router passes on to the meta leader (SPLIT, USER and the
// membership ops), and STATUS; the client plane serves everything else
// and the admin verbs, not raft, snapshots or ROUTER_INFO.
func RouterPlane(o Op, p Plane) bool {
	switch o {
	case OpStatus, OpHello, OpSplit, OpUser, OpAddLearner, OpPromote, OpRemoveMember:
		return true
	case OpRaft, OpSnapshot, OpRouterInfo:
		return p == PeerPlane
	}
	return p == ClientPlane
}

// WrongPlane is the answer to an op refused on plane p: FORBIDDEN, naming
// the listener that serves it.
func WrongPlane(o Op, p Plane) *Response {
	other := ClientPlane
	if p == ClientPlane {
		other = PeerPlane
	}
	return &Response{Code: Forbidden, Message: fmt.Sprintf("%v is served only on the %s listener, not on the %s listener", o, other, p)}
}

// Flags modify an operation.
type Flags uint32

const (
	FlagParents   Flags = 1 << iota // mkdir -p; put creates missing parents
	FlagRecursive                   // rm -r
	FlagStale                       // read from local state without ReadIndex
	FlagIfAbsent                    // PUT/COMMIT/COPY/RENAME: CONFLICT if the target exists
	FlagChecksum                    // STATUS sent to a node: include NodeStatus.Checksum (scans the whole state)
	FlagMetaGroup                   // ADD_LEARNER, PROMOTE, REMOVE_MEMBER sent to a router: change the routers' meta group, not a cluster
)

// Request is one client-to-server message.
type Request struct {
	ID        uint64 `msgpack:"id"`                   // connection-unique, echoed in the response
	Op        Op     `msgpack:"op"`                   // what to do
	Path      string `msgpack:"path,omitempty"`       // absolute path
	Data      []byte `msgpack:"data,omitempty"`       // file contents, or a raft message for OpRaft
	Flags     Flags  `msgpack:"flags,omitempty"`      // FlagParents, FlagRecursive, FlagStale
	Session   uint64 `msgpack:"session,omitempty"`    // client session for exactly-once mutations
	Seq       uint64 `msgpack:"seq,omitempty"`        // sequence number within the session
	Table     uint64 `msgpack:"table,omitempty"`      // routing-table version the request was routed with
	TimeoutMs uint32 `msgpack:"timeout_ms,omitempty"` // caller's remaining deadline; 0 means server default
	Hello     *Hello `msgpack:"hello,omitempty"`      // set for OpHello

	To        string   `msgpack:"to,omitempty"`         // RENAME/COPY destination path
	Offset    int64    `msgpack:"offset,omitempty"`     // WRITE position; GET range start
	Length    int64    `msgpack:"length,omitempty"`     // GET range length; 0 reads to the end
	IfVersion uint64   `msgpack:"if_version,omitempty"` // PUT/WRITE/APPEND/COMMIT: CONFLICT unless the file's version is this
	Limit     uint32   `msgpack:"limit,omitempty"`      // LIST page size; 0 = server default (1000)
	After     string   `msgpack:"after,omitempty"`      // LIST continuation token from Response.Next
	Chunks    []string `msgpack:"chunks,omitempty"`     // COMMIT: chunk names in file order
	Size      int64    `msgpack:"size,omitempty"`       // COMMIT: total size, checked against the chunks

	Snap   *SnapChunk `msgpack:"snap,omitempty"`   // SNAPSHOT: which stream and where in it
	Member *Member    `msgpack:"member,omitempty"` // ADD_LEARNER, PROMOTE, REMOVE_MEMBER
	// Cluster names the target cluster of ADD_LEARNER, PROMOTE and
	// REMOVE_MEMBER sent to a router, which passes them on to that
	// cluster's leader and then records the cluster's voters in the
	// routing table (docs/robustness.md). Nodes ignore it.
	Cluster string     `msgpack:"cluster,omitempty"`
	Split   *SplitSpec `msgpack:"split,omitempty"` // SPLIT, SPLIT_FORK
	User    *UserSpec  `msgpack:"user,omitempty"`  // USER

	// Group and Epoch name the raft group a RAFT or SNAPSHOT frame belongs
	// to (the sender's): the cluster id ("meta" for the routers' group) and
	// the epoch a split advances. A node drops frames of another group or
	// epoch.
	Group string `msgpack:"group,omitempty"`
	Epoch uint64 `msgpack:"epoch,omitempty"`
}

// SplitSpec names a split: the source cluster, the new cluster and its
// nodes (already started empty with --join), and the cut point.
type SplitSpec struct {
	Cluster    string   `msgpack:"cluster" json:"cluster"`                   // source cluster
	NewCluster string   `msgpack:"new_cluster,omitempty" json:"new_cluster"` // the new cluster's id
	Nodes      []Member `msgpack:"nodes,omitempty" json:"nodes"`             // the new cluster's nodes
	At         uint64   `msgpack:"at,omitempty" json:"at"`                   // cut point; 0 = the middle of the source's range
	Table      uint64   `msgpack:"table,omitempty" json:"table"`             // SPLIT_FORK: routing version that will give [At, End) to NewCluster
	Abandon    bool     `msgpack:"abandon,omitempty" json:"abandon"`         // SPLIT: abandon the split if SPLIT has not committed
}

// SplitPhase is how far a split has got, as the meta group records it. The
// phases of a split that completes come in the order of the constants
// below; SplitAbandoned ends one before SPLIT commits. On the wire a phase
// is its string.
type SplitPhase string

// The split phases, in order.
const (
	SplitPlanned       SplitPhase = "planned"         // recorded; nothing done yet
	SplitLearnersAdded SplitPhase = "learners-added"  // the new nodes are learners of the source
	SplitCaughtUp      SplitPhase = "caught-up"       // the learners are within a small lag of the source's log
	SplitCommitted     SplitPhase = "split-committed" // the source applied SPLIT (Index)
	SplitTableUpdated  SplitPhase = "table-updated"   // the routing table gives [At, End) to the new cluster (Version)
	SplitCleaned       SplitPhase = "cleaned"         // learners removed from the source, moved half deleted there
	SplitAbandoned     SplitPhase = "abandoned"       // stopped before SPLIT committed; the source is unchanged
)

// Final reports whether p ends a split: cleaned or abandoned.
func (p SplitPhase) Final() bool { return p == SplitCleaned || p == SplitAbandoned }

// SplitStatus is a split as recorded in the meta group.
type SplitStatus struct {
	ID         uint64     `msgpack:"id" json:"id"`
	Cluster    string     `msgpack:"cluster" json:"cluster"`
	NewCluster string     `msgpack:"new_cluster" json:"new_cluster"`
	Nodes      []Member   `msgpack:"nodes" json:"nodes"`
	Range      Range      `msgpack:"range" json:"range"` // the source's range before the split
	At         uint64     `msgpack:"at" json:"at"`
	Phase      SplitPhase `msgpack:"phase" json:"phase"`
	Index      uint64     `msgpack:"index,omitempty" json:"index,omitempty"`     // log index of the SPLIT entry in the source
	Version    uint64     `msgpack:"version,omitempty" json:"version,omitempty"` // routing version that moved the upper half
	Error      string     `msgpack:"error,omitempty" json:"error,omitempty"`     // last error of the driver, if any
}

// SnapChunk places one SNAPSHOT frame (its bytes are in Request.Data) in a
// snapshot stream from node From to node To. The first frame (Offset 0)
// carries Raft, the marshalled raftpb.Message of type MsgSnap whose metadata
// (index, term, ConfState) the stream is an image of; the last has Done set
// and CRC, the CRC-32C (Castagnoli) of all stream bytes.
type SnapChunk struct {
	ID     uint64 `msgpack:"id"`             // stream id, chosen by the sender
	From   uint64 `msgpack:"from"`           // sender's raft id
	To     uint64 `msgpack:"to"`             // receiver's raft id
	Offset uint64 `msgpack:"offset"`         // stream offset of Request.Data
	Raft   []byte `msgpack:"raft,omitempty"` // first frame: marshalled MsgSnap
	Done   bool   `msgpack:"done,omitempty"` // last frame
	CRC    uint32 `msgpack:"crc,omitempty"`  // last frame: CRC-32C of the stream
}

// MemberStatus is one member of a node's raft group as that node sees it.
type MemberStatus struct {
	ID       uint64 `msgpack:"id" json:"id"`
	Addr     string `msgpack:"addr" json:"addr"`                               // client address
	PeerAddr string `msgpack:"peer_addr,omitempty" json:"peer_addr,omitempty"` // peer address; "" means Addr
	Voter    bool   `msgpack:"voter" json:"voter"`                             // false: learner
	Match    uint64 `msgpack:"match,omitempty" json:"match,omitempty"`         // leader only: highest log index known replicated there
	// Acked is true if this node saw the member act on its durable raft
	// state (lead, vote, answer a leader), so a lost disk there loses
	// something a quorum counted on.
	Acked bool `msgpack:"acked,omitempty" json:"acked,omitempty"`
}

// Hello opens a connection.
type Hello struct {
	Version uint32 `msgpack:"version"`         // ProtocolVersion of the sender
	Client  string `msgpack:"client"`          // free-form name, for logs
	Token   string `msgpack:"token,omitempty"` // auth token, if the server requires one
	// Session is accepted for compatibility and ignored: it is never
	// applied to requests. Every mutating request carries its own Session
	// and Seq (Request.SessionError).
	Session uint64 `msgpack:"session,omitempty"`
}

// HelloReply answers a Hello.
type HelloReply struct {
	Version  uint32   `msgpack:"version"`  // the version chosen
	Server   string   `msgpack:"server"`   // "router" or "node"
	ID       string   `msgpack:"id"`       // router or node id
	Versions []uint32 `msgpack:"versions"` // every version the server speaks
	// MaxFrame is the largest request payload, in bytes, the server reads
	// on this connection from now on; a larger frame is answered TOO_LARGE
	// and the connection closed. 0 from servers that do not announce it
	// (DefaultMaxFrame is their default).
	MaxFrame uint32 `msgpack:"max_frame,omitempty"`
}

// SessionError reports a mutating request (Op.Mutating) that carries only
// one of Session and Seq: exactly-once needs both, and a request that
// carried a seq without its session would be applied without
// deduplication. It returns nil for a request with both or neither, and
// for every other op (which ignores them). HELLO's session is never
// applied in place of the request's.
func (r *Request) SessionError() error {
	if !r.Op.Mutating() || (r.Session == 0) == (r.Seq == 0) {
		return nil
	}
	if r.Session == 0 {
		return fmt.Errorf("%v with seq %d but no session: a mutating request carries its session id in its own session field together with seq (HELLO's session is not applied to requests); send both for exactly-once, or neither", r.Op, r.Seq)
	}
	return fmt.Errorf("%v with session %d but no seq: sequence numbers start at 1; send both for exactly-once, or neither", r.Op, r.Session)
}

// FileOp reports whether r is a file operation one cluster answers by
// itself: a read (GET, STAT, LIST, EXISTS) or a change of a valid path
// other than "/", whose destination (RENAME, COPY) is a valid path other
// than "/" in the same root (a root lives whole in one cluster).
func (r *Request) FileOp() bool {
	switch r.Op {
	case OpGet, OpStat, OpList, OpExists:
	default:
		if !r.Op.Mutating() {
			return false
		}
	}
	if r.Path == "/" || fspath.Validate(r.Path) != nil {
		return false
	}
	if r.Op == OpRename || r.Op == OpCopy {
		return r.To != "/" && fspath.Validate(r.To) == nil && fspath.Root(r.To) == fspath.Root(r.Path)
	}
	return true
}

// Retriable reports whether r may be sent again after an attempt whose
// outcome is unknown: a read; a mutation with a session (the cluster
// applies a (session, seq) once); or one that sets state to what the
// request names, so that applying it twice is applying it once — CHUNK
// (content-addressed), PUT, WRITE, COMMIT and MKDIR -p, without a
// precondition (a retry of an applied IF_ABSENT or IF_VERSION write would
// answer CONFLICT). APPEND, RENAME, REMOVE and COPY without a session are
// not.
func (r *Request) Retriable() bool {
	if !r.Op.Mutating() || r.Session != 0 {
		return true
	}
	if r.IfVersion != 0 || r.Flags&FlagIfAbsent != 0 {
		return false
	}
	switch r.Op {
	case OpChunk, OpPut, OpWrite, OpCommit:
		return true
	case OpMkdir:
		return r.Flags&FlagParents != 0
	}
	return false
}

// Response is one server-to-client message.
type Response struct {
	ID      uint64 `msgpack:"id"`               // the request's ID; 0 for a connection-level error
	Code    Code   `msgpack:"code"`             // OK or the failure
	Message string `msgpack:"msg,omitempty"`    // human-readable detail for a failure
	Leader  string `msgpack:"leader,omitempty"` // NOT_LEADER: address of the leader, if known
	Table   uint64 `msgpack:"table,omitempty"`  // WRONG_RANGE: the responder's routing version

	Data    []byte        `msgpack:"data,omitempty"`        // GET contents
	Stat    *Stat         `msgpack:"stat,omitempty"`        // PUT, MKDIR, STAT
	Entries []Stat        `msgpack:"entries,omitempty"`     // LIST
	Exists  bool          `msgpack:"exists,omitempty"`      // EXISTS
	Hello   *HelloReply   `msgpack:"hello,omitempty"`       // HELLO
	Node    *NodeStatus   `msgpack:"node,omitempty"`        // STATUS sent to a node
	Status  *Status       `msgpack:"status,omitempty"`      // STATUS sent to a router
	Routes  *TableInfo    `msgpack:"routes,omitempty"`      // TABLE
	Next    string        `msgpack:"next,omitempty"`        // LIST: continuation token for Request.After; "" when no more entries
	Chunk   string        `msgpack:"chunk,omitempty"`       // CHUNK: the stored chunk's name, "sha256:<hex>"
	Router  *RouterStatus `msgpack:"router_info,omitempty"` // ROUTER_INFO
	Split   *SplitStatus  `msgpack:"split,omitempty"`       // SPLIT, SPLIT_FORK
	Users   []UserInfo    `msgpack:"users,omitempty"`       // USER list
	Token   string        `msgpack:"token,omitempty"`       // USER add: the new user's token, shown once
}

// Err returns nil for OK and a *Error otherwise.
func (r *Response) Err() error {
	if r.Code == OK {
		return nil
	}
	return &Error{Code: r.Code, Message: r.Message, Leader: r.Leader}
}

// Error is a non-OK response as a Go error.
type Error struct {
	Code    Code
	Message string
	Leader  string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Errorf builds a failed response for request id.
func Errorf(id uint64, code Code, format string, args ...any) *Response {
	return &Response{ID: id, Code: code, Message: fmt.Sprintf(format, args...)}
}

// FileType tells files from directories.
type FileType uint8

const (
	TypeFile FileType = 1
	TypeDir  FileType = 2
)

func (t FileType) String() string {
	switch t {
	case TypeFile:
		return "file"
	case TypeDir:
		return "dir"
	}
	return "unknown"
}

// Stat is the metadata of one path.
type Stat struct {
	Name     string   `msgpack:"name"`               // base name ("" for "/")
	Type     FileType `msgpack:"type"`               // TypeFile or TypeDir
	Size     int64    `msgpack:"size"`               // bytes (0 for directories)
	Mtime    int64    `msgpack:"mtime"`              // unix nanoseconds, from the leader's log entry
	Version  uint64   `msgpack:"version"`            // log index of the last change
	Checksum string   `msgpack:"checksum,omitempty"` // files: "sha256:<hex>" of the contents, or "sha256-tree:<block>:<hex>" over more than one block (docs/protocol.md)
}

// Range is a half-open interval [Start, End) of the 64-bit hash ring.
// End == 0 stands for 2^64, the top of the ring, so [0, 0) is the whole ring;
// an empty range is never stored.
type Range struct {
	Start uint64 `msgpack:"start" json:"start"`
	End   uint64 `msgpack:"end" json:"end"`
}

// Contains reports whether point p lies in r.
func (r Range) Contains(p uint64) bool {
	return p >= r.Start && (r.End == 0 || p < r.End)
}

// MarshalJSON writes End == 0 as 18446744073709551616 so readers see 2^64.
func (r Range) MarshalJSON() ([]byte, error) {
	end := strconv.FormatUint(r.End, 10)
	if r.End == 0 {
		end = "18446744073709551616"
	}
	return []byte(`{"start":` + strconv.FormatUint(r.Start, 10) + `,"end":` + end + `}`), nil
}

func (r Range) String() string {
	end := fmt.Sprintf("%#016x", r.End)
	if r.End == 0 {
		end = "2^64"
	}
	return fmt.Sprintf("[%#016x, %s)", r.Start, end)
}

// NodeStatus is what a storage node reports about itself.
type NodeStatus struct {
	ID         uint64 `msgpack:"id" json:"id"`
	Cluster    string `msgpack:"cluster" json:"cluster"`
	Addr       string `msgpack:"addr" json:"addr"`                               // client address
	PeerAddr   string `msgpack:"peer_addr,omitempty" json:"peer_addr,omitempty"` // peer address
	Role       string `msgpack:"role" json:"role"`                               // leader, follower, candidate, learner, down
	Term       uint64 `msgpack:"term" json:"term"`
	Leader     uint64 `msgpack:"leader" json:"leader_id"` // raft id of the leader it knows, 0 if none
	LeaderAddr string `msgpack:"leader_addr" json:"-"`
	Commit     uint64 `msgpack:"commit" json:"commit"`
	Applied    uint64 `msgpack:"applied" json:"applied"`
	PID        int    `msgpack:"pid" json:"pid"` // OS pid under `cleave up`, else 0
	Range      Range  `msgpack:"range" json:"range"`
	Error      string `msgpack:"error,omitempty" json:"error,omitempty"` // why the router could not reach it

	ScrubChecked uint64 `msgpack:"scrub_checked,omitempty" json:"scrub_checked"` // chunks the scrubber verified since start
	ScrubBytes   uint64 `msgpack:"scrub_bytes,omitempty" json:"scrub_bytes"`     // bytes the scrubber verified since start
	ScrubCorrupt uint64 `msgpack:"scrub_corrupt,omitempty" json:"scrub_corrupt"` // chunks found corrupt since start (each is logged)
	ScrubPasses  uint64 `msgpack:"scrub_passes,omitempty" json:"scrub_passes"`   // complete passes over every chunk since start

	// What the node holds and serves (cleave up's auto-split reads them):
	// files whose root is in its range and the sum of their sizes (a few
	// seconds old; a split's source counts the moved half until cleanup),
	// and client requests handled since start (STATUS excluded).
	Files uint64 `msgpack:"files,omitempty" json:"files"`
	Bytes uint64 `msgpack:"bytes,omitempty" json:"bytes"`
	Ops   uint64 `msgpack:"ops,omitempty" json:"ops"`
	// The chunks the node stores, with the same age as Files: Chunks and
	// ChunkBytes count every stored chunk; PendingChunks and PendingBytes
	// the part of them no file references any more, kept until the chunk
	// TTL passes (an upload racing with the delete may still commit them).
	Chunks        uint64 `msgpack:"chunks,omitempty" json:"chunks"`
	ChunkBytes    uint64 `msgpack:"chunk_bytes,omitempty" json:"chunk_bytes"`
	PendingChunks uint64 `msgpack:"pending_chunks,omitempty" json:"pending_chunks"`
	PendingBytes  uint64 `msgpack:"pending_bytes,omitempty" json:"pending_bytes"`
	// Roots are the busiest and biggest root directories of the node's
	// range (at most TopRoots), so a user can see why halving a range would
	// not help: all of one root lives in one cluster.
	Roots []RootUsage `msgpack:"roots,omitempty" json:"roots,omitempty"`
	// ChunksRepaired counts corrupt or missing chunks this node rewrote
	// from another member's verified copy since start (found by a read or
	// by the scrubber); RepairFailed the attempts that found no healthy copy.
	ChunksRepaired uint64 `msgpack:"chunks_repaired,omitempty" json:"chunks_repaired"`
	RepairFailed   uint64 `msgpack:"repair_failed,omitempty" json:"repair_failed"`
	// Raft frames this node's replica dropped since it opened (a split's
	// fork opens a new one): frames naming another group or epoch, and
	// heartbeats declaring a commit beyond the local log, and frames no
	// honest peer sends (a local type, a sender outside the group, a term
	// or index beyond the replica's bounds).
	ForeignFrames   uint64 `msgpack:"foreign_frames,omitempty" json:"foreign_frames,omitempty"`
	BadCommitFrames uint64 `msgpack:"bad_commit_frames,omitempty" json:"bad_commit_frames,omitempty"`
	InvalidFrames   uint64 `msgpack:"invalid_frames,omitempty" json:"invalid_frames,omitempty"`
	// WrongPlaneFrames counts one-way frames (RAFT) that arrived on the
	// client listener and were dropped, since start.
	WrongPlaneFrames uint64 `msgpack:"wrong_plane_frames,omitempty" json:"wrong_plane_frames,omitempty"`

	Members  []MemberStatus `msgpack:"members,omitempty" json:"members,omitempty"`     // the raft group's members as this node knows them
	LogFirst uint64         `msgpack:"log_first,omitempty" json:"log_first,omitempty"` // first index still in the local log (older ones are compacted)
	// Replaces is the raft id this node took over from after that id's
	// data was lost, while the membership change swapping them is not
	// done (the old id still a member, or this one not yet a voter).
	Replaces uint64 `msgpack:"replaces,omitempty" json:"replaces,omitempty"`

	// Checksum is "sha256:<hex>" over every state machine key and value at
	// applied index ChecksumIndex; set only when STATUS asked for it with
	// FlagChecksum. Replicas at the same index have the same checksum.
	Checksum      string `msgpack:"checksum,omitempty" json:"checksum,omitempty"`
	ChecksumIndex uint64 `msgpack:"checksum_index,omitempty" json:"checksum_index,omitempty"`

	// The continuous cross-replica consistency check: every replica hashes
	// its state at the applied index of each check entry the leader
	// proposes, and compares with its peers at equal indexes. CheckIndex
	// and CheckHash are this node's latest result ("sha256:<hex>" of the
	// state machine, chunk bytes stood in for by their content-addressed
	// names); CheckCompared the highest index it compared with peers;
	// CheckMismatches the compared indexes at which replicas differed,
	// since start.
	CheckIndex      uint64 `msgpack:"check_index,omitempty" json:"check_index"`
	CheckHash       string `msgpack:"check_hash,omitempty" json:"check_hash,omitempty"`
	CheckCompared   uint64 `msgpack:"check_compared,omitempty" json:"check_compared"`
	CheckMismatches uint64 `msgpack:"check_mismatches,omitempty" json:"check_mismatches"`
	// Alarm is set while the latest compared check found replicas that
	// differ: it says at which index and which replicas. Diverged are the
	// raft ids of the replicas outside the majority (empty while no
	// majority agrees); Quarantined says this node is one of them and
	// refuses reads until a later check agrees again.
	Alarm       string   `msgpack:"alarm,omitempty" json:"alarm,omitempty"`
	AlarmIndex  uint64   `msgpack:"alarm_index,omitempty" json:"alarm_index,omitempty"`
	Diverged    []uint64 `msgpack:"diverged,omitempty" json:"diverged,omitempty"`
	Quarantined bool     `msgpack:"quarantined,omitempty" json:"quarantined,omitempty"`

	// The node's storage: the bytes free on its data volume and the
	// watermark below which its leader refuses writes that add data with
	// NO_SPACE (both refreshed at most every quarter second); Conditions
	// name what is wrong now (the Condition constants). StorageError is
	// the latest error of the storage engine's background work (a flush or
	// a compaction) and StorageErrorAt when it happened (RFC 3339); both
	// stay after the error clears.
	FreeBytes      uint64   `msgpack:"free_bytes,omitempty" json:"free_bytes"`
	MinFreeBytes   uint64   `msgpack:"min_free_bytes,omitempty" json:"min_free_bytes"`
	Conditions     []string `msgpack:"conditions,omitempty" json:"conditions,omitempty"`
	StorageError   string   `msgpack:"storage_error,omitempty" json:"storage_error,omitempty"`
	StorageErrorAt string   `msgpack:"storage_error_at,omitempty" json:"storage_error_at,omitempty"`

	// Set by the router in its status: what gossip says of the node
	// ("alive", "dead", "" if unknown) and how many entries it has applied
	// fewer than the most caught-up member of its cluster.
	Liveness string `msgpack:"liveness,omitempty" json:"liveness,omitempty"`
	Lag      uint64 `msgpack:"lag,omitempty" json:"lag"`
}

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

// TopRoots is how many root directories a node lists in NodeStatus.Roots.
const TopRoots = 5

// RootUsage is one root directory's share of a node's data and requests.
type RootUsage struct {
	Name  string `msgpack:"name" json:"name"`
	Files uint64 `msgpack:"files" json:"files"`
	Bytes uint64 `msgpack:"bytes" json:"bytes"`
	Ops   uint64 `msgpack:"ops" json:"ops"` // client requests for paths under it since start
}

// ClusterStatus is one cluster as the router sees it.
type ClusterStatus struct {
	ID     string       `msgpack:"id" json:"id"`
	Range  Range        `msgpack:"range" json:"range"`
	Leader string       `msgpack:"leader" json:"leader"` // leader's address, "" if none
	Nodes  []NodeStatus `msgpack:"nodes" json:"nodes"`
	// HotRoot, when set, is a root directory that carried at least half of
	// the cluster's requests lately: all of a root lives in one cluster, so
	// a split cannot spread its load, and an automatic split by request
	// rate leaves the cluster alone.
	HotRoot *HotRoot `msgpack:"hot_root,omitempty" json:"hot_root,omitempty"`
}

// HotRoot is a root directory that carries most of its cluster's requests.
type HotRoot struct {
	Name  string `msgpack:"name" json:"name"`
	Ops   uint64 `msgpack:"ops" json:"ops"`     // its requests over Seconds (at least)
	Total uint64 `msgpack:"total" json:"total"` // the cluster's requests over Seconds
	// Seconds is the span the counters were compared over; 0: since the
	// nodes started (the router had no earlier sample).
	Seconds float64 `msgpack:"seconds" json:"seconds"`
}

// Status is the deployment as a router sees it.
type Status struct {
	Router   string          `msgpack:"router" json:"router"`
	Version  uint64          `msgpack:"version" json:"version"`
	Routers  []RouterStatus  `msgpack:"routers,omitempty" json:"routers,omitempty"`
	Clusters []ClusterStatus `msgpack:"clusters" json:"clusters"`
	Splits   []SplitStatus   `msgpack:"splits,omitempty" json:"splits,omitempty"` // splits recorded in the meta group, newest last
}

// RouterStatus is one router of the meta group.
type RouterStatus struct {
	ID     string `msgpack:"id" json:"id"`           // router id, e.g. "r1"
	RaftID uint64 `msgpack:"raft_id" json:"raft_id"` // its member id in the meta group
	Addr   string `msgpack:"addr" json:"addr"`       // client address
	// PeerAddr is its peer address (meta group, router to router).
	PeerAddr string `msgpack:"peer_addr,omitempty" json:"peer_addr,omitempty"`
	// WrongPlaneFrames counts one-way frames (RAFT) that arrived on its
	// client listener and were dropped, since start.
	WrongPlaneFrames uint64 `msgpack:"wrong_plane_frames,omitempty" json:"wrong_plane_frames,omitempty"`
	Leader           bool   `msgpack:"leader" json:"leader"` // leads the meta group
	Applied          uint64 `msgpack:"applied" json:"applied"`
	Version          uint64 `msgpack:"version" json:"version"` // routing-table version it routes with
	PID              int    `msgpack:"pid" json:"pid"`         // OS pid under `cleave up`, else 0
	Error            string `msgpack:"error,omitempty" json:"error,omitempty"`
}

// Member is one node of a cluster in the routing table: its client
// address (data ops) and its peer address (raft, membership, split). A
// record without a peer address, written by older builds, means one
// address for both.
type Member struct {
	ID       uint64 `msgpack:"id" json:"id"`
	Addr     string `msgpack:"addr" json:"addr"`
	PeerAddr string `msgpack:"peer_addr,omitempty" json:"peer_addr,omitempty"`
}

// Peer returns m's peer address: PeerAddr, else Addr.
func (m Member) Peer() string {
	if m.PeerAddr != "" {
		return m.PeerAddr
	}
	return m.Addr
}

// JoinAddrs writes a member's client and peer addresses as the one string
// raft membership records and flag values carry: "ADDR/PEER_ADDR", or
// just ADDR when both are the same (or peer is empty).
func JoinAddrs(addr, peer string) string {
	if peer == "" || peer == addr {
		return addr
	}
	if addr == "" {
		return peer
	}
	return addr + "/" + peer
}

// FixedPort returns addr when its port is a fixed one, "" when it is 0
// (or addr is not HOST:PORT): two listeners given the same fixed address
// collide, two given port 0 do not.
func FixedPort(addr string) string {
	if strings.HasSuffix(addr, ":0") || !strings.Contains(addr, ":") {
		return ""
	}
	return addr
}

// SplitAddrs reads JoinAddrs's form back: a string without "/" (also every
// record written before the planes were split) is both addresses.
func SplitAddrs(s string) (addr, peer string) {
	if a, p, ok := strings.Cut(s, "/"); ok {
		return a, p
	}
	return s, s
}

// RangeOwner assigns a range to a cluster.
type RangeOwner struct {
	Range   Range  `msgpack:"range" json:"range"`
	Cluster string `msgpack:"cluster" json:"cluster"`
}

// ClusterInfo names a cluster's members.
type ClusterInfo struct {
	ID      string   `msgpack:"id" json:"id"`
	Members []Member `msgpack:"members" json:"members"`
}

// TableInfo is the routing table: ranges sorted by start, covering the ring.
type TableInfo struct {
	Version  uint64        `msgpack:"version" json:"version"`
	Ranges   []RangeOwner  `msgpack:"ranges" json:"ranges"`
	Clusters []ClusterInfo `msgpack:"clusters" json:"clusters"`
}

// Owner returns the range (and its cluster) of a valid table t that contains
// point p. It reports false only for a table that does not cover p.
func (t *TableInfo) Owner(p uint64) (RangeOwner, bool) {
	i := sort.Search(len(t.Ranges), func(i int) bool { return t.Ranges[i].Range.Start > p }) - 1
	if i < 0 || !t.Ranges[i].Range.Contains(p) {
		return RangeOwner{}, false
	}
	return t.Ranges[i], true
}

// Cluster returns the cluster of t with the given id and its members.
func (t *TableInfo) Cluster(id string) (ClusterInfo, bool) {
	for _, c := range t.Clusters {
		if c.ID == id {
			return c, true
		}
	}
	return ClusterInfo{}, false
}
