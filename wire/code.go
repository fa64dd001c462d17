package wire

import "fmt"

// Code is the status of a response. The zero value is OK.
type Code uint8

// Status codes, in protocol order. The numeric values are part of the
// protocol and never change; new codes are appended.
const (
	OK           Code = iota // success
	NotFound                 // path does not exist
	Exists                   // path already exists
	NotDir                   // a path component is a file
	IsDir                    // a file operation named a directory
	NotEmpty                 // directory not empty
	CrossRoot                // rename across root directories
	Conflict                 // a precondition (version, if-absent) failed
	Invalid                  // malformed request, path or frame
	TooLarge                 // frame or value over a limit
	Unauthorized             // missing or wrong auth token
	Forbidden                // not allowed
	NotLeader                // this replica cannot write; Response.Leader names who can
	WrongRange               // this cluster does not own the path's range
	Unavailable              // no quorum, no route, or the server is shutting down
	Timeout                  // the deadline passed; the outcome is unknown
	Internal                 // a bug or an integrity failure
	NoSpace                  // the node's disk is below its free-space watermark; nothing was applied
	numCodes
)

var codeNames = [...]string{
	OK: "OK", NotFound: "NOT_FOUND", Exists: "EXISTS", NotDir: "NOT_DIR", IsDir: "IS_DIR",
	NotEmpty: "NOT_EMPTY", CrossRoot: "CROSS_ROOT", Conflict: "CONFLICT", Invalid: "INVALID",
	TooLarge: "TOO_LARGE", Unauthorized: "UNAUTHORIZED", Forbidden: "FORBIDDEN",
	NotLeader: "NOT_LEADER", WrongRange: "WRONG_RANGE", Unavailable: "UNAVAILABLE",
	Timeout: "TIMEOUT", Internal: "INTERNAL", NoSpace: "NO_SPACE",
}

// String returns the protocol name of the code, e.g. "NOT_FOUND".
func (c Code) String() string {
	if c < numCodes {
		return codeNames[c]
	}
	return fmt.Sprintf("CODE_%d", uint8(c))
}

// Codes returns every defined code in numeric order.
func Codes() []Code {
	cs := make([]Code, numCodes)
	for i := range cs {
		cs[i] = Code(i)
	}
	return cs
}

// ParseCode returns the code with the given protocol name.
func ParseCode(s string) (Code, bool) {
	for i, n := range codeNames {
		if n == s {
			return Code(i), true
		}
	}
	return 0, false
}
