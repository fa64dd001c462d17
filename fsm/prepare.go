package fsm

// The leader's half of a WRITE or APPEND: it reads the bytes the write
// keeps of the blocks it rewrites, from its own committed state, and puts
// the blocks' complete new contents in the command, so that Apply on every
// replica writes the same blocks without reading any chunk (see Command).

import (
	"github.com/cleavefs/cleave/internal/fspath"
	"github.com/cleavefs/cleave/wire"
)

// PrepareWrite turns the WRITE or APPEND c, which carries Data, into its
// prepared form (Base, Blocks, Length; Data emptied), from the committed
// state. It reads and verifies the chunks of the partial blocks the write
// keeps; a corrupt or missing one is a *CorruptError naming the chunk (the
// node repairs it from a peer and prepares again). Where Apply will refuse
// the write anyway (a directory, a failed precondition, a bad offset) it
// prepares no blocks and reads nothing: Apply gives the answer from the
// replicated state. Safe for concurrent use with Apply and the reads.
func (f *FSM) PrepareWrite(c *Command) error {
	appending := c.Op == wire.OpAppend
	data := c.Data
	n := int64(len(data))
	c.Data, c.Length, c.Blocks = nil, n, nil
	c.Base = &WriteBase{}
	if c.Path == "/" || fspath.ValidateStored(c.Path) != nil {
		return nil
	}
	snap := f.db.NewSnapshot()
	defer snap.Close()
	old, err := getEntry(snap, c.Path)
	if err != nil {
		return err
	}
	if old != nil {
		*c.Base = WriteBase{Type: old.Type, Version: old.Version, Size: old.Size}
	}
	switch {
	case old != nil && old.Type != wire.TypeFile,
		precondition(c, c.Path, old) != nil,
		c.Offset < 0, appending && c.Offset != 0:
		return nil
	}
	w, res := planWrite(c, old, n, appending)
	if res != nil {
		return nil
	}
	held := map[int64]bool{}
	if old != nil && len(w.blocks) > 0 {
		refs, err := blockRefs(snap, c.Path, w.first(), w.last()+1)
		if err != nil {
			return err
		}
		for _, r := range refs {
			held[r.i] = true
		}
		held[0] = held[0] || len(old.Data) > 0 // inline: block 0 is in the entry
	}
	c.Blocks = make([]Block, len(w.blocks))
	for k, i := range w.blocks {
		var prev []byte
		if held[i] && !w.covers(i) {
			if prev, err = readBlock(snap, c.Path, w.e, i); err != nil {
				return err
			}
		}
		c.Blocks[k] = Block{I: i, Data: w.merge(i, prev, data)}
	}
	return nil
}
