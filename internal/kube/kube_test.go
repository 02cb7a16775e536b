package kube_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tis-writeback/writeback/internal/kube"
)

// The scale call is the API server's: PATCH of the scale subresource as a merge patch, with the
// ServiceAccount's token; a refusal comes back with the server's reason and never the token.
func TestScaleDeployment(t *testing.T) {
	var got struct{ method, path, ctype, auth, body string }
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.method, got.path, got.ctype, got.auth, got.body = r.Method, r.URL.Path, r.Header.Get("Content-Type"), r.Header.Get("Authorization"), string(b)
		if r.URL.Path == "/apis/apps/v1/namespaces/wb/deployments/forbidden/scale" {
			http.Error(w, `{"reason":"Forbidden"}`, http.StatusForbidden)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	token := "secret-token"
	c := kube.New(srv.URL, "wb", func() (string, error) { return token, nil }, srv.Client().Transport.(*http.Transport).TLSClientConfig)
	require.NoError(t, c.ScaleDeployment(context.Background(), "writeback-worker-dev", 0))
	require.Equal(t, http.MethodPatch, got.method)
	require.Equal(t, "/apis/apps/v1/namespaces/wb/deployments/writeback-worker-dev/scale", got.path)
	require.Equal(t, "application/merge-patch+json", got.ctype)
	require.Equal(t, "Bearer secret-token", got.auth)
	require.JSONEq(t, `{"spec":{"replicas":0}}`, got.body)

	err := c.ScaleDeployment(context.Background(), "forbidden", 0)
	require.ErrorContains(t, err, "403 Forbidden")
	require.ErrorContains(t, err, "wb/forbidden")
	require.NotContains(t, err.Error(), "secret-token")

	token = "rotated" // a rotated token is used at the next call
	require.NoError(t, c.ScaleDeployment(context.Background(), "writeback-worker-dev", 0))
	require.Equal(t, "Bearer rotated", got.auth)
}

// Outside a pod, or with the token not mounted, InCluster says which.
func TestInClusterNamesWhatIsMissing(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	_, err := kube.InCluster(t.TempDir())
	require.ErrorContains(t, err, "not in a Kubernetes pod")

	t.Setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "443")
	dir := t.TempDir()
	_, err = kube.InCluster(dir)
	require.ErrorContains(t, err, "token")
	require.ErrorContains(t, err, "automountServiceAccountToken")

	for name, v := range map[string]string{"token": "t", "namespace": "wb", "ca.crt": "not a certificate"} {
		require.NoError(t, os.WriteFile(filepath.Join(dir, name), []byte(v), 0o600))
	}
	_, err = kube.InCluster(dir)
	require.ErrorContains(t, err, "ca.crt holds no certificate")
}
