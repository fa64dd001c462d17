package main

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readPEMCert parses the certificate in path.
func readPEMCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s holds no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCertsInitAndIssue(t *testing.T) {
	dir := t.TempDir()
	if code, out, errs := cli(t, "", "certs", "init", "--dir", dir); code != 0 || !strings.Contains(out, filepath.Join(dir, "ca.crt")) {
		t.Fatalf("certs init: exit %d, out %q, err %q", code, out, errs)
	}
	if code, _, errs := cli(t, "", "certs", "init", "--dir", dir); code != 1 || !strings.Contains(errs, "ca.key already exists") {
		t.Fatalf("second certs init: exit %d, err %q", code, errs)
	}
	roots := x509.NewCertPool()
	roots.AddCert(readPEMCert(t, filepath.Join(dir, "ca.crt")))

	verify := func(name, host string, usage x509.ExtKeyUsage) error {
		_, err := readPEMCert(t, filepath.Join(dir, name+".crt")).Verify(x509.VerifyOptions{Roots: roots, DNSName: host, KeyUsages: []x509.ExtKeyUsage{usage}})
		return err
	}
	for _, c := range []struct {
		name, flag     string
		server, client bool
	}{{"node-1", "", true, true}, {"router-r1", "--server", true, false}, {"user-alice", "--client", false, true}} {
		args := []string{"certs", "issue", "--dir", dir, "--name", c.name, "--host", "127.0.0.1", "--host", "localhost"}
		if c.flag != "" {
			args = append(args, c.flag)
		}
		if code, out, errs := cli(t, "", args...); code != 0 || !strings.Contains(out, c.name+".key") {
			t.Fatalf("certs issue %s: exit %d, out %q, err %q", c.name, code, out, errs)
		}
		for _, host := range []string{"127.0.0.1", "localhost"} {
			if err := verify(c.name, host, x509.ExtKeyUsageServerAuth); (err == nil) != c.server {
				t.Errorf("%s as server for %s: %v, want ok=%v", c.name, host, err, c.server)
			}
		}
		if err := verify(c.name, "", x509.ExtKeyUsageClientAuth); (err == nil) != c.client {
			t.Errorf("%s as client: %v, want ok=%v", c.name, err, c.client)
		}
		if fi, err := os.Stat(filepath.Join(dir, c.name+".key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s.key: %v, want mode 0600", c.name, err)
		}
	}

	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"certs", "issue", "--dir", dir}, 2, "--name"},
		{[]string{"certs", "issue", "--dir", dir, "--name", "node-2", "--client", "--server"}, 2, "--client and --server"},
		{[]string{"certs", "issue", "--dir", t.TempDir(), "--name", "node-2"}, 1, "ca.crt"},
		{[]string{"certs", "issue", "--dir", dir, "--name", "../x"}, 1, "name"},
		{[]string{"certs", "init"}, 2, "--dir"},
	} {
		if code, _, errs := cli(t, "", c.args...); code != c.code || !strings.Contains(errs, c.want) {
			t.Errorf("%q: exit %d, err %q; want exit %d naming %q", c.args, code, errs, c.code, c.want)
		}
	}
}
