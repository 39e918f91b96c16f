package sources

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8stypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
)

func TestInspectorCredentialsFromSecret(t *testing.T) {
	const user, pass = "robot", "s3cret"
	basicOnly := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	reg := newTestRegistry(t, false, basicOnly)
	_, digest := reg.pushImage(t, "acme/app", "linux", "amd64", remote.WithAuth(&authn.Basic{Username: user, Password: pass}))

	if _, err := newInspector(t, reg).Platform(context.Background(), "acme/app", digest); err == nil {
		t.Fatal("an anonymous inspection of a private registry succeeded")
	}

	dockerConfig, _ := json.Marshal(map[string]any{"auths": map[string]any{
		"other.example.com": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte("x:y"))},
		"http://" + reg.host() + "/v2/": map[string]string{
			"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		},
	}})
	secrets := []*corev1.Secret{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kubehook-system", Name: "pull"},
			Type:       corev1.SecretTypeDockerConfigJson,
			Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kubehook-system", Name: "basic"},
			Type:       corev1.SecretTypeBasicAuth,
			Data:       map[string][]byte{"username": []byte(user), "password": []byte(pass)},
		},
	}
	for _, s := range secrets {
		t.Run(string(s.Type), func(t *testing.T) {
			c := fake.NewClientBuilder().WithObjects(s).Build()
			creds := SecretCredentials(c, k8stypes.NamespacedName{Namespace: s.Namespace, Name: s.Name}, reg.URL, time.Minute)
			p, err := newInspector(t, reg, func(o *InspectorOptions) { o.Credentials = creds }).Platform(context.Background(), "acme/app", digest)
			if err != nil {
				t.Fatal(err)
			}
			if p != (Platform{"linux", "amd64"}) {
				t.Fatalf("platform = %+v", p)
			}
		})
	}
}
