// Command kube-apiserver is the upstream API server, built from pinned Go
// modules so tests and `make run` get a real control plane without downloads.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
