package fsm

import (
	"errors"
	"fmt"

	"github.com/cleavefs/cleave/wire"
)

// The errors of the state machine. A failed command is a Result with a
// wire code, never an error; the reads return *wire.Error values (so a
// node answers them with their code), and a chunk whose bytes are missing
// or wrong is a *CorruptError, which unwraps to its *wire.Error.

// CorruptError is a chunk whose stored bytes are missing or do not match
// its name. Callers see INTERNAL (it unwraps to a *wire.Error naming the
// chunk); a node repairs it from another member's copy and tries again.
type CorruptError struct {
	Chunk ChunkID     // the chunk that failed
	Err   *wire.Error // INTERNAL, naming the chunk and the path
}

func (e *CorruptError) Error() string { return e.Err.Error() }
func (e *CorruptError) Unwrap() error { return e.Err }

// corruptChunk is the error for a chunk whose bytes do not match its name.
func corruptChunk(h ChunkID, path, why string) error {
	return &CorruptError{Chunk: h, Err: &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("integrity: chunk %v of %s failed verification (%s); not returned", h, path, why)}}
}

// storageErr is INTERNAL for a failed read or write of the store.
func storageErr(what string, err error) *wire.Error {
	return &wire.Error{Code: wire.Internal, Message: fmt.Sprintf("storage: %s: %v", what, err)}
}

// errResult is the Result of a command that failed with err: its wire
// code, INTERNAL for anything else.
func errResult(err error) *Result {
	var we *wire.Error
	if errors.As(err, &we) {
		return &Result{Code: we.Code, Message: we.Message}
	}
	return failf(wire.Internal, "%v", err)
}
