package up

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/cleavefs/cleave/wire"
)

// topOfRing is how a range end of 2^64 (wire.Range End 0) is written in flags.
const topOfRing = "18446744073709551616"

// ParseRange parses "START-END", two decimal uint64s, into a range. END may
// be 18446744073709551616 (2^64), the top of the ring, stored as End 0.
func ParseRange(s string) (wire.Range, error) {
	start, end, ok := strings.Cut(s, "-")
	if !ok {
		return wire.Range{}, fmt.Errorf("range %q: want START-END", s)
	}
	var r wire.Range
	var err error
	if r.Start, err = strconv.ParseUint(start, 10, 64); err != nil {
		return wire.Range{}, fmt.Errorf("range %q: start %q must be a number below 2^64", s, start)
	}
	if end == topOfRing {
		r.End = 0
		return r, nil
	}
	if r.End, err = strconv.ParseUint(end, 10, 64); err != nil {
		return wire.Range{}, fmt.Errorf("range %q: end %q must be a number up to 2^64 (%s)", s, end, topOfRing)
	}
	if r.End <= r.Start {
		return wire.Range{}, fmt.Errorf("range %q: end must be greater than start (write %s for the top of the ring)", s, topOfRing)
	}
	return r, nil
}

// FormatRange writes r the way ParseRange reads it.
func FormatRange(r wire.Range) string {
	end := strconv.FormatUint(r.End, 10)
	if r.End == 0 {
		end = topOfRing
	}
	return strconv.FormatUint(r.Start, 10) + "-" + end
}

// ParsePeers parses "1=HOST:PORT,2=HOST:PORT,..." into raft id -> address.
// Ids must be distinct nonzero numbers and addresses distinct HOST:PORTs.
func ParsePeers(s string) (map[uint64]string, error) {
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
		if err := checkAddr(addr); err != nil {
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

// FormatPeers writes peers the way ParsePeers reads them, sorted by id.
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

// ParseCluster parses one router --cluster value, "c1=1@HOST:PORT,2@HOST:PORT".
func ParseCluster(s string) (wire.ClusterInfo, error) {
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
		if err := checkAddr(addr); err != nil {
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

// ParseClusters parses every --cluster value of the router, in order, and
// checks that cluster ids and node ids are unique across them.
func ParseClusters(values []string) ([]wire.ClusterInfo, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("no clusters: give --cluster ID=NODE@HOST:PORT,... at least once")
	}
	out := make([]wire.ClusterInfo, 0, len(values))
	ids := map[string]bool{}
	nodes := map[uint64]string{}
	for _, v := range values {
		ci, err := ParseCluster(v)
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

// FormatCluster writes ci the way ParseCluster reads it.
func FormatCluster(ci wire.ClusterInfo) string {
	parts := make([]string, len(ci.Members))
	for i, m := range ci.Members {
		parts[i] = strconv.FormatUint(m.ID, 10) + "@" + m.Addr
	}
	return ci.ID + "=" + strings.Join(parts, ",")
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

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want HOST:PORT", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("address %q: port must be a number from 1 to 65535", addr)
	}
	return nil
}
