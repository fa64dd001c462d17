// Package loadgen is the engine of cleave-loadgen: it drives a cleave
// deployment — or, for comparison, an etcd cluster — with file workloads and
// reports honest latency distributions and the servers' CPU per operation.
//
// # Targets
//
// The engine drives a Store and knows nothing else of the system under
// test: CleaveStore (cleave.go) goes through the SDK, EtcdStore (etcd.go)
// through etcd's v3 client with a file's path as its key. Workloads a Store
// lacks (appends, streams, scans) fail up front with ErrNotSupported.
//
// # YCSB
//
// The YCSB core workloads A-F (ycsb.go) run over files: a record is a
// file, read a get, update and insert puts, scan a listing of at most 1-100
// entries of a record's root directory, read-modify-write a get and a put.
// The load phase creates the Files records; keys are chosen with YCSB's
// scrambled zipfian (Gray et al.'s generator, FNV-1a scattering; skew
// Theta) or its latest distribution, which follows the inserts that have
// returned (insertSeq), so reads never race the insert of their file.
//
// # Server CPU
//
// With Config.CPUPIDs, Run reads each process's user and system time from
// /proc/PID/stat just before the measured window and just after it, and
// reports the difference per completed operation, in total and per process
// (cpu.go).
//
// # Model
//
// A run has Clients workers sharing one SDK Store. In closed-loop mode
// (Rate 0) each worker issues its next operation as soon as the previous one
// returns. In open-loop mode (Rate > 0) operations are scheduled at fixed
// intended send times, start + i/Rate, and a worker that takes ticket i waits
// until that time; latency is measured from the intended send time, not from
// when the request actually left, so a stalled server shows up as latency
// rather than as fewer samples (coordinated omission is not hidden; this is
// what wrk2 does).
//
// Operations begun during the warm-up (Config.Warmup) run but are not
// recorded; the measured window, the per-second series and the server CPU
// start after it.
//
// Latencies are recorded in microseconds in HDR histograms
// (HdrHistogram/hdrhistogram-go, 3 significant figures, 1 µs to 60 s) per
// operation — successful and failed operations apart — plus per-second
// buckets of completions, errors and latency. Failures are counted by wire
// code (client.CodeOf), in total and per operation. The Result carries
// every histogram raw (HdrHistogram's V2 compressed encoding), and Merge
// rebuilds a run's tally from them, so results of several hosts combine
// exactly as if one recorder had seen every sample.
//
// # Layout
//
// Parsing of sizes, distributions and rates (parse.go, sizehist.go), key
// choice (keys.go), workloads and the Store interface (workload.go, ycsb.go),
// the targets (cleave.go, etcd.go), the run loop (run.go), recording
// (record.go), server CPU (cpu.go), the Result and its table/JSON forms
// (result.go), merging (merge.go), the HTML report (report.go), compare and
// regression thresholds (compare.go), side-by-side tables of several
// systems (versus.go), the build's version (version.go) and the TTY
// progress bar (progress.go).
//
// # Concurrency
//
// Run is called once per Config; Store must be safe for concurrent use (both
// targets are). The recorder is guarded by one mutex held only for the
// few hundred nanoseconds of recording a sample.
package loadgen
