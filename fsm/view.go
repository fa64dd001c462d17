package fsm

import (
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
	"github.com/cockroachdb/pebble/v2"
)

// A View is one point-in-time view of the committed state that several
// reads share: one Pebble snapshot, and the owned range read from it once.
// A read through a view sees every entry applied before NewView returned
// and nothing applied since, so a caller may serve a linearizable read
// from it only if the read's barrier index was applied before the view
// was opened. A View is used by one goroutine at a time; Close it when
// done.
//
// Sharing matters on a busy node: opening and closing a snapshot takes
// the DB's lock twice (and closing the oldest one asks Pebble to consider
// a compaction), and the range is one more point read per request.
type View struct {
	f      *FSM
	s      *pebble.Snapshot
	ranged bool       // rng, owns and rngErr hold the stored range
	rng    wire.Range // the owned range, if owns
	owns   bool
	rngErr error
}

// NewView opens a view of the state committed so far.
func (f *FSM) NewView() *View { return &View{f: f, s: f.db.NewSnapshot()} }

// Close releases the view's snapshot.
func (v *View) Close() error { return v.s.Close() }

// open validates p and, unless p is "/", checks that p's root is owned in
// the view; it returns the view's snapshot.
func (v *View) open(p string) (*pebble.Snapshot, error) {
	if err := fspath.ValidateStored(p); err != nil {
		return nil, &wire.Error{Code: wire.Invalid, Message: err.Error()}
	}
	if p == "/" {
		return v.s, nil
	}
	if !v.ranged {
		v.rng, v.owns, v.rngErr = v.f.readRange(v.s)
		v.ranged = true
	}
	if v.rngErr != nil {
		return nil, v.rngErr
	}
	if err := ownedErr(v.rng, v.owns, p); err != nil {
		return nil, err
	}
	return v.s, nil
}

// Stat is FSM.Stat in the view.
func (v *View) Stat(path string) (*wire.Stat, error) {
	s, err := v.open(path)
	if err != nil {
		return nil, err
	}
	return stat(s, path)
}

// Exists is FSM.Exists in the view.
func (v *View) Exists(path string) (bool, error) { return exists(v.Stat(path)) }
