// Package app wires kubehook's components (the controller, the
// subscription index, the delivery engine, and the servers) into one
// controller-runtime manager, and says which run on every replica and
// which on the leader. The kubehook binary and `make run` both start it.
//
// It holds no logic of its own beyond flags and wiring.
package app

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/controllers"
	"github.com/kubehook/kubehook/internal/clusterranges"
	"github.com/kubehook/kubehook/internal/dispatcher"
	"github.com/kubehook/kubehook/internal/dtrapi"
	"github.com/kubehook/kubehook/internal/intake"
	"github.com/kubehook/kubehook/internal/metrics"
	"github.com/kubehook/kubehook/internal/outcomes"
	"github.com/kubehook/kubehook/internal/queue"
	"github.com/kubehook/kubehook/internal/sender"
	"github.com/kubehook/kubehook/internal/sources"
	"github.com/kubehook/kubehook/internal/subscriptions"
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
	// MetricsSecure serves metrics over HTTPS to callers whose Kubernetes
	// token may get /metrics; MetricsCertPath (a directory) holds
	// MetricsCertName and MetricsCertKey, else the certificate is
	// self-signed.
	MetricsSecure   bool
	MetricsCertPath string
	MetricsCertName string
	MetricsCertKey  string
	ProbeAddr       string
	LeaderElect     bool
	// LeaderElectionNamespace holds the Lease; empty is the Pod's namespace
	// in a cluster.
	LeaderElectionNamespace string
	Tenancy                 bool

	// Queue
	DataDir          string
	NATSURL          string
	NATSCredentials  string
	NATSReplicas     int
	NATSSyncInterval time.Duration

	// Delivery
	AllowEndpointCIDRs      string
	DenyEndpointCIDRs       string
	DeliveryConcurrency     int
	InFlightPerSubscription int
	InFlightPerHost         int
	BreakerThreshold        int
	BreakerCooldown         time.Duration
	StatusSyncPeriod        time.Duration
	ShutdownGracePeriod     time.Duration
	// PerSubscriptionMetrics adds series labelled with each subscription.
	PerSubscriptionMetrics bool

	// Event sources
	EventsAddr                string
	EventsTLSCertFile         string
	EventsTLSKeyFile          string
	DistributionTokenFile     string
	HarborTokenFile           string
	EventsTokenFile           string
	SourceTokensSecret        string
	RegistryHost              string
	RegistryURL               string
	RegistryCredentialsSecret string

	// DTR API
	APIAddr        string
	APITLSCertFile string
	APITLSKeyFile  string
	APIRateLimit   float64
	APIRateBurst   int
}

// BindFlags registers the options as flags, with their defaults.
func (o *Options) BindFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.MetricsAddr, "metrics-bind-address", ":8443", "Address the Prometheus metrics endpoint binds to (:8443 for HTTPS, :8080 for HTTP with --metrics-secure=false); 0 turns it off.")
	fs.BoolVar(&o.MetricsSecure, "metrics-secure", true, "Serve metrics over HTTPS, only to callers whose Kubernetes token (TokenReview) may get the /metrics URL (SubjectAccessReview); false serves plain HTTP to anyone.")
	fs.StringVar(&o.MetricsCertPath, "metrics-cert-path", "", "Directory holding the metrics server's certificate and key (reloaded when they change); empty uses a self-signed certificate.")
	fs.StringVar(&o.MetricsCertName, "metrics-cert-name", "tls.crt", "File name of the metrics server's certificate in --metrics-cert-path.")
	fs.StringVar(&o.MetricsCertKey, "metrics-cert-key", "tls.key", "File name of the metrics server's private key in --metrics-cert-path.")
	fs.StringVar(&o.ProbeAddr, "health-probe-bind-address", ":8081", "Address the /healthz and /readyz probes bind to.")
	fs.BoolVar(&o.LeaderElect, "leader-elect", false, "Elect a leader among replicas: every replica accepts events and delivers, the leader alone writes status, sends test deliveries and replays dead letters. Needed with more than one replica.")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", "", "Namespace of the leader-election Lease; empty is the Pod's own namespace in a cluster (needed out of a cluster).")
	fs.BoolVar(&o.Tenancy, "tenancy", true, "Check subscription keys against the kubehook.io/registry-namespaces Namespace annotation (same-name registry namespace by default). Turn off for single-team clusters.")

	fs.StringVar(&o.DataDir, "data-dir", "/var/lib/kubehook", "Directory of the embedded NATS JetStream file store (not used with --nats-url).")
	fs.StringVar(&o.NATSURL, "nats-url", "", "URL(s) of an external NATS JetStream server or cluster, comma-separated; empty runs NATS embedded.")
	fs.StringVar(&o.NATSCredentials, "nats-creds", "", "NATS credentials file (JWT and NKey) for --nats-url.")
	fs.IntVar(&o.NATSReplicas, "nats-replicas", 1, "Stream replicas on an external NATS cluster (3 survives the loss of a server).")
	fs.DurationVar(&o.NATSSyncInterval, "nats-sync-interval", 0, "How often the embedded file store is flushed to disk; 0 keeps the NATS default (2m). A killed process loses nothing; a lost machine may lose this much.")

	fs.StringVar(&o.AllowEndpointCIDRs, "allow-endpoint-cidrs", "", "Comma-separated address ranges endpoints may resolve to although they are loopback, private, link-local or another special range, or the cluster's own Service and Pod ranges (refused by default).")
	fs.StringVar(&o.DenyEndpointCIDRs, "deny-endpoint-cidrs", "", "Comma-separated address ranges endpoints may not resolve to, besides those refused by default; a denied address stays refused even when --allow-endpoint-cidrs holds it.")
	fs.IntVar(&o.DeliveryConcurrency, "delivery-concurrency", 256, "Delivery attempts in flight at once, across all subscriptions.")
	fs.IntVar(&o.InFlightPerSubscription, "max-in-flight-per-subscription", 8, "Delivery attempts in flight at once for one subscription, so a slow endpoint never holds more workers.")
	fs.IntVar(&o.InFlightPerHost, "max-in-flight-per-host", 32, "Delivery attempts in flight at once to one endpoint host (host:port), across its subscriptions.")
	fs.IntVar(&o.BreakerThreshold, "breaker-threshold", 10, "Consecutive failed attempts (no answer, timeout, 5xx) to one endpoint host that open its circuit breaker; deliveries to it then wait, uncounted, until one probe succeeds. Negative turns breakers off.")
	fs.DurationVar(&o.BreakerCooldown, "breaker-cooldown", 10*time.Second, "How long an open circuit breaker waits before its probe; doubled after each failed probe, up to 5m.")
	fs.DurationVar(&o.StatusSyncPeriod, "status-sync-period", 10*time.Second, "At most one status write per subscription per period for ordinary delivery outcomes; transitions are written at once.")
	fs.DurationVar(&o.ShutdownGracePeriod, "shutdown-grace-period", 20*time.Second, "How long in-flight attempts may finish at shutdown; the rest stay queued.")
	fs.BoolVar(&o.PerSubscriptionMetrics, "per-subscription-metrics", false, "Also count deliveries by subscription (kubehook_subscription_deliveries_total{namespace,name,result}): up to one series per subscription and result, so the metrics grow with the number of subscriptions.")

	fs.StringVar(&o.EventsAddr, "events-bind-address", ":8090", "Address the event sources server (POST /v1/sources/distribution, /v1/sources/harbor, /v1/events) binds to; 0 turns it off. Served by every replica.")
	fs.StringVar(&o.EventsTLSCertFile, "events-tls-cert-file", "", "PEM certificate to serve the event sources over HTTPS (with --events-tls-key-file), reloaded when the file changes; without it they are plain HTTP, and sources send their tokens in clear.")
	fs.StringVar(&o.EventsTLSKeyFile, "events-tls-key-file", "", "PEM private key of --events-tls-cert-file, reloaded with it.")
	fs.StringVar(&o.DistributionTokenFile, "distribution-token-file", "", "File of bearer tokens (one per line, re-read when it changes) the Distribution registry must send to /v1/sources/distribution.")
	fs.StringVar(&o.HarborTokenFile, "harbor-token-file", "", "File of tokens (one per line) Harbor must send as its Authorization header, with or without \"Bearer \", to /v1/sources/harbor.")
	fs.StringVar(&o.EventsTokenFile, "events-token-file", "", "File of bearer tokens (one per line, re-read when it changes) producers of native events must send to /v1/events. A line \"<token> namespaces=team-a,team-b\" limits that token to those registry namespaces (403 for any other); a bare token may publish for every namespace.")
	fs.StringVar(&o.SourceTokensSecret, "source-tokens-secret", "", "Secret <namespace>/<name> whose keys distribution, harbor and events hold each source's tokens (one per line), re-read every 30s; accepted besides the token files. In the events key a line \"<token> namespaces=team-a,team-b\" limits that token to those registry namespaces, as in --events-token-file. A source with no token refuses every request.")
	fs.StringVar(&o.RegistryHost, "registry-host", "", "Registry host (and port) used in the imageName of events, e.g. registry.example.com; empty uses the host the registry request carried.")
	fs.StringVar(&o.RegistryURL, "registry-url", "", "Registry URL (https://registry.example.com, or http:// for a plain-http registry) from which os and architecture of pushed images are read; empty leaves them out.")
	fs.StringVar(&o.APIAddr, "api-bind-address", ":8091", "Address the DTR-compatible webhook API (/api/v0/webhooks...) binds to; 0 turns it off. Callers authenticate with Kubernetes tokens; served by every replica.")
	fs.StringVar(&o.APITLSCertFile, "api-tls-cert-file", "", "PEM certificate to serve the DTR API over HTTPS (with --api-tls-key-file); without it, put TLS in front (an Ingress), since callers send tokens.")
	fs.StringVar(&o.APITLSKeyFile, "api-tls-key-file", "", "PEM private key of --api-tls-cert-file.")
	fs.Float64Var(&o.APIRateLimit, "api-rate-limit", 20, "Requests a second one client address may make to the DTR API (a token bucket per address; over it: 429 with Retry-After); 0 turns the limit off.")
	fs.IntVar(&o.APIRateBurst, "api-rate-burst", 40, "Requests one client address may make to the DTR API at once before --api-rate-limit applies.")
	fs.StringVar(&o.RegistryCredentialsSecret, "registry-credentials-secret", "", "Secret <namespace>/<name> with credentials for --registry-url: a kubernetes.io/dockerconfigjson Secret, or username and password keys (kubernetes.io/basic-auth).")
}

// parseSecretRef parses a <namespace>/<name> flag value.
func parseSecretRef(flagName, v string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(v, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("--%s: %q is not <namespace>/<name>", flagName, v)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// endpointCIDRs parses --allow-endpoint-cidrs and --deny-endpoint-cidrs.
func (o *Options) endpointCIDRs() (allow, deny []netip.Prefix, err error) {
	if allow, err = sender.ParseCIDRs(o.AllowEndpointCIDRs); err != nil {
		return nil, nil, fmt.Errorf("--allow-endpoint-cidrs: %w", err)
	}
	if deny, err = sender.ParseCIDRs(o.DenyEndpointCIDRs); err != nil {
		return nil, nil, fmt.Errorf("--deny-endpoint-cidrs: %w", err)
	}
	return allow, deny, nil
}

func (o *Options) queueConfig() queue.Config {
	cfg := queue.Config{DataDir: o.DataDir, URL: o.NATSURL, Replicas: o.NATSReplicas, SyncInterval: o.NATSSyncInterval}
	if o.NATSCredentials != "" {
		cfg.NATSOptions = append(cfg.NATSOptions, nats.UserCredentials(o.NATSCredentials))
	}
	return cfg
}

// sourcesServer builds the event sources server from the flags.
func (o *Options) sourcesServer(mgr manager.Manager, pub *intake.Publisher, loaded *loadGate, shared sources.SharedResolutions) (*sources.Server, error) {
	if (o.EventsTLSCertFile == "") != (o.EventsTLSKeyFile == "") {
		return nil, fmt.Errorf("--events-tls-cert-file and --events-tls-key-file go together: set both or neither")
	}
	auth := sources.AuthOptions{
		TokenFiles: map[string]string{
			sources.SourceDistribution: o.DistributionTokenFile,
			sources.SourceHarbor:       o.HarborTokenFile,
			sources.SourceEvents:       o.EventsTokenFile,
		},
		Reader: mgr.GetAPIReader(),
		Log:    ctrl.Log.WithName("sources"),
	}
	if o.SourceTokensSecret != "" {
		ref, err := parseSecretRef("source-tokens-secret", o.SourceTokensSecret)
		if err != nil {
			return nil, err
		}
		auth.Secret = ref
	}
	opts := sources.ServerOptions{
		Addr:         o.EventsAddr,
		TLSCertFile:  o.EventsTLSCertFile,
		TLSKeyFile:   o.EventsTLSKeyFile,
		RegistryHost: o.RegistryHost,
		Auth:         sources.NewAuthenticator(auth),
		Publisher:    pub,
		// With several replicas, the HEAD and GET of one pull may reach
		// different ones.
		SharedResolutions: shared,
		WaitReady:         loaded.Wait,
		Log:               ctrl.Log.WithName("sources"),
	}
	if o.RegistryURL != "" {
		iopts := sources.InspectorOptions{URL: o.RegistryURL}
		if o.RegistryCredentialsSecret != "" {
			ref, err := parseSecretRef("registry-credentials-secret", o.RegistryCredentialsSecret)
			if err != nil {
				return nil, err
			}
			iopts.Credentials = sources.SecretCredentials(mgr.GetAPIReader(), ref, o.RegistryURL, time.Minute)
		}
		insp, err := sources.NewRemoteInspector(iopts)
		if err != nil {
			return nil, fmt.Errorf("--registry-url: %w", err)
		}
		opts.Inspector = insp
	} else if o.RegistryCredentialsSecret != "" {
		return nil, fmt.Errorf("--registry-credentials-secret needs --registry-url")
	}
	return sources.NewServer(opts)
}

// The secure metrics server reviews each scraper's token and asks whether
// it may GET /metrics:
// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create
// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create

// metricsOptions configures the metrics server as the kubebuilder v4
// scaffold does. Secure, every scrape is authenticated with a TokenReview
// and authorized with a SubjectAccessReview for GET of the non-resource
// URL /metrics (the ClusterRole in config/rbac/metrics_reader_role.yaml).
func (o *Options) metricsOptions() metricsserver.Options {
	opts := metricsserver.Options{
		BindAddress:   o.MetricsAddr,
		SecureServing: o.MetricsSecure,
		// HTTP/1.1 only, as the scaffold: HTTP/2 stream resets
		// (CVE-2023-44487, CVE-2023-39325) are out of reach.
		TLSOpts: []func(*tls.Config){func(c *tls.Config) {
			c.NextProtos = []string{"http/1.1"}
			c.MinVersion = tls.VersionTLS12
		}},
	}
	if o.MetricsSecure {
		opts.FilterProvider = filters.WithAuthenticationAndAuthorization
	}
	// Without a directory controller-runtime generates a self-signed
	// certificate; with one it watches the files and reloads them.
	if o.MetricsCertPath != "" {
		opts.CertDir = o.MetricsCertPath
		opts.CertName = o.MetricsCertName
		opts.KeyName = o.MetricsCertKey
	}
	return opts
}

// Run starts kubehook against the cluster of cfg and blocks until ctx ends.
// Extra runnables (the local registry and sample receiver of `make run`)
// start and stop with the manager.
func Run(ctx context.Context, cfg *rest.Config, o Options, extra ...manager.Runnable) error {
	log := ctrl.Log.WithName("setup")
	log.Info("starting kubehook", "version", version.Version, "tenancy", o.Tenancy)

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  Scheme,
		Cache:                   cacheOptions(),
		Metrics:                 o.metricsOptions(),
		HealthProbeBindAddress:  o.ProbeAddr,
		LeaderElection:          o.LeaderElect,
		LeaderElectionID:        "kubehook.kubehook.io",
		LeaderElectionNamespace: o.LeaderElectionNamespace,
		// A stopping leader hands over at once rather than after the lease
		// runs out; Run returns only once everything has stopped.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}

	allowCIDRs, denyCIDRs, err := o.endpointCIDRs()
	if err != nil {
		return err
	}
	q, err := queue.Open(ctx, o.queueConfig())
	if err != nil {
		return err
	}
	defer q.Close()

	reg := subscriptions.New()
	loaded := &loadGate{reader: mgr.GetClient(), reg: reg, timeout: time.Minute}
	tracker := outcomes.New(o.StatusSyncPeriod)
	tracker.CountFrom(q)
	// A changed count wakes the subscription the index has for its UID.
	tracker.NamesFrom(func(uid types.UID) (types.NamespacedName, bool) {
		s, ok := reg.GetByUID(uid)
		if !ok {
			return types.NamespacedName{}, false
		}
		return s.ID, true
	})
	snd := sender.New(sender.Options{Concurrency: o.DeliveryConcurrency, AllowCIDRs: allowCIDRs, DenyCIDRs: denyCIDRs, AwaitClusterRanges: true})
	// The cluster's own ranges are refused too. Registered before the
	// manager starts, their informers are listed before deliveries start.
	ranges, err := clusterranges.Setup(ctx, mgr, snd.SetClusterRanges, ctrl.Log.WithName("cluster-ranges"))
	if err != nil {
		return err
	}
	if err := mgr.Add(ranges); err != nil {
		return fmt.Errorf("adding the cluster ranges reader: %w", err)
	}
	// With an external NATS several replicas may deliver: each sends its
	// outcomes to the leader, the one status writer. Embedded, this process
	// is the only one.
	var reporter dispatcher.Reporter = tracker
	var engineRunnables []manager.Runnable
	var lines dispatcher.LineReaders
	if o.NATSURL != "" {
		// The replicas tell each other which subscriptions go through their
		// own line, the one window that bounds a subscription's attempts
		// across them.
		readers, err := q.LineReaders(ctx)
		if err != nil {
			return err
		}
		lines = readers
		if !o.LeaderElect {
			log.Info("WARNING: --nats-url without --leader-elect: run a single replica, or several replicas would each write status, send test deliveries and replay dead letters")
		}
		fwd := outcomes.NewForwarder(q.Conn())
		reporter = fwd
		engineRunnables = append(engineRunnables, fwd, outcomes.NewReceiver(q.Conn(), tracker))
	}
	// Off by default: its series grow with the number of subscriptions.
	var perSubscription *metrics.PerSubscription
	if o.PerSubscriptionMetrics {
		perSubscription = metrics.NewPerSubscription()
	}
	disp := dispatcher.New(q, reg, snd, reporter, dispatcher.Options{
		Concurrency:      o.DeliveryConcurrency,
		PerSubscription:  o.InFlightPerSubscription,
		GracePeriod:      o.ShutdownGracePeriod,
		PerHost:          o.InFlightPerHost,
		BreakerThreshold: o.BreakerThreshold,
		BreakerCooldown:  o.BreakerCooldown,
		Loaded:           loaded.Wait,
		Exists:           controllers.SubscriptionExists(mgr.GetAPIReader()),
		Lines:            lines,

		PerSubscriptionMetrics: perSubscription,
	})
	// The dispatcher and the gauges run on every replica; the tracker (and
	// the outcome receiver) on the leader, which writes status.
	engineRunnables = append(engineRunnables, everyReplica{disp}, tracker, everyReplica{newGauges(q, reg, perSubscription)})
	for _, r := range append(engineRunnables, extra...) {
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
		DeadLetters:  q,
		Leader:       elected(mgr),
		Circuits:     disp.CircuitOpenUntil,
		Tenancy:      o.Tenancy,
	}).SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the controller: %w", err)
	}

	if o.EventsAddr != "0" {
		var shared sources.SharedResolutions
		if o.NATSURL != "" {
			bucket, err := q.SharedBucket(ctx, "KUBEHOOK_TAG_RESOLUTIONS", sources.TagResolutionWindow)
			if err != nil {
				return err
			}
			shared = bucket
		}
		srv, err := o.sourcesServer(mgr, &intake.Publisher{Registry: reg, Queue: q}, loaded, shared)
		if err != nil {
			return err
		}
		if err := mgr.Add(srv); err != nil {
			return fmt.Errorf("adding the sources server: %w", err)
		}
		// Ready only when this replica accepts events.
		if err := mgr.AddReadyzCheck("events", srv.Ready); err != nil {
			return fmt.Errorf("adding ready check: %w", err)
		}
	}

	if o.APIAddr != "0" {
		uids, err := dtrapi.WatchUIDs(ctx, mgr.GetCache())
		if err != nil {
			return err
		}
		api, err := dtrapi.New(dtrapi.Options{
			Addr:         o.APIAddr,
			TLSCertFile:  o.APITLSCertFile,
			TLSKeyFile:   o.APITLSKeyFile,
			RateLimit:    o.APIRateLimit,
			RateBurst:    o.APIRateBurst,
			Config:       cfg,
			Scheme:       Scheme,
			Mapper:       mgr.GetRESTMapper(),
			Cache:        mgr.GetClient(),
			UIDs:         uids,
			Sender:       snd,
			AnyNamespace: !o.Tenancy,
			Log:          ctrl.Log.WithName("dtr-api"),
		})
		if err != nil {
			return err
		}
		if err := mgr.Add(api); err != nil {
			return fmt.Errorf("adding the DTR API server: %w", err)
		}
	}

	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return fmt.Errorf("adding health check: %w", err)
	}
	// Ready only when events can be accepted: the queue reachable and every
	// subscription loaded.
	if err := mgr.AddReadyzCheck("queue", func(*http.Request) error { return q.Ready() }); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	if err := mgr.AddReadyzCheck("subscriptions", loaded.Check); err != nil {
		return fmt.Errorf("adding ready check: %w", err)
	}
	return mgr.Start(ctx)
}

// everyReplica runs a runnable on every replica, not only on the leader.
type everyReplica struct{ manager.Runnable }

func (everyReplica) NeedLeaderElection() bool { return false }

// elected reports whether this replica leads (always, without leader
// election).
func elected(mgr manager.Manager) func() bool {
	ch := mgr.Elected()
	return func() bool {
		select {
		case <-ch:
			return true
		default:
			return false
		}
	}
}
