// Package tests holds cleave's multi-process integration tests: they build
// the real cleave binary, start real deployments on 127.0.0.1 with
// `cleave up`, and drive them through the SDK, the CLI and raw sockets.
// Faults are real: kill -9 of processes, restarts on the same data.
package tests
