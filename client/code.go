package client

import "github.com/cleavefs/cleave/wire"

// Code is the status of a failed call, the same code the server answers
// with on the wire (docs/protocol.md), with the same numeric value. The
// zero value is CodeOK.
type Code uint8

// The codes, with the protocol's numeric values and names.
const (
	CodeOK           Code = iota // success; never the Code of an *Error
	CodeNotFound                 // NOT_FOUND: the path does not exist
	CodeExists                   // EXISTS: the path already exists
	CodeNotDir                   // NOT_DIR: a path component is a file
	CodeIsDir                    // IS_DIR: a file operation named a directory
	CodeNotEmpty                 // NOT_EMPTY: the directory is not empty
	CodeCrossRoot                // CROSS_ROOT: rename across root directories
	CodeConflict                 // CONFLICT: a precondition (IfVersion, IfAbsent) failed
	CodeInvalid                  // INVALID: a malformed request or path
	CodeTooLarge                 // TOO_LARGE: a frame or value over a limit
	CodeUnauthorized             // UNAUTHORIZED: a missing or wrong token
	CodeForbidden                // FORBIDDEN: the token's grants do not allow it
	CodeNotLeader                // NOT_LEADER: the replica asked cannot write
	CodeWrongRange               // WRONG_RANGE: the cluster asked does not own the path
	CodeUnavailable              // UNAVAILABLE: no quorum, no route, no router reachable; nothing applied
	CodeTimeout                  // TIMEOUT: the deadline passed; the outcome is unknown
	CodeInternal                 // INTERNAL: a bug or an integrity failure
	CodeNoSpace                  // NO_SPACE: a node's disk is below its watermark; nothing applied
)

// String returns the protocol name of the code, e.g. "NOT_FOUND", or
// "CODE_<n>" for a code this build does not know.
func (c Code) String() string { return wire.Code(c).String() }

// ParseCode returns the code with the given protocol name, e.g. "NOT_FOUND".
func ParseCode(s string) (Code, bool) {
	c, ok := wire.ParseCode(s)
	return Code(c), ok
}

// FileType tells files from directories.
type FileType uint8

// The file types, with the protocol's values.
const (
	TypeFile FileType = 1
	TypeDir  FileType = 2
)

// String returns "file", "dir", or "unknown".
func (t FileType) String() string { return wire.FileType(t).String() }
