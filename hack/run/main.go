// Command run is `make run`: it runs kubehook against the cluster in
// KUBECONFIG when one answers, and otherwise against a local control plane
// (kube-apiserver and etcd from bin/k8s) whose state lives in bin/local.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/kubehook/kubehook/internal/app"
	"github.com/kubehook/kubehook/internal/testenv"
)

// Loopback addresses of the local demo.
const (
	registryAddr = "127.0.0.1:5000"
	eventsAddr   = "127.0.0.1:8090"
	apiAddr      = "127.0.0.1:8091"
	receiverAddr = "127.0.0.1:8099"
)

func main() {
	var opts app.Options
	opts.BindFlags(flag.CommandLine)
	// Local runs bind to loopback only; metrics are plain HTTP there, so
	// curl needs no token (a deployed kubehook serves them over HTTPS).
	_ = flag.Set("metrics-bind-address", "127.0.0.1:8080")
	_ = flag.Set("metrics-secure", "false")
	_ = flag.Set("health-probe-bind-address", "127.0.0.1:8081")
	_ = flag.Set("api-bind-address", apiAddr)
	// Local examples deliver to receivers on this machine.
	_ = flag.Set("allow-endpoint-cidrs", "127.0.0.0/8,::1/128")
	_ = flag.Set("data-dir", filepath.Join("bin", "local", "data"))
	zapOpts := zap.Options{Development: true}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	ctx := ctrl.SetupSignalHandler()
	if err := run(ctx, opts); err != nil {
		fmt.Fprintln(os.Stderr, "make run:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, opts app.Options) error {
	if cfg, where, ok := reachableCluster(); ok {
		fmt.Printf("kubehook: running against the cluster at %s (from %s)\n", cfg.Host, where)
		return app.Run(ctx, cfg, opts)
	}

	root, err := os.Getwd()
	if err != nil {
		return err
	}
	state := filepath.Join(root, "bin", "local")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return err
	}
	fmt.Println("kubehook: no cluster answers in KUBECONFIG; starting a local control plane (state in bin/local)")

	env := testenv.New()
	env.ControlPlane.Etcd = &envtest.Etcd{DataDir: filepath.Join(state, "etcd")}
	cfg, err := env.Start()
	if err != nil {
		// Start leaves etcd and kube-apiserver running when a later step fails.
		_ = env.Stop()
		return fmt.Errorf("starting the local control plane: %w", err)
	}
	defer func() {
		fmt.Println("kubehook: stopping the local control plane")
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping the local control plane:", err)
		}
	}()

	kubeconfig := filepath.Join(state, "kubeconfig")
	if err := testenv.WriteAdminKubeconfig(env, "kubehook-admin", kubeconfig); err != nil {
		return err
	}

	// A registry whose notifications come to kubehook, and a receiver that
	// prints what kubehook delivers.
	tokenFile, err := sourceToken(state)
	if err != nil {
		return err
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		return err
	}
	opts.DistributionTokenFile, opts.RegistryHost, opts.RegistryURL, opts.EventsAddr = tokenFile, registryAddr, "http://"+registryAddr, eventsAddr
	reg, err := newLocalRegistry(ctx, registryAddr, filepath.Join(state, "registry"),
		"http://"+eventsAddr+"/v1/sources/distribution", strings.TrimSpace(string(token)))
	if err != nil {
		return err
	}
	c, err := client.New(cfg, client.Options{Scheme: app.Scheme})
	if err != nil {
		return err
	}
	if err := installAccess(ctx, c, root); err != nil {
		return fmt.Errorf("installing the ClusterRoles and the author policy: %w", err)
	}
	rcv := &receiver{addr: receiverAddr, c: c}
	bin := filepath.Join(root, "bin")
	fmt.Printf(`
kubehook is starting against a local control plane, with a registry on
%[3]s and a sample receiver on %[4]s. In another terminal:

  export KUBECONFIG=%[1]s
  alias kubectl=%[2]s/k8s/kubectl        # or any kubectl
  kubectl apply -f config/samples/
  kubectl get whsub -A

  # push an image to acme/web: the receiver here prints the signed TAG_PUSH
  tar cf /tmp/hello.tar README.md
  %[2]s/crane append --insecure --platform linux/amd64 -f /tmp/hello.tar -t %[3]s/acme/web:v1
  kubectl -n acme get whsub web-tag-push      # LAST-SUCCESS is set

  # the DTR API on %[5]s, as a user who may edit subscriptions in acme
  kubectl -n acme create serviceaccount dtr-user
  kubectl -n acme create rolebinding dtr-user --serviceaccount=acme:dtr-user \
    --clusterrole=kubehook-webhooksubscription-editor-role
  TOKEN=$(kubectl -n acme create token dtr-user)
  curl -u dtr-user:$TOKEN -X POST "http://%[5]s/api/v0/webhooks" -H "content-type: application/json" \
    -d '{"type": "TAG_PUSH", "key": "acme/web", "endpoint": "http://%[4]s/hooks/from-dtr-api"}'
  curl -u dtr-user:$TOKEN "http://%[5]s/api/v0/webhooks"

Ctrl-C stops kubehook, the registry and the control plane.

`, kubeconfig, bin, registryAddr, receiverAddr, apiAddr)
	return app.Run(ctx, cfg, opts, reg, rcv)
}

// reachableCluster returns the config of the cluster in KUBECONFIG (or
// ~/.kube/config) when its API server answers within a few seconds.
func reachableCluster() (*rest.Config, string, bool) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, "", false
	}
	probe := rest.CopyConfig(cfg)
	probe.Timeout = 3 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(probe)
	if err != nil {
		return nil, "", false
	}
	if _, err := dc.ServerVersion(); err != nil {
		return nil, "", false
	}
	where := rules.GetDefaultFilename()
	if len(rules.Precedence) > 0 && os.Getenv(clientcmd.RecommendedConfigPathEnvVar) != "" {
		where = "KUBECONFIG"
	}
	return cfg, where, true
}
