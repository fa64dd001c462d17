package client

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/cleavefs/cleave/wire"
)

// Stat is the metadata of one path, as the server reported it.
//
// Its JSON form is the one the CLI prints with -o json:
//
//	{"name": "a.txt", "type": "file", "size": 5, "mtime": "2025-01-02T03:04:05.123456789Z",
//	 "version": 42, "checksum": "sha256:…"}
type Stat struct {
	Name     string    // base name; "" for "/"
	Type     FileType  // TypeFile or TypeDir
	Size     int64     // bytes; 0 for directories
	Mtime    time.Time // time of the last change (the leader's clock), UTC
	Version  uint64    // log index of the last change; a compare-and-swap token
	Checksum string    // "sha256:<hex>" of the contents; "" for directories
}

// IsDir reports whether s describes a directory.
func (s *Stat) IsDir() bool { return s.Type == TypeDir }

func statFromWire(w *wire.Stat) Stat {
	return Stat{
		Name: w.Name, Type: FileType(w.Type), Size: w.Size,
		Mtime:   time.Unix(0, w.Mtime).UTC(),
		Version: w.Version, Checksum: w.Checksum,
	}
}

type statJSON struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Size     int64  `json:"size"`
	Mtime    string `json:"mtime"`
	Version  uint64 `json:"version"`
	Checksum string `json:"checksum"`
}

// MarshalJSON writes the type as "file" or "dir" and Mtime in RFC 3339 with
// nanoseconds.
func (s Stat) MarshalJSON() ([]byte, error) {
	return json.Marshal(statJSON{
		Name: s.Name, Type: s.Type.String(), Size: s.Size,
		Mtime:   s.Mtime.UTC().Format(time.RFC3339Nano),
		Version: s.Version, Checksum: s.Checksum,
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *Stat) UnmarshalJSON(b []byte) error {
	var j statJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var t FileType
	switch j.Type {
	case "file":
		t = TypeFile
	case "dir":
		t = TypeDir
	default:
		return fmt.Errorf("stat: unknown type %q", j.Type)
	}
	mt, err := time.Parse(time.RFC3339Nano, j.Mtime)
	if err != nil {
		return fmt.Errorf("stat: mtime: %w", err)
	}
	*s = Stat{Name: j.Name, Type: t, Size: j.Size, Mtime: mt.UTC(), Version: j.Version, Checksum: j.Checksum}
	return nil
}
