// Package certs makes and loads cleave's TLS material: a development CA
// (NewCA), certificates it signs for nodes, routers and users (Issue), the
// identity a certificate names (Identity: CN "node-7" is role node, id 7),
// and a Reloader that serves TLS 1.3 configurations whose certificate and
// CA are re-read when their files change, so certificates rotate without
// a restart.
//
// Files: ca.crt and ca.key in the CA directory; NAME.crt and NAME.key for
// an issued certificate. Keys are ECDSA P-256 in PKCS#8 PEM, mode 0600;
// files are replaced atomically. Every error names the file it is about.
package certs
