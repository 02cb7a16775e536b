package temporalclient_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/temporalclient"
)

// writeCert writes a self-signed certificate and its key as PEM files.
func writeCert(t *testing.T, dir string) (certFile, keyFile string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "writeback-worker"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	kb, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	require.NoError(t, os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600))
	require.NoError(t, os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600))
	return certFile, keyFile
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestPlainByDefault(t *testing.T) {
	o, err := (&temporalclient.Config{Address: "127.0.0.1:7233", Namespace: "default"}).Options(quiet(), nil)
	require.NoError(t, err)
	require.Nil(t, o.ConnectionOptions.TLS)
	require.Nil(t, o.Credentials)
}

func TestMutualTLS(t *testing.T) {
	cert, key := writeCert(t, t.TempDir())
	c := &temporalclient.Config{Address: "temporal:7233", Namespace: "prod", TLSCert: cert, TLSKey: key, TLSCA: cert, ServerName: "temporal.example.org"}
	o, err := c.Options(quiet(), nil)
	require.NoError(t, err)
	require.NotNil(t, o.ConnectionOptions.TLS)
	require.Len(t, o.ConnectionOptions.TLS.Certificates, 1)
	require.NotNil(t, o.ConnectionOptions.TLS.RootCAs)
	require.Equal(t, "temporal.example.org", o.ConnectionOptions.TLS.ServerName)
	require.Equal(t, "prod", o.Namespace)

	_, err = (&temporalclient.Config{TLSCert: cert}).Options(quiet(), nil)
	require.ErrorContains(t, err, "both a certificate and a key")
	_, err = (&temporalclient.Config{TLSCA: filepath.Join(t.TempDir(), "missing.pem")}).Options(quiet(), nil)
	require.Error(t, err)
}

func TestAPIKeyImpliesTLS(t *testing.T) {
	o, err := (&temporalclient.Config{Address: "x.tmprl.cloud:7233", APIKey: "k"}).Options(quiet(), nil)
	require.NoError(t, err)
	require.NotNil(t, o.Credentials)
	require.NotNil(t, o.ConnectionOptions.TLS)
}
