package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// SecretCredentials returns registry credentials read from a Secret, for
// InspectorOptions.Credentials. Two kinds of Secret are understood:
//
//   - kubernetes.io/dockerconfigjson (key .dockerconfigjson), the kind
//     `kubectl create secret docker-registry` makes and image pull secrets
//     use: the entry of "auths" for the registry host (written as the host,
//     or as a URL such as https://host/v1/);
//   - any other Secret with keys "username" and "password"
//     (kubernetes.io/basic-auth).
//
// The Secret is read when needed and kept for ttl, so a rotated Secret
// takes effect without a restart.
func SecretCredentials(reader client.Reader, secret types.NamespacedName, registryURL string, ttl time.Duration) func(ctx context.Context) (authn.Authenticator, error) {
	host := registryURL
	if u, err := url.Parse(registryURL); err == nil && u.Host != "" {
		host = u.Host
	}
	var (
		mu      sync.Mutex
		cached  authn.Authenticator
		fetched time.Time
	)
	return func(ctx context.Context) (authn.Authenticator, error) {
		mu.Lock()
		defer mu.Unlock()
		if cached != nil && time.Since(fetched) < ttl {
			return cached, nil
		}
		var s corev1.Secret
		if err := reader.Get(ctx, secret, &s); err != nil {
			return nil, fmt.Errorf("reading registry credentials Secret %s: %w", secret, err)
		}
		auth, err := secretAuthenticator(&s, host)
		if err != nil {
			return nil, fmt.Errorf("registry credentials Secret %s: %w", secret, err)
		}
		cached, fetched = auth, time.Now()
		return auth, nil
	}
}

func secretAuthenticator(s *corev1.Secret, host string) (authn.Authenticator, error) {
	if data, ok := s.Data[corev1.DockerConfigJsonKey]; ok {
		var cfg struct {
			Auths map[string]authn.AuthConfig `json:"auths"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return nil, fmt.Errorf("key %s is not a Docker config: %w", corev1.DockerConfigJsonKey, err)
		}
		for key, ac := range cfg.Auths {
			if configHost(key) == host {
				return authn.FromConfig(ac), nil
			}
		}
		return nil, fmt.Errorf("no credentials for %s in key %s", host, corev1.DockerConfigJsonKey)
	}
	user, pass := s.Data[corev1.BasicAuthUsernameKey], s.Data[corev1.BasicAuthPasswordKey]
	if len(user) == 0 || len(pass) == 0 {
		return nil, errors.New("neither .dockerconfigjson nor username and password keys")
	}
	return &authn.Basic{Username: string(user), Password: string(pass)}, nil
}

// configHost is the host of a Docker config "auths" key, which may be a
// host or a URL.
func configHost(key string) string {
	if strings.Contains(key, "://") {
		if u, err := url.Parse(key); err == nil {
			return u.Host
		}
	}
	host, _, _ := strings.Cut(key, "/")
	return host
}
