// Package deps pins modules the delivery engine is being built on, until
// their importers land. It holds no code.
package deps

import (
	_ "github.com/cloudevents/sdk-go/v2"
	_ "github.com/nats-io/nats-server/v2/server"
	_ "github.com/nats-io/nats.go/jetstream"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/standard-webhooks/standard-webhooks/libraries/go"
)
