// Package app wires kubehook's components (controller, subscription
// registry, and the servers) into one controller-runtime manager. The
// kubehook binary and `make run` both start it.
package app

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/controllers"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/registry"
	"github.com/kubehook/kubehook/internal/sender"
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

	// Queue
	DataDir          string
	NATSURL          string
	NATSCredentials  string
	NATSReplicas     int
	NATSSyncInterval time.Duration

	// Delivery
	AllowEndpointCIDRs      string
	DeliveryConcurrency     int
	InFlightPerSubscription int
	StatusSyncPeriod        time.Duration
	ShutdownGracePeriod     time.Duration
}

// BindFlags registers the options as flags, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 turns it off.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader, so only one of several replicas reconciles.")
	fs.BoolVar(&o.Tenancy, "tenancy", true, "Check subscription keys against the kubehook.io/registry-namespaces Namespace annotation (same-name registry namespace by default). Turn off for single-team clusters.")

	fs.StringVar(&o.DataDir, "data-dir", "/var/lib/kubehook", "Directory of the embedded NATS JetStream file store (not used with --nats-url).")
	fs.StringVar(&o.NATSURL, "nats-url", "", "URL(s) of an external NATS JetStream server or cluster, comma-separated; empty runs NATS embedded.")
	fs.StringVar(&o.NATSCredentials, "nats-creds", "", "NATS credentials file (JWT and NKey) for --nats-url.")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "Stream replicas on an external NATS cluster (3 survives the loss of a server).")
	fs.DurationVar(&o.NATSSyncInterval, "nats-sync-interval", 0, "How often the embedded file store is flushed to disk; 0 keeps the NATS default (2m). A killed process loses nothing; a lost machine may lose this much.")

	fs.StringVar(&o.AllowEndpointCIDRs, "allow-endpoint-cidrs", "", "Comma-separated address ranges endpoints may resolve to although they are loopback, private or link-local (refused by default).")
	fs.IntVar(&o.DeliveryConcurrency, "delivery-concurrency", 256, "Delivery attempts in flight at once, across all subscriptions.")
	fs.IntVar(&o.InFlightPerSubscription, "max-in-flight-per-subscription", 8, "Delivery attempts in flight at once for one subscription, so a slow endpoint never holds more workers.")
	fs.DurationVar(&o.StatusSyncPeriod, "status-sync-period", 10*time.Second, "At most one status write per subscription per period for ordinary delivery outcomes; transitions are written at once.")
	fs.DurationVar(&o.ShutdownGracePeriod, "shutdown-grace-period", 20*time.Second, "How long in-flight attempts may finish at shutdown; the rest stay queued.")
}

// allowCIDRs parses --allow-endpoint-cidrs.
func (o *Options) allowCIDRs() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(o.AllowEndpointCIDRs, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("--allow-endpoint-cidrs: %q is not a CIDR range: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (o *Options) queueConfig() queue.Config {
	cfg := queue.Config{DataDir: o.DataDir, URL: o.NATSURL, Replicas: o.NATSReplicas, SyncInterval: o.NATSSyncInterval}
	if o.NATSCredentials != "" {
		cfg.NATSOptions = append(cfg.NATSOptions, nats.UserCredentials(o.NATSCredentials))
	}
	return cfg
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

	cidrs, err := o.allowCIDRs()
	if err != nil {
		return err
	}
	q, err := queue.Open(ctx, o.queueConfig())
	if err != nil {
		return err
	}
	defer q.Close()

	reg := registry.New()
	tracker := outcomes.New(o.StatusSyncPeriod)
	snd := sender.New(sender.Options{Concurrency: o.DeliveryConcurrency, AllowCIDRs: cidrs})
	disp := dispatcher.New(q, reg, snd, tracker, dispatcher.Options{
		Concurrency:     o.DeliveryConcurrency,
		PerSubscription: o.InFlightPerSubscription,
		GracePeriod:     o.ShutdownGracePeriod,
	})
	for _, r := range []manager.Runnable{disp, tracker, &gauges{queue: q, registry: reg}} {
		if err := mgr.Add(r); err != nil {
			return fmt.Errorf("adding the delivery engine: %w", err)
		}
	}
	if err := (&controllers.WebhookSubscriptionReconciler{
		Client:       mgr.GetClient(),
		SecretReader: mgr.GetAPIReader(),
		Recorder:     mgr.GetEventRecorder("kubehook"),
		Registry:     reg,
		Outcomes:     tracker,
		Sender:       snd,
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
