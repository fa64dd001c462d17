package replica

import (
	_ "github.com/cockroachdb/pebble/v2"
	_ "go.etcd.io/raft/v3"
)
