// Package app wires kubehook's components (controller, subscription
// registry, and the servers) into one controller-runtime manager. The
// kubehook binary and `make run` both start it.
package app

import (
	"context"
	"flag"
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/controllers"
	"github.com/kubehook/kubehook/internal/registry"
	"github.com/kubehook/kubehook/internal/version"
)

// Scheme holds the Kubernetes types and the kubehook types.
var Scheme = runtime.NewScheme()

func init() {
	utilruntime.Must(clientgoscheme.AddToScheme(Scheme))
	utilruntime.Must(kubehookv1.AddToScheme(Scheme))
}

// Options are kubehook's command-line settings.
type Options struct {
	MetricsAddr string
	ProbeAddr   string
	LeaderElect bool
	Tenancy     bool
}

// BindFlags registers the options as flags, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 turns it off.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader, so only one of several replicas reconciles.")
	fs.BoolVar(&o.Tenancy, "tenancy", true, "Check subscription keys against the kubehook.io/registry-namespaces Namespace annotation (same-name registry namespace by default). Turn off for single-team clusters.")
}

// Run starts kubehook against the cluster of cfg and blocks until ctx ends.
func Run(ctx context.Context, cfg *rest.Config, o Options) error {
	log := ctrl.Log.WithName("setup")
	log.Info("starting kubehook", "version", version.Version, "tenancy", o.Tenancy)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 Scheme,
		Metrics:                metricsserver.Options{BindAddress: o.MetricsAddr},
		HealthProbeBindAddress: o.ProbeAddr,
		LeaderElection:         o.LeaderElect,
		LeaderElectionID:       "kubehook.kubehook.io",
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	reg := registry.New()
	if err := (&controllers.WebhookSubscriptionReconciler{
		Client:       mgr.GetClient(),
		SecretReader: mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("kubehook"),
		Registry:     reg,
		Tenancy:      o.Tenancy,
	}).SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	return mgr.Start(ctx)
}
