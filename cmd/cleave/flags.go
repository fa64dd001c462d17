package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/up"
	"github.com/cleavefs/cleave/wire"
)

// The values of `cleave node --peers` and `cleave router --cluster`. The
// supervisor (package up) writes them with up.FormatPeers and
// up.FormatCluster when it starts its children; flags_test.go checks that
// what it writes is what these read.

// parsePeers parses "1=HOST:PORT,2=HOST:PORT,..." into raft id -> address.
// Ids must be distinct nonzero numbers and addresses distinct HOST:PORTs.
func parsePeers(s string) (map[uint64]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("no peers: want ID=HOST:PORT,...")
	}
	peers := map[uint64]string{}
	byAddr := map[string]uint64{}
	for part := range strings.SplitSeq(s, ",") {
		idText, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return nil, fmt.Errorf("peer %q: want ID=HOST:PORT", part)
		}
		id, err := parseNodeID(idText)
		if err != nil {
			return nil, fmt.Errorf("peer %q: %v", idText, err)
		}
		if err := up.CheckAddr(addr); err != nil {
			return nil, fmt.Errorf("peer %q: %v", idText, err)
		}
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("peer %q: listed twice", idText)
		}
		if other, dup := byAddr[addr]; dup {
			return nil, fmt.Errorf("peer %q: address %s already belongs to peer %d", idText, addr, other)
		}
		peers[id] = addr
		byAddr[addr] = id
	}
	return peers, nil
}

// parseCluster parses one router --cluster value, "c1=1@HOST:PORT,2@HOST:PORT".
func parseCluster(s string) (wire.ClusterInfo, error) {
	id, members, ok := strings.Cut(s, "=")
	id = strings.TrimSpace(id)
	if !ok || id == "" {
		return wire.ClusterInfo{}, fmt.Errorf("cluster %q: want ID=NODE@HOST:PORT,...", s)
	}
	if strings.TrimSpace(members) == "" {
		return wire.ClusterInfo{}, fmt.Errorf("cluster %q: no members", id)
	}
	ci := wire.ClusterInfo{ID: id}
	seen := map[uint64]bool{}
	addrs := map[string]bool{}
	for part := range strings.SplitSeq(members, ",") {
		part = strings.TrimSpace(part)
		idText, addr, ok := strings.Cut(part, "@")
		if !ok {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %q: want ID@HOST:PORT", id, part)
		}
		nid, err := parseNodeID(idText)
		if err != nil {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %q: %v", id, part, err)
		}
		if err := up.CheckAddr(addr); err != nil {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %q: %v", id, part, err)
		}
		if seen[nid] {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %d listed twice", id, nid)
		}
		if addrs[addr] {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: address %s listed twice", id, addr)
		}
		seen[nid], addrs[addr] = true, true
		ci.Members = append(ci.Members, wire.Member{ID: nid, Addr: addr})
	}
	return ci, nil
}

// parseClusters parses every --cluster value of the router, in order, and
// checks that cluster ids and node ids are unique across them.
func parseClusters(values []string) ([]wire.ClusterInfo, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("no clusters: give --cluster ID=NODE@HOST:PORT,... at least once")
	}
	out := make([]wire.ClusterInfo, 0, len(values))
	ids := map[string]bool{}
	nodes := map[uint64]string{}
	for _, v := range values {
		ci, err := parseCluster(v)
		if err != nil {
			return nil, err
		}
		if ids[ci.ID] {
			return nil, fmt.Errorf("cluster %q: given twice", ci.ID)
		}
		ids[ci.ID] = true
		for _, m := range ci.Members {
			if other, dup := nodes[m.ID]; dup {
				return nil, fmt.Errorf("cluster %q: node %d is already a member of cluster %q", ci.ID, m.ID, other)
			}
			nodes[m.ID] = ci.ID
		}
		out = append(out, ci)
	}
	return out, nil
}

func parseNodeID(s string) (uint64, error) {
	id, err := strconv.ParseUint(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("id must be a number")
	}
	if id == 0 {
		return 0, fmt.Errorf("id must be nonzero")
	}
	return id, nil
}
