package up

import (
	"slices"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/wire"
)

// The supervisor starts its children with the flags of `cleave node` and
// `cleave router`; the functions here write the values of those flags.
// Package main (cmd/cleave) reads them, and its tests check that it reads
// back what these write.

// FormatPeers writes peers, raft id -> addresses (wire.JoinAddrs), the way
// `cleave node --peers` and `cleave router --peers` read them:
// "1=HOST:PORT/PEER_HOST:PORT,2=...", sorted by id.
func FormatPeers(peers map[uint64]string) string {
	ids := make([]uint64, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatUint(id, 10) + "=" + peers[id]
	}
	return strings.Join(parts, ",")
}

// FormatCluster writes ci the way `cleave router --cluster` reads it:
// "c1=1@HOST:PORT/PEER_HOST:PORT,2@...".
func FormatCluster(ci wire.ClusterInfo) string {
	parts := make([]string, len(ci.Members))
	for i, m := range ci.Members {
		parts[i] = strconv.FormatUint(m.ID, 10) + "@" + wire.JoinAddrs(m.Addr, m.PeerAddr)
	}
	return ci.ID + "=" + strings.Join(parts, ",")
}
