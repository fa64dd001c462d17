package loadgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// ProcStat is what /proc/PID/stat says of one process: its parent and the
// CPU time it has used, in clock ticks (CLK_TCK, 100 per second on Linux).
type ProcStat struct {
	PID   int
	Comm  string // the executable's name, as the kernel keeps it (at most 15 bytes)
	PPID  int
	UTime uint64 // user-mode ticks
	STime uint64 // kernel-mode ticks
}

// ParseProcStat parses the content of /proc/PID/stat. The comm field is
// parenthesised and may itself hold spaces and parentheses, so it runs to
// the last ')' of the line; the fields after it are numbered as in proc(5)
// (state is field 3, ppid 4, utime 14, stime 15).
func ParseProcStat(b []byte) (ProcStat, error) {
	open, shut := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || shut < open {
		return ProcStat{}, fmt.Errorf("proc stat %.40q: no (comm)", b)
	}
	var st ProcStat
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:open])))
	if err != nil {
		return ProcStat{}, fmt.Errorf("proc stat %.40q: pid: %w", b, err)
	}
	st.PID, st.Comm = pid, string(b[open+1:shut])
	rest := strings.Fields(string(b[shut+1:])) // rest[0] is field 3
	if len(rest) < 13 {
		return ProcStat{}, fmt.Errorf("proc stat of %d: %d fields after comm, want at least 13", pid, len(rest))
	}
	field := func(n int) (uint64, error) {
		v, err := strconv.ParseUint(rest[n-3], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc stat of %d: field %d %q: not a number", pid, n, rest[n-3])
		}
		return v, nil
	}
	ppid, err := field(4)
	if err != nil {
		return ProcStat{}, err
	}
	if st.UTime, err = field(14); err != nil {
		return ProcStat{}, err
	}
	if st.STime, err = field(15); err != nil {
		return ProcStat{}, err
	}
	st.PPID = int(ppid)
	return st, nil
}

// procRoot is where the proc file system is mounted (a variable for tests).
var procRoot = "/proc"

// ReadProcStat reads and parses /proc/PID/stat.
func ReadProcStat(pid int) (ProcStat, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "stat"))
	if err != nil {
		if os.IsNotExist(err) {
			return ProcStat{}, fmt.Errorf("process %d: no such process", pid)
		}
		return ProcStat{}, fmt.Errorf("process %d: %w", pid, err)
	}
	return ParseProcStat(b)
}

// ProcTree returns pid and all its descendants, pid first and the rest in
// ascending order, from a scan of /proc.
func ProcTree(pid int) ([]int, error) {
	if _, err := ReadProcStat(pid); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, err
	}
	children := map[int][]int{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := ReadProcStat(p)
		if err != nil {
			continue // exited meanwhile
		}
		children[st.PPID] = append(children[st.PPID], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	slices.Sort(out[1:])
	return out, nil
}

// procLabel names a process for the report from its command line: the
// executable's base name, its subcommand (a first argument that is not a
// flag) and the values of its --cluster, --id and --name flags, e.g.
// "cleave node cluster=c1 id=2" or "etcd name=e1". Falls back to comm.
func procLabel(pid int, comm string) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cmdline"))
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if err != nil || len(args) == 0 || args[0] == "" {
		return comm
	}
	parts := []string{filepath.Base(args[0])}
	if len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		parts = append(parts, args[1])
	}
	for i, a := range args {
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || (name != "cluster" && name != "id" && name != "name") {
			continue
		}
		if name == "cluster" && len(parts) > 1 && parts[1] == "router" {
			continue // a router's --cluster flags describe the routing table
		}
		if !hasVal && i+1 < len(args) {
			val = args[i+1]
		}
		parts = append(parts, name+"="+val)
	}
	return strings.Join(parts, " ")
}

// ServerCPU is the CPU time the server processes used over the measured
// window, from /proc/PID/stat (user + system) before and after it.
type ServerCPU struct {
	ClockTicks int     `json:"clk_tck"`   // ticks per second used to convert
	Seconds    float64 `json:"cpu_s"`     // user + system seconds, all processes
	UsPerOp    float64 `json:"us_per_op"` // Seconds in µs per completed operation (ops + errors)
	// LoadgenUsPerOp is the load generator's own CPU per operation: the
	// client side's cost, which shares the machine with the servers.
	LoadgenUsPerOp float64   `json:"loadgen_us_per_op"`
	Procs          []ProcCPU `json:"procs"`
}

// ProcCPU is one server process's share of ServerCPU.
type ProcCPU struct {
	PID     int     `json:"pid"`
	Label   string  `json:"label"` // e.g. "cleave node cluster=c1 id=2"
	UserS   float64 `json:"user_s"`
	SysS    float64 `json:"sys_s"`
	UsPerOp float64 `json:"us_per_op"`
	Share   float64 `json:"share"`           // fraction of ServerCPU.Seconds
	Error   string  `json:"error,omitempty"` // why it was not measured to the end (it exited)
}

// cpuMeter measures the CPU of a set of processes over a window.
type cpuMeter struct {
	hz     int
	pids   []int
	labels []string
	start  []ProcStat
	self   ProcStat
}

// startCPU reads the starting CPU times of pids (and of this process);
// nil if pids is empty. hz is CLK_TCK (0: 100).
func startCPU(pids []int, hz int) (*cpuMeter, error) {
	if len(pids) == 0 {
		return nil, nil
	}
	if hz <= 0 {
		hz = 100
	}
	m := &cpuMeter{hz: hz, pids: pids}
	for _, p := range pids {
		st, err := ReadProcStat(p)
		if err != nil {
			return nil, fmt.Errorf("server CPU: %w", err)
		}
		m.start = append(m.start, st)
		m.labels = append(m.labels, procLabel(p, st.Comm))
	}
	m.self, _ = ReadProcStat(os.Getpid())
	return m, nil
}

// stop reads the ending CPU times and returns the CPU per operation for
// ops completed operations. A process that exited during the window is
// listed with an Error and counts nothing.
func (m *cpuMeter) stop(ops int64) *ServerCPU {
	if m == nil {
		return nil
	}
	secs := func(ticks uint64) float64 { return float64(ticks) / float64(m.hz) }
	perOp := func(s float64) float64 { return s * 1e6 / float64(max(ops, 1)) }
	out := &ServerCPU{ClockTicks: m.hz, Procs: make([]ProcCPU, len(m.pids))}
	for i, p := range m.pids {
		pc := ProcCPU{PID: p, Label: m.labels[i]}
		st, err := ReadProcStat(p)
		switch {
		case err != nil:
			pc.Error = err.Error()
		case st.UTime < m.start[i].UTime || st.STime < m.start[i].STime:
			pc.Error = fmt.Sprintf("process %d: CPU time went backwards: the pid was reused", p)
		default:
			pc.UserS, pc.SysS = secs(st.UTime-m.start[i].UTime), secs(st.STime-m.start[i].STime)
		}
		pc.UsPerOp = perOp(pc.UserS + pc.SysS)
		out.Seconds += pc.UserS + pc.SysS
		out.Procs[i] = pc
	}
	for i := range out.Procs {
		if out.Seconds > 0 {
			out.Procs[i].Share = (out.Procs[i].UserS + out.Procs[i].SysS) / out.Seconds
		}
	}
	out.UsPerOp = perOp(out.Seconds)
	if self, err := ReadProcStat(os.Getpid()); err == nil && m.self.PID != 0 {
		out.LoadgenUsPerOp = perOp(secs(self.UTime + self.STime - m.self.UTime - m.self.STime))
	}
	return out
}
