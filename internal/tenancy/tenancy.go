// Package tenancy decides which registry keys a Kubernetes namespace may
// subscribe to.
//
// Cluster admins list the registry namespaces a Kubernetes namespace may use
// in its kubehook.io/registry-namespaces annotation (comma-separated; "*"
// allows every registry namespace and the empty, all-repositories key).
// Without the annotation a Kubernetes namespace may use the registry namespace
// of the same name only.
package tenancy

import (
	"fmt"
	"strings"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
	"github.com/kubehook/kubehook/internal/subscriptions"
)

// Wildcard in the annotation allows every registry namespace and the empty key.
const Wildcard = "*"

// Allowed returns the registry namespaces the Kubernetes namespace ns may use,
// given its annotations, and whether it may use all of them.
func Allowed(ns string, annotations map[string]string) (names []string, all bool) {
	v, ok := annotations[kubehookv1.RegistryNamespacesAnnotation]
	if !ok {
		return []string{ns}, false
	}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		switch part {
		case "":
		case Wildcard:
			all = true
		default:
			names = append(names, part)
		}
	}
	return names, all
}

// Check returns nil when a subscription in Kubernetes namespace ns may use
// key, and otherwise an error that says why, for the Ready condition.
func Check(ns string, annotations map[string]string, key string) error {
	names, all := Allowed(ns, annotations)
	if all {
		return nil
	}
	if key == "" {
		return fmt.Errorf("the empty key (every repository) needs the namespace annotation %s: %q, set by a cluster admin",
			kubehookv1.RegistryNamespacesAnnotation, Wildcard)
	}
	regNS, _ := subscriptions.SplitRepository(key)
	for _, n := range names {
		if n == regNS {
			return nil
		}
	}
	if _, annotated := annotations[kubehookv1.RegistryNamespacesAnnotation]; !annotated {
		return fmt.Errorf("namespace %q may only use registry namespace %q; key %q is in %q (a cluster admin can allow more with the annotation %s)",
			ns, ns, key, regNS, kubehookv1.RegistryNamespacesAnnotation)
	}
	return fmt.Errorf("registry namespace %q is not in the %s annotation of namespace %q (allowed: %s)",
		regNS, kubehookv1.RegistryNamespacesAnnotation, ns, strings.Join(names, ", "))
}
