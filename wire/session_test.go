package wire

import (
	"strings"
	"testing"
)

// TestSessionError: a mutating request carries both session and seq or
// neither; other ops ignore them.
func TestSessionError(t *testing.T) {
	tests := []struct {
		req  Request
		want string // "" for nil, else a word the error names
	}{
		{Request{Op: OpAppend, Session: 3, Seq: 1}, ""},
		{Request{Op: OpAppend}, ""},
		{Request{Op: OpAppend, Seq: 4}, "no session"},
		{Request{Op: OpCommit, Session: 3}, "no seq"},
		{Request{Op: OpChunk, Seq: 1}, "CHUNK"},
		{Request{Op: OpGet, Seq: 4}, ""},
		{Request{Op: OpStatus, Session: 9}, ""},
	}
	for _, tt := range tests {
		err := tt.req.SessionError()
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%v session %d seq %d: %v, want nil", tt.req.Op, tt.req.Session, tt.req.Seq, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%v session %d seq %d: %v, want an error naming %q", tt.req.Op, tt.req.Session, tt.req.Seq, err, tt.want)
		}
	}
	for o := Op(0); o < 100; o++ {
		if err := (&Request{Op: o, Seq: 1}).SessionError(); (err != nil) != o.Mutating() {
			t.Errorf("%v with seq only: %v; refused exactly when mutating", o, err)
		}
	}
}
