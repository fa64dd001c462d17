package client

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/internal/rpc"
	"github.com/cleavefs/cleave/wire"
)

// Sentinel errors, one per Code. Errors returned by the
// Client are *Error values whose Is method matches the sentinel of their
// code, so errors.Is(err, ErrNotFound) works across the network.
var (
	ErrNotFound     = errors.New("cleave: not found")
	ErrExists       = errors.New("cleave: already exists")
	ErrNotDir       = errors.New("cleave: not a directory")
	ErrIsDir        = errors.New("cleave: is a directory")
	ErrNotEmpty     = errors.New("cleave: directory not empty")
	ErrCrossRoot    = errors.New("cleave: crosses root directories")
	ErrConflict     = errors.New("cleave: precondition failed")
	ErrInvalid      = errors.New("cleave: invalid request")
	ErrTooLarge     = errors.New("cleave: too large")
	ErrUnauthorized = errors.New("cleave: unauthorized")
	ErrForbidden    = errors.New("cleave: forbidden")
	ErrNotLeader    = errors.New("cleave: not leader")
	ErrWrongRange   = errors.New("cleave: wrong range")
	ErrUnavailable  = errors.New("cleave: unavailable")
	ErrTimeout      = errors.New("cleave: timeout")
	ErrInternal     = errors.New("cleave: internal error")
	ErrNoSpace      = errors.New("cleave: no space left on the node")
)

// ErrClosed is matched (besides ErrUnavailable) by errors from calls on a
// Client after Close.
var ErrClosed = errors.New("cleave: client closed")

var sentinels = map[Code]error{
	CodeNotFound:     ErrNotFound,
	CodeExists:       ErrExists,
	CodeNotDir:       ErrNotDir,
	CodeIsDir:        ErrIsDir,
	CodeNotEmpty:     ErrNotEmpty,
	CodeCrossRoot:    ErrCrossRoot,
	CodeConflict:     ErrConflict,
	CodeInvalid:      ErrInvalid,
	CodeTooLarge:     ErrTooLarge,
	CodeUnauthorized: ErrUnauthorized,
	CodeForbidden:    ErrForbidden,
	CodeNotLeader:    ErrNotLeader,
	CodeWrongRange:   ErrWrongRange,
	CodeUnavailable:  ErrUnavailable,
	CodeTimeout:      ErrTimeout,
	CodeInternal:     ErrInternal,
	CodeNoSpace:      ErrNoSpace,
}

// Sentinel returns the sentinel error of code: nil for CodeOK, ErrInternal
// for a code this build does not know.
func Sentinel(code Code) error {
	if code == CodeOK {
		return nil
	}
	if s, ok := sentinels[code]; ok {
		return s
	}
	return ErrInternal
}

// Error is a failed operation. Code is the server's code (from its answer, or
// chosen by the client for failures it detects itself: INVALID for a bad
// path, UNAVAILABLE when no router could be reached, TIMEOUT when the
// context ended after the request may have been applied).
type Error struct {
	Code    Code   // never CodeOK
	Message string // human-readable detail; from the server when it answered
	Op      string // operation, e.g. "put"; "dial" for Dial
	Path    string // path operated on, "" if none

	err error // underlying cause (context error, transport error), if any
}

// Error returns "CODE: message", e.g. "NOT_FOUND: /a/b: no such file or directory".
func (e *Error) Error() string {
	if e.Message == "" {
		if e.Path != "" {
			return e.Code.String() + ": " + e.Path
		}
		return e.Code.String()
	}
	return e.Code.String() + ": " + e.Message
}

// Is reports whether target is the sentinel of e's code, or the io/fs error
// the code stands for (fs.ErrNotExist for NOT_FOUND, fs.ErrExist for EXISTS,
// fs.ErrInvalid for INVALID, fs.ErrPermission for UNAUTHORIZED and
// FORBIDDEN), so code written against io/fs handles cleave errors.
func (e *Error) Is(target error) bool {
	if target == nil {
		return false
	}
	return target == Sentinel(e.Code) || target == fsErr(e.Code)
}

// Unwrap returns the underlying cause, such as context.DeadlineExceeded or
// ErrClosed, or nil.
func (e *Error) Unwrap() error { return e.err }

// CodeOf returns the code that best describes err: CodeOK for nil,
// the code of a *Error or of a protocol error, the code of a wrapped sentinel,
// INVALID for a bad path, TIMEOUT for an ended context, UNAVAILABLE for
// transport failures, and INTERNAL for anything else.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce.Code
	}
	var we *wire.Error
	if errors.As(err, &we) {
		return Code(we.Code)
	}
	for code, s := range sentinels {
		if errors.Is(err, s) {
			return code
		}
	}
	var pe *fspath.Error
	switch {
	case errors.As(err, &pe):
		return CodeInvalid
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return CodeTimeout
	case isTransport(err):
		return CodeUnavailable
	}
	return CodeInternal
}

func isTransport(err error) bool {
	var ne net.Error
	return errors.Is(err, rpc.ErrConnClosed) || errors.Is(err, ErrClosed) || errors.As(err, &ne)
}

// respError converts a failed response.
func respError(op string, path string, r *wire.Response) error {
	if r.Code == wire.OK {
		return nil
	}
	return &Error{Code: Code(r.Code), Message: r.Message, Op: op, Path: path}
}

// wrapError converts an error from below (rpc, context, fspath) to a *Error.
func wrapError(op, path string, err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		if ce.Op == op || op == "dial" {
			return ce
		}
		cp := *ce // a dial failure seen by a call: name the call
		cp.Op, cp.Path = op, path
		return &cp
	}
	code := CodeOf(err)
	msg := oneLine(err)
	var we *wire.Error
	if errors.As(err, &we) {
		msg = we.Message
	}
	if code == CodeTimeout {
		msg = op + " " + path
		if path == "" {
			msg = op
		}
		if errors.Is(err, context.Canceled) {
			msg += ": canceled"
		} else {
			msg += ": deadline exceeded"
		}
	}
	return &Error{Code: code, Message: msg, Op: op, Path: path, err: err}
}

// oneLine renders err for a human, preferring the network error (which
// names the address) and folding errors.Join's newlines.
func oneLine(err error) string {
	var oe *net.OpError
	if errors.As(err, &oe) {
		return oe.Error()
	}
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
