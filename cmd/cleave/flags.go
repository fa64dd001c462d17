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

// parsePeers parses "1=ADDRS,2=ADDRS,..." into raft id -> ADDRS, where
// ADDRS is a member's client and peer address as HOST:PORT/HOST:PORT
// (wire.JoinAddrs), or one HOST:PORT for both. Ids must be distinct
// nonzero numbers and addresses distinct HOST:PORTs.
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
		if _, dup := peers[id]; dup {
			return nil, fmt.Errorf("peer %q: listed twice", idText)
		}
		for _, a := range memberAddrs(addr) {
			if err := up.CheckAddr(a); err != nil {
				return nil, fmt.Errorf("peer %q: %v", idText, err)
			}
			if other, dup := byAddr[a]; dup {
				return nil, fmt.Errorf("peer %q: address %s already belongs to peer %d", idText, a, other)
			}
			byAddr[a] = id
		}
		peers[id] = addr
	}
	return peers, nil
}

// memberAddrs returns the addresses of one member's ADDRS: the client and
// the peer address, or the one address given for both.
func memberAddrs(s string) []string {
	client, peer := wire.SplitAddrs(s)
	if client == peer {
		return []string{client}
	}
	return []string{client, peer}
}

// splitPeers turns parsePeers's result into a node's Peers (raft id ->
// peer address) and Clients (raft id -> client address, for the members
// whose ADDRS named one).
func splitPeers(recs map[uint64]string) (peers, clients map[uint64]string) {
	peers, clients = map[uint64]string{}, map[uint64]string{}
	for id, rec := range recs {
		client, peer := wire.SplitAddrs(rec)
		peers[id] = peer
		if client != peer {
			clients[id] = client
		}
	}
	return peers, clients
}

// parseCluster parses one router --cluster value,
// "c1=1@HOST:PORT/PEER_HOST:PORT,2@...", each member's addresses as
// parsePeers reads them.
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
		if seen[nid] {
			return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %d listed twice", id, nid)
		}
		for _, a := range memberAddrs(addr) {
			if err := up.CheckAddr(a); err != nil {
				return wire.ClusterInfo{}, fmt.Errorf("cluster %q: member %q: %v", id, part, err)
			}
			if addrs[a] {
				return wire.ClusterInfo{}, fmt.Errorf("cluster %q: address %s listed twice", id, a)
			}
			addrs[a] = true
		}
		seen[nid] = true
		client, peer := wire.SplitAddrs(addr)
		m := wire.Member{ID: nid, Addr: client}
		if peer != client {
			m.PeerAddr = peer
		}
		ci.Members = append(ci.Members, m)
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
