package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names inside a CA directory.
const (
	CACert = "ca.crt"
	CAKey  = "ca.key"
)

// Roles a certificate's common name may start with (ROLE-ID).
const (
	RoleNode   = "node"
	RoleRouter = "router"
	RoleUser   = "user"
)

// Usage is what an issued certificate may be used for.
type Usage int

// Usages: a server (TLS server auth), a client (TLS client auth), or both.
const (
	Server Usage = 1 << iota
	Client
	Both = Server | Client
)

// NewCA writes a new self-signed CA, named name and valid for validity,
// to dir/ca.crt and dir/ca.key (mode 0600). It refuses to replace an
// existing ca.key.
func NewCA(dir, name string, validity time.Duration) error {
	if validity <= 0 {
		return fmt.Errorf("certs: CA validity %v is not positive", validity)
	}
	keyPath := filepath.Join(dir, CAKey)
	if _, err := os.Stat(keyPath); err == nil {
		return fmt.Errorf("certs: %s already exists; remove it to make a new CA", keyPath)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("certs: CA: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return writePair(filepath.Join(dir, CACert), filepath.Join(dir, CAKey), der, key)
}

// Issue signs a certificate for name with the CA in caDir and writes it to
// outDir/NAME.crt and NAME.key (replacing them atomically). hosts become
// subject alternative names (IPs as IP SANs, others as DNS names); name is
// also the common name, so ROLE-ID names (Name) carry an identity. The
// certificate ends at the CA's expiry if that is sooner than validity.
func Issue(caDir, outDir, name string, hosts []string, usage Usage, validity time.Duration) error {
	if validity <= 0 {
		return fmt.Errorf("certs: validity %v is not positive", validity)
	}
	if usage&Both == 0 {
		return errors.New("certs: usage is neither server nor client")
	}
	tmpl := &x509.Certificate{NotAfter: time.Now().Add(validity)}
	if usage&Server != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
	}
	if usage&Client != 0 {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, key, err := sign(caDir, name, tmpl)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	return writePair(filepath.Join(outDir, name+".crt"), filepath.Join(outDir, name+".key"), der, key)
}

// Reissue replaces the certificate in certFile and its key in keyFile with
// a new pair for name, signed by the CA in caDir, with the old
// certificate's subject alternative names, usages and expiry (capped at
// the CA's): the same holder under a new identity, as a node that took a
// new raft id needs.
func Reissue(caDir, certFile, keyFile, name string) error {
	old, err := ReadCert(certFile)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{NotAfter: old.NotAfter, ExtKeyUsage: old.ExtKeyUsage, DNSNames: old.DNSNames, IPAddresses: old.IPAddresses}
	der, key, err := sign(caDir, name, tmpl)
	if err != nil {
		return err
	}
	return writePair(certFile, keyFile, der, key)
}

// sign signs tmpl's usages, names and expiry (capped at the CA's) for
// common name name with the CA in caDir, under a new key.
func sign(caDir, name string, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey, error) {
	if err := checkName(name); err != nil {
		return nil, nil, err
	}
	ca, err := ReadCert(filepath.Join(caDir, CACert))
	if err != nil {
		return nil, nil, err
	}
	caKey, err := readKey(filepath.Join(caDir, CAKey))
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: %w", err)
	}
	tmpl.SerialNumber, tmpl.Subject = serial(), pkix.Name{CommonName: name}
	tmpl.NotBefore, tmpl.KeyUsage = time.Now().Add(-time.Minute), x509.KeyUsageDigitalSignature
	if ca.NotAfter.Before(tmpl.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("certs: sign %s: %w", name, err)
	}
	return der, key, nil
}

// Name is the common name of a certificate for role and id: "node-7".
func Name(role, id string) string { return role + "-" + id }

// Identity returns the role (RoleNode, RoleRouter or RoleUser) and id a
// certificate's common name states, or an error naming the common name.
func Identity(cert *x509.Certificate) (role, id string, err error) {
	cn := cert.Subject.CommonName
	role, id, ok := strings.Cut(cn, "-")
	switch {
	case !ok || id == "":
		return "", "", fmt.Errorf("certs: common name %q is not ROLE-ID", cn)
	case role != RoleNode && role != RoleRouter && role != RoleUser:
		return "", "", fmt.Errorf("certs: common name %q: role %q is not node, router or user", cn, role)
	}
	return role, id, nil
}

// checkName accepts names usable as a file name and common name.
func checkName(name string) error {
	if name == "" {
		return errors.New("certs: name is empty")
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') || name[0] == '.' {
			return fmt.Errorf("certs: name %q: use letters, digits, '-', '_' and '.', not starting with '.'", name)
		}
	}
	return nil
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return n
}

// writePair writes dir/stem.key (0600) and dir/stem.crt, each atomically.
func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	if err := writeFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return err
	}
	return writeFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
}

// writeFile replaces path with b through a temporary file and a rename.
func writeFile(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("certs: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("certs: write %s: %w", path, err)
	}
	return nil
}

// pemBlock returns the first PEM block of path, or an error naming path.
func pemBlock(path, what string) (*pem.Block, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certs: %s: %w", what, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("certs: %s %s: no PEM block in it", what, path)
	}
	return blk, nil
}

// ReadCert reads the first certificate of a PEM file.
func ReadCert(path string) (*x509.Certificate, error) {
	blk, err := pemBlock(path, "certificate")
	if err != nil {
		return nil, err
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("certs: certificate %s: %w", path, err)
	}
	return c, nil
}

// readKey reads a PKCS#8 (or SEC 1 EC) private key from a PEM file.
func readKey(path string) (crypto.Signer, error) {
	blk, err := pemBlock(path, "key")
	if err != nil {
		return nil, err
	}
	var k any
	if blk.Type == "EC PRIVATE KEY" {
		k, err = x509.ParseECPrivateKey(blk.Bytes)
	} else {
		k, err = x509.ParsePKCS8PrivateKey(blk.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("certs: key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("certs: key %s: %T cannot sign", path, k)
	}
	return s, nil
}

// Verified returns the role and id named by the verified peer
// certificate of a TLS connection, or an error if it has none.
func Verified(cs *tls.ConnectionState) (role, id string, err error) {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return "", "", errors.New("certs: no verified certificate on the connection")
	}
	return Identity(cs.VerifiedChains[0][0])
}
