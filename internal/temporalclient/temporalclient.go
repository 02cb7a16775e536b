// Package temporalclient builds Temporal client options for the worker and the starter:
// plain for local runs, mTLS with a client certificate and CA, or an API key, for production.
package temporalclient

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"

	"github.com/tis-writeback/writeback/internal/config"
	"github.com/tis-writeback/writeback/internal/tlsfiles"
)

// Config of the connection to Temporal.
type Config struct {
	Address    string
	Namespace  string
	TLSCert    string
	TLSKey     string
	TLSCA      string
	ServerName string
	APIKey     string
}

// Flags defines the connection flags on fs.
func Flags(fs *flag.FlagSet) *Config {
	c := &Config{}
	set := config.Set{FS: fs}
	set.String(&c.Address, "temporal-address", "TEMPORAL_ADDRESS", "127.0.0.1:7233", "Temporal frontend host:port")
	set.String(&c.Namespace, "temporal-namespace", "TEMPORAL_NAMESPACE", "default", "Temporal namespace")
	set.String(&c.TLSCert, "temporal-tls-cert", "TEMPORAL_TLS_CERT", "", "client certificate (PEM) for mTLS")
	set.String(&c.TLSKey, "temporal-tls-key", "TEMPORAL_TLS_KEY", "", "client key (PEM) for mTLS")
	set.String(&c.TLSCA, "temporal-tls-ca", "TEMPORAL_TLS_CA", "", "CA bundle (PEM) to verify the server")
	set.String(&c.ServerName, "temporal-tls-server-name", "TEMPORAL_TLS_SERVER_NAME", "", "TLS server name override")
	set.Secret(&c.APIKey, "temporal-api-key", "TEMPORAL_API_KEY", "API key (Temporal Cloud); implies TLS")
	return c
}

// Options builds client options with JSON logging through log and the given metrics handler.
func (c *Config) Options(log *slog.Logger, metrics client.MetricsHandler) (client.Options, error) {
	o := client.Options{
		HostPort:       c.Address,
		Namespace:      c.Namespace,
		Logger:         sdklog.NewStructuredLogger(log),
		MetricsHandler: metrics,
	}
	tlsCfg, err := c.tls()
	if err != nil {
		return o, err
	}
	o.ConnectionOptions.TLS = tlsCfg
	if c.APIKey != "" {
		o.Credentials = client.NewAPIKeyStaticCredentials(c.APIKey)
		if o.ConnectionOptions.TLS == nil {
			o.ConnectionOptions.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		}
	}
	return o, nil
}

func (c *Config) tls() (*tls.Config, error) {
	if c.TLSCert == "" && c.TLSKey == "" && c.TLSCA == "" && c.ServerName == "" {
		return nil, nil
	}
	return tlsfiles.Config("Temporal", c.TLSCA, c.TLSCert, c.TLSKey, c.ServerName)
}

// Dial connects to Temporal, trying again until ctx ends: a process started before Temporal
// waits for it rather than crash-looping.
func Dial(ctx context.Context, c *Config, log *slog.Logger, metrics client.MetricsHandler) (client.Client, error) {
	opts, err := c.Options(log, metrics)
	if err != nil {
		return nil, err
	}
	wait := 500 * time.Millisecond
	for {
		cl, err := client.DialContext(ctx, opts)
		if err == nil {
			return cl, nil
		}
		log.Warn("cannot reach Temporal yet; trying again", "address", c.Address, "error", err, "wait", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("temporal at %s: %w", c.Address, err)
		case <-time.After(wait):
		}
		wait = min(wait*2, 10*time.Second)
	}
}

// WaitHealthy waits until the Temporal frontend at addr answers its health check, for the harnesses
// that start a server (make run, the benchmarks, the tests that restart one).
func WaitHealthy(ctx context.Context, addr string, timeout time.Duration) error {
	quiet := sdklog.NewStructuredLogger(slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		c, err := client.Dial(client.Options{HostPort: addr, Logger: quiet})
		if err == nil {
			_, err = c.CheckHealth(ctx, nil)
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Temporal at %s did not answer within %v: %v", addr, timeout, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
