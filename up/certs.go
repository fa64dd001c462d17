package up

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/cleavefs/cleave/internal/certs"
)

// CertsDir is the directory, inside the data directory, of the
// deployment's development CA (ca.crt, ca.key) and of one certificate per
// process (node-<raft id>, router-<meta raft id>), plus user-admin for
// the operator under --tls.
const CertsDir = "certs"

// AdminCert is the name of the operator's client certificate under
// DIR/certs (AdminCert+".crt" and ".key").
var AdminCert = certs.Name(certs.RoleUser, "admin")

// certValidity is how long the development CA and its certificates last.
const certValidity = 10 * 365 * 24 * time.Hour

// ensureCA makes the development CA in DIR/certs on the first start and
// keeps it afterwards; with TLS it also issues the operator's certificate.
func ensureCA(cfg Config) error {
	dir := filepath.Join(cfg.DataDir, CertsDir)
	if _, err := os.Stat(filepath.Join(dir, certs.CAKey)); errors.Is(err, fs.ErrNotExist) {
		if err := certs.NewCA(dir, "cleave development CA", certValidity); err != nil {
			return fmt.Errorf("up: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("up: %w", err)
	}
	if cfg.TLS {
		return ensureCert(cfg.DataDir, AdminCert, nil)
	}
	return nil
}

// ensureCert issues DIR/certs/NAME.crt and .key for a process serving and
// dialling on addrs unless they exist. The certificate is good for both
// planes: server and client use, every host of addrs and 127.0.0.1.
func ensureCert(dataDir, name string, addrs []string) error {
	dir := filepath.Join(dataDir, CertsDir)
	if _, err := os.Stat(filepath.Join(dir, name+".crt")); err == nil {
		if _, err := os.Stat(filepath.Join(dir, name+".key")); err == nil {
			return nil
		}
	}
	hosts := []string{"127.0.0.1", "localhost"}
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && h != "" {
			hosts = append(hosts, h)
		}
	}
	if err := certs.Issue(dir, dir, name, hosts, certs.Both, certValidity); err != nil {
		return fmt.Errorf("up: %w", err)
	}
	return nil
}

// tlsArgs are the certificate flags of a child named name (its
// certificate's common name): mutual TLS on the peer plane always, and
// with cfg.TLS the client listener too (and, for a router, TLS to the
// nodes' client listeners).
func tlsArgs(cfg Config, name string, router bool) []string {
	dir := filepath.Join(cfg.DataDir, CertsDir)
	crt, key, ca := filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key"), filepath.Join(dir, certs.CACert)
	args := []string{"--peer-cert", crt, "--peer-key", key, "--peer-cacert", ca}
	if cfg.TLS {
		args = append(args, "--tls-cert", crt, "--tls-key", key, "--tls-cacert", ca)
		if router {
			args = append(args, "--node-tls")
		}
	}
	return args
}

// nodeCertName is node n's certificate name, node-<raft id>.
func nodeCertName(n NodeSpec) string {
	return certs.Name(certs.RoleNode, strconv.FormatUint(n.ID, 10))
}

// routerCertName is router r's certificate name: router-<meta raft id>,
// or router-<id> for a single router without a meta group.
func routerCertName(r RouterSpec) string {
	if r.RaftID != 0 {
		return certs.Name(certs.RoleRouter, strconv.FormatUint(r.RaftID, 10))
	}
	return certs.Name(certs.RoleRouter, r.ID)
}

// clientTLS is the TLS configuration of the supervisor's own calls to the
// routers' and nodes' client listeners: nil unless cfg.TLS.
func clientTLS(cfg Config) (*tls.Config, error) {
	if !cfg.TLS {
		return nil, nil
	}
	dir := filepath.Join(cfg.DataDir, CertsDir)
	return certs.ClientTLS(filepath.Join(dir, certs.CACert), "", "")
}
