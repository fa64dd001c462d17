package cluster

// A node started with Config.RejoinWiped on an empty data directory whose
// raft id a leader has replicated entries to (wiped.go) does not refuse to
// start: it takes a new raft id, records it in the data directory before
// anything else, and joins its cluster as a new node waiting to be added.
// The record overrides the configured id on every later start, so the
// node never runs under the id it forgot. Its status names the id it
// replaces (NodeStatus.Replaces) until the membership change that swaps
// the two has reached it; whoever manages the deployment (the operator)
// then runs that change: add the new id as a learner, promote it once it
// has caught up by snapshot, remove the old id.

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"github.com/cleavefs/cleave/internal/certs"
	"github.com/cleavefs/cleave/wire"
)

// identityFile is the record of a replacement id in the data directory.
const identityFile = "identity.json"

// identity is the content of identityFile.
type identity struct {
	ID       uint64 `json:"id"`       // the raft id this node runs under
	Replaces uint64 `json:"replaces"` // the id it took over from, which lost its data
}

// loadIdentity reads dir's identity record; ok is false if there is none.
func loadIdentity(dir string) (id identity, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, identityFile))
	if errors.Is(err, fs.ErrNotExist) {
		return identity{}, false, nil
	}
	if err != nil {
		return identity{}, false, fmt.Errorf("cluster: read %s: %w", identityFile, err)
	}
	if err := json.Unmarshal(b, &id); err != nil {
		return identity{}, false, fmt.Errorf("cluster: %s in %s is not a node identity record: %w", identityFile, dir, err)
	}
	if id.ID == 0 || id.Replaces == 0 || id.ID == id.Replaces {
		return identity{}, false, fmt.Errorf("cluster: %s in %s names id %d replacing %d: both must be nonzero and differ", identityFile, dir, id.ID, id.Replaces)
	}
	return id, true, nil
}

// saveIdentity writes id as dir's identity record durably: a temporary
// file synced, renamed over the record, and the directory synced, so a
// crash leaves the old record or the new one, never a torn one.
func saveIdentity(dir string, id identity) error {
	b, err := json.Marshal(id)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, identityFile+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("cluster: write identity: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, identityFile))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cluster: write identity: %w", err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// withIdentity returns c as the identity record in its data directory
// makes it: running under the recorded id, as a joining node (its state,
// if any, came from its leader), with its own addresses moved from the old
// id to the new one in Peers. Without a record c is returned unchanged.
func (c Config) withIdentity() (Config, error) {
	id, ok, err := loadIdentity(c.DataDir)
	if err != nil || !ok {
		return c, err
	}
	if id.Replaces != c.NodeID && id.ID != c.NodeID {
		return c, fmt.Errorf("cluster: %s in %s is node %d replacing node %d, but this node is configured as node %d",
			identityFile, c.DataDir, id.ID, id.Replaces, c.NodeID)
	}
	return c.renamed(id), nil
}

// renamed returns c running as id.ID instead of id.Replaces, joining.
func (c Config) renamed(id identity) Config {
	c.Peers, c.Clients = renameKey(c.Peers, id), renameKey(c.Clients, id)
	c.NodeID, c.Join, c.replaces = id.ID, true, id.Replaces
	return c
}

// renameKey returns addrs with id.Replaces's entry under id.ID.
func renameKey(addrs map[uint64]string, id identity) map[uint64]string {
	if addrs == nil {
		return nil
	}
	out := make(map[uint64]string, len(addrs))
	for k, v := range addrs {
		if k == id.Replaces {
			k = id.ID
		}
		out[k] = v
	}
	return out
}

// newNodeID returns a random raft id for a replacement: 48 bits, so it is
// readable and, like etcd's member ids, unique without coordination;
// never one of taken.
func newNodeID(taken map[uint64]string) (uint64, error) {
	for {
		var b [8]byte
		if _, err := rand.Read(b[2:]); err != nil {
			return 0, fmt.Errorf("cluster: new node id: %w", err)
		}
		id := binary.BigEndian.Uint64(b[:])
		if _, ok := taken[id]; !ok && id != 0 {
			return id, nil
		}
	}
}

// takeNewIdentity makes n, found wiped (err), a new node: a new raft id,
// recorded before anything else, and a joiner under it.
func (n *Node) takeNewIdentity(wiped *WipedMemberError) error {
	id, err := newNodeID(n.cfg.Peers)
	if err != nil {
		return err
	}
	rec := identity{ID: id, Replaces: n.cfg.NodeID}
	if err := saveIdentity(n.cfg.DataDir, rec); err != nil {
		return err
	}
	n.log.Warn("empty data directory under a raft id the cluster knows: rejoining under a new id, to be added as a learner and to replace the old one",
		"old", rec.Replaces, "new", rec.ID, "reported_by", wiped.Peer, "cluster", wiped.Cluster, "match", wiped.Match)
	n.cfg = n.cfg.renamed(rec)
	n.log = n.cfg.Logger.With("component", "node", "node", n.cfg.NodeID, "cluster", n.cfg.ClusterID)
	return n.cfg.peerCertForID()
}

// peerCertForID makes the peer certificate of a node running under a
// recorded identity name that identity, issuing one from RejoinCA if it
// names another id; peers would drop its RAFT frames otherwise.
func (c Config) peerCertForID() error {
	if c.replaces == 0 || c.PeerTLS == nil {
		return nil
	}
	want := certs.Name(certs.RoleNode, strconv.FormatUint(c.NodeID, 10))
	if c.PeerTLS.CommonName() == want {
		return nil
	}
	if c.RejoinCA == "" {
		return fmt.Errorf("cluster: this node runs as node %d (%s in %s) but its peer certificate is %s, and no CA to issue %s was given (--rejoin-ca)",
			c.NodeID, identityFile, c.DataDir, c.PeerTLS.CommonName(), want)
	}
	if err := c.PeerTLS.Reissue(c.RejoinCA, want); err != nil {
		return fmt.Errorf("cluster: issue the peer certificate %s of this node's new id: %w", want, err)
	}
	return nil
}

// replacing returns the id this node replaces while the membership change
// that swaps them has not reached it (the old id is still a member, or
// this node is not yet a voter), else 0.
func (n *Node) replacing(st []wire.MemberStatus) uint64 {
	old := n.cfg.replaces
	if old == 0 {
		return 0
	}
	voter := false
	for _, m := range st {
		if m.ID == old {
			return old
		}
		if m.ID == n.cfg.NodeID {
			voter = m.Voter
		}
	}
	if !voter {
		return old
	}
	return 0
}
