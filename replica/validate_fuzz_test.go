package replica

import (
	"io"
	"log"
	"math"
	"testing"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// fuzzRaft is a real raft node, id 1 of voters 1, 2 and 3, over memory
// storage that starts from a snapshot at index 5, term 2; as leader it has
// won term 3 with node 2's vote.
func fuzzRaft(t *testing.T, leader bool) (*raft.RawNode, *raft.MemoryStorage) {
	st := raft.NewMemoryStorage()
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(5)), Term: new(uint64(2)), ConfState: &pb.ConfState{Voters: []uint64{1, 2, 3}}}}
	if err := st.ApplySnapshot(snap); err != nil {
		t.Fatal(err)
	}
	if err := st.SetHardState(&pb.HardState{Term: new(uint64(2)), Commit: new(uint64(5))}); err != nil {
		t.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st, Applied: 5,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, CheckQuorum: true, PreVote: true,
		DisableProposalForwarding: true, StepDownOnRemoval: true,
		Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)},
	})
	if err != nil {
		t.Fatal(err)
	}
	if leader {
		if err := rn.Campaign(); err != nil {
			t.Fatal(err)
		}
		fuzzDrain(t, rn, st)
		for _, typ := range []pb.MessageType{pb.MsgPreVoteResp, pb.MsgVoteResp} {
			rn.Step(&pb.Message{Type: typ.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(3))})
			fuzzDrain(t, rn, st)
		}
		if rn.BasicStatus().RaftState != raft.StateLeader {
			t.Fatalf("fuzz raft did not become leader: %v", rn.BasicStatus().RaftState)
		}
	}
	return rn, st
}

// fuzzDrain persists and advances every pending Ready, as the loop does.
func fuzzDrain(t *testing.T, rn *raft.RawNode, st *raft.MemoryStorage) {
	for range 100 {
		if !rn.HasReady() {
			return
		}
		rd := rn.Ready()
		if rd.Snapshot != nil && rd.Snapshot.GetMetadata().GetIndex() > 0 {
			if err := st.ApplySnapshot(rd.Snapshot); err != nil {
				t.Fatalf("apply snapshot: %v", err)
			}
		}
		if rd.HardState != nil {
			st.SetHardState(rd.HardState)
		}
		if err := st.Append(rd.Entries); err != nil {
			t.Fatalf("append: %v", err)
		}
		rn.Advance(rd)
	}
}

// FuzzValidateMessage decodes the input as a raft message from a peer.
// validateMessage never panics, and whatever it accepts is stepped into a
// real raft node (a follower or a leader), which then runs Readies and
// ticks through elections: no accepted frame may make raft panic (a term
// that overflows on the next campaign, a commit beyond the log, ...).
func FuzzValidateMessage(f *testing.F) {
	for _, m := range []*pb.Message{
		{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(math.MaxUint64))},
		{Type: pb.MsgHeartbeat.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(4)), Commit: new(uint64(5))},
		{Type: pb.MsgApp.Enum(), From: new(uint64(2)), To: new(uint64(1)), Term: new(uint64(4)), Index: new(uint64(5)), LogTerm: new(uint64(2)),
			Commit: new(uint64(6)), Entries: []*pb.Entry{{Index: new(uint64(6)), Term: new(uint64(4)), Data: []byte("x")}}},
		{Type: pb.MsgAppResp.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(3)), Index: new(uint64(6))},
		{Type: pb.MsgVote.Enum(), From: new(uint64(3)), To: new(uint64(1)), Term: new(uint64(9)), Index: new(uint64(9)), LogTerm: new(uint64(8))},
		{Type: pb.MsgReadIndex.Enum(), From: new(uint64(2)), To: new(uint64(1)), Entries: []*pb.Entry{{Data: []byte("ctx")}}},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(0), b)
		f.Add(byte(1), b)
	}
	f.Fuzz(func(t *testing.T, mode byte, data []byte) {
		m := new(pb.Message)
		if proto.Unmarshal(data, m) != nil {
			return
		}
		rn, st := fuzzRaft(t, mode&1 == 1)
		last, _ := st.LastIndex()
		v := peerView{self: 1, lastIndex: last, members: map[uint64]bool{1: true, 2: true, 3: true}}
		if validateMessage(m, v, mode&2 == 2) != nil {
			return
		}
		if err := rn.Step(m); err != nil {
			return
		}
		fuzzDrain(t, rn, st)
		for range 30 {
			rn.Tick()
			fuzzDrain(t, rn, st)
		}
	})
}
