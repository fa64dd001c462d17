package fsm

import (
	"bytes"
	"fmt"

	"github.com/cleavefs/cleave/wire"
	"github.com/vmihailenco/msgpack/v5"
)

// commandVersion is the first byte of every encoded Command. A new encoding
// gets a new version; DecodeCommand keeps reading the old ones, because old
// entries stay in the log and in snapshots.
const commandVersion = 1

// Command is one mutation in the replicated log. The leader fills it from a
// wire.Request when it proposes, so everything the state machine needs to be
// deterministic (including the time) is in the entry.
type Command struct {
	Op    wire.Op    `msgpack:"op"`
	Path  string     `msgpack:"path,omitempty"`
	Data  []byte     `msgpack:"data,omitempty"`
	Flags wire.Flags `msgpack:"flags,omitempty"`
	Time  int64      `msgpack:"time,omitempty"` // leader's unix nanos at propose time; becomes mtime
	// Clock is the leader's bounded entry clock (clock.go; the node stamps it), in unix nanos:
	// sessions and unreferenced chunks expire by it. 0 in older entries,
	// which expire by Time.
	Clock   int64  `msgpack:"clock,omitempty"`
	Session uint64 `msgpack:"session,omitempty"` // client session for exactly-once (session.go); 0 = no dedup
	Seq     uint64 `msgpack:"seq,omitempty"`     // sequence number within Session, nonzero when Session is

	To        string   `msgpack:"to,omitempty"`         // RENAME/COPY destination
	Offset    int64    `msgpack:"offset,omitempty"`     // WRITE position
	IfVersion uint64   `msgpack:"if_version,omitempty"` // PUT/WRITE/APPEND/COMMIT precondition
	Chunks    []string `msgpack:"chunks,omitempty"`     // COMMIT: chunk names in file order
	Size      int64    `msgpack:"size,omitempty"`       // COMMIT: total size

	// A WRITE or APPEND as the leader prepares it (FSM.PrepareWrite): the
	// state of Path it read, and the complete new contents of every block
	// the write rewrites, the bytes it keeps of the old blocks merged with
	// the written ones. Data is then empty and Length is its length. Apply
	// uses these blocks and never reads chunk bytes; if Path is no longer
	// at Base, it answers a retryable conflict (Result.Retry) and records
	// nothing. Base nil: the unprepared form of older entries.
	Base   *WriteBase `msgpack:"base,omitempty"`
	Blocks []Block    `msgpack:"blocks,omitempty"`
	Length int64      `msgpack:"length,omitempty"`

	// Cluster parameters, filled by the leader from its Config so that every
	// replica applies the same values even if the nodes' configs differ.
	// Zero means the default (chunk.go, session.go).
	ChunkSize  int64 `msgpack:"chunk_size,omitempty"`  // block size of files this command creates; max CHUNK size
	SessionTTL int64 `msgpack:"session_ttl,omitempty"` // idle nanoseconds after which a session expires
	ChunkTTL   int64 `msgpack:"chunk_ttl,omitempty"`   // nanoseconds an unreferenced chunk waits for a COMMIT
	// InlineSize is the largest file, in bytes, a PUT keeps in its entry
	// rather than in a chunk (inline.go). 0, as in older entries: none.
	InlineSize int64 `msgpack:"inline_size,omitempty"`
}

// expiryTime is the time sessions and chunks expire by (Clock, or Time in
// entries written before Clock).
func (c *Command) expiryTime() int64 {
	if c.Clock != 0 {
		return c.Clock
	}
	return c.Time
}

// WriteBase is the state of a file a prepared write was computed from. A
// file's version is the index of the entry that last changed it, and one
// entry gives one content, so (type, version) names the content; the size
// is checked as well.
type WriteBase struct {
	Type    wire.FileType `msgpack:"t,omitempty"` // 0: the path did not exist
	Version uint64        `msgpack:"v,omitempty"`
	Size    int64         `msgpack:"s,omitempty"`
}

// Block is the new content of block I of a file.
type Block struct {
	I    int64  `msgpack:"i"`
	Data []byte `msgpack:"d"`
}

// EncodeCommand returns the log-entry form of c: the version byte, then c as
// msgpack (the bytes the reflection encoder writes, codec.go). The
// encoding of a given Command is always the same bytes.
func EncodeCommand(c *Command) ([]byte, error) {
	if c == nil {
		return nil, fmt.Errorf("fsm: encode command: nil command")
	}
	n := 200 + len(c.Path) + len(c.To) + len(c.Data)
	for _, s := range c.Chunks {
		n += 5 + len(s)
	}
	for _, k := range c.Blocks {
		n += 20 + len(k.Data)
	}
	return appendCommand(append(make([]byte, 0, n), commandVersion), c), nil
}

// DecodeCommand parses the output of EncodeCommand. It returns an error, never
// panics, for empty input, an unknown version, malformed msgpack or trailing
// bytes. It checks the format only; Apply judges the content (op, path).
// The returned Command does not alias p.
func DecodeCommand(p []byte) (*Command, error) { return decodeCommand(p, false) }

// decodeCommand is DecodeCommand; with alias the byte slices of the
// result (Data, the blocks' Data) may point into p, for a caller that is
// done with the Command before p changes (Apply).
func decodeCommand(p []byte, alias bool) (*Command, error) {
	if len(p) > 0 && p[0] == commandVersion {
		var c Command
		if decodeCommandFast(p[1:], &c, alias) == nil {
			return &c, nil
		}
	}
	return decodeCommandReflect(p)
}

// decodeCommandReflect is DecodeCommand by reflection: the reference the
// fast decoder matches, and its fallback.
func decodeCommandReflect(p []byte) (*Command, error) {
	if len(p) == 0 {
		return nil, fmt.Errorf("fsm: decode command: empty")
	}
	if p[0] != commandVersion {
		return nil, fmt.Errorf("fsm: decode command: unknown version %d at offset 0 (this build reads %d)", p[0], commandVersion)
	}
	if err := checkShape(p[1:], 1); err != nil {
		return nil, fmt.Errorf("fsm: decode command: %w", err)
	}
	r := bytes.NewReader(p[1:])
	dec := msgpack.NewDecoder(r)
	var c Command
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("fsm: decode command: at offset %d: %w", len(p)-r.Len(), err)
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("fsm: decode command: %d trailing bytes at offset %d", r.Len(), len(p)-r.Len())
	}
	return &c, nil
}

// Result is what Apply returns for one Command: OK with the Stat of the
// created or changed entry (PUT, MKDIR, WRITE, APPEND, RENAME, COPY, COMMIT, CHUNK), or a failure code and message the
// server copies into the wire.Response.
//
// Results of commands with a session are stored in the replicated state
// (session.go), so the msgpack field names are part of the on-disk format.
type Result struct {
	Code    wire.Code  `msgpack:"c,omitempty"`
	Message string     `msgpack:"m,omitempty"`
	Stat    *wire.Stat `msgpack:"s,omitempty"`
	Chunk   string     `msgpack:"k,omitempty"` // CHUNK: the chunk's name

	Split *SplitRecord `msgpack:"-"` // SPLIT: the record applied (never stored)
	// Retry: a prepared write whose file changed after the leader read it.
	// Nothing was applied and nothing is recorded for the session; the
	// leader reads the file again and proposes anew (never stored).
	Retry bool `msgpack:"-"`
	// Dropped counts the entries a SPLIT_CLEANUP step deleted, and Cleaned
	// says the step found nothing more outside the owned range (never
	// stored): the node compacts the dropped keys away once a cleanup that
	// dropped something is over (FSM.CompactState).
	Dropped int  `msgpack:"-"`
	Cleaned bool `msgpack:"-"`
	// cost counts the block records and chunk terms the command touched
	// (tests: apply cost is bounded by what the entry writes).
	cost int64
}

// Err returns nil for OK and a *wire.Error otherwise.
func (r *Result) Err() error {
	if r.Code == wire.OK {
		return nil
	}
	return &wire.Error{Code: r.Code, Message: r.Message}
}

func failf(code wire.Code, format string, args ...any) *Result {
	return &Result{Code: code, Message: fmt.Sprintf(format, args...)}
}
