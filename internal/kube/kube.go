// Package kube scales a Deployment of the pod's own namespace through the Kubernetes API, with the
// pod's ServiceAccount: the one call a rollout makes to remove the workers of the build that lost
// (`starter versioning rollout --remove-workers`). One PATCH of the scale subresource does not
// justify client-go's dependency tree in the service's binary.
package kube

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ServiceAccountDir is where Kubernetes mounts a pod's ServiceAccount token, CA and namespace.
const ServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// Client reaches the API server as the pod's ServiceAccount.
type Client struct {
	Base      string // https://host:port
	Namespace string
	token     func() (string, error)
	http      *http.Client
}

// InCluster builds a Client from the pod's environment (KUBERNETES_SERVICE_HOST/PORT) and its
// mounted ServiceAccount (dir, normally ServiceAccountDir), naming what is missing.
func InCluster(dir string) (*Client, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return nil, errors.New("kube: not in a Kubernetes pod (KUBERNETES_SERVICE_HOST/PORT unset)")
	}
	read := func(name string) (string, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("kube: the pod's ServiceAccount %s: %w (automountServiceAccountToken off?)", name, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if _, err := read("token"); err != nil {
		return nil, err
	}
	ns, err := read("namespace")
	if err != nil {
		return nil, err
	}
	ca, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca)) {
		return nil, errors.New("kube: the ServiceAccount's ca.crt holds no certificate")
	}
	// the token is read at each call: Kubernetes rotates a pod's bound token (hourly), and a rollout
	// may outlast one
	token := func() (string, error) { return read("token") }
	return New("https://"+net.JoinHostPort(host, port), ns, token, &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}), nil
}

// New builds a Client for an API server at base; token is asked for at each call.
func New(base, namespace string, token func() (string, error), tc *tls.Config) *Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tc
	return &Client{Base: strings.TrimRight(base, "/"), Namespace: namespace, token: token,
		http: &http.Client{Timeout: 30 * time.Second, Transport: tr}}
}

// ScaleDeployment sets the replicas of the Deployment name.
func (c *Client) ScaleDeployment(ctx context.Context, name string, replicas int) error {
	url := fmt.Sprintf("%s/apis/apps/v1/namespaces/%s/deployments/%s/scale", c.Base, c.Namespace, name)
	body := fmt.Sprintf(`{"spec":{"replicas":%d}}`, replicas)
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, url, bytes.NewReader([]byte(body)))
	if err != nil {
		return err
	}
	token, err := c.token()
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/merge-patch+json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("kube: scale deployment %s/%s: %w", c.Namespace, name, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode >= 300 {
		return fmt.Errorf("kube: scale deployment %s/%s: %s: %s", c.Namespace, name, resp.Status, strings.TrimSpace(string(msg)))
	}
	return nil
}
