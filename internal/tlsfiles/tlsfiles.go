// Package tlsfiles builds a client TLS configuration from PEM files: the one helper for the
// Temporal and the AMQP connections.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Config builds a TLS 1.2+ client configuration for what (named in errors, e.g. "AMQP"): caFile
// replaces the system roots when set; certFile and keyFile (both or neither) add a client
// certificate; serverName overrides the name checked on the server's certificate.
func Config(what, caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if (certFile == "") != (keyFile == "") {
		return nil, fmt.Errorf("%s client TLS needs both a certificate and a key", what)
	}
	if certFile != "" {
		pair, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("%s client certificate: %w", what, err)
		}
		t.Certificates = []tls.Certificate{pair}
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("%s CA: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s CA %s holds no PEM certificate", what, caFile)
		}
		t.RootCAs = pool
	}
	return t, nil
}
