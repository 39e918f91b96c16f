package dtrapi

import (
	"testing"

	. "github.com/onsi/gomega"

	kubehookv1 "github.com/kubehook/kubehook/api/v1alpha1"
)

func TestCandidatesFollowTheTenancyRules(t *testing.T) {
	g := NewWithT(t)
	ann := func(v string) map[string]string { return map[string]string{kubehookv1.RegistryNamespacesAnnotation: v} }
	namespaces := []nsMeta{
		{name: "acme"}, // same-name rule
		{name: "payments", annotations: ann("acme, shop")}, // lists acme
		{name: "shop", annotations: ann("billing")},        // annotated: same name no longer applies
		{name: "admins", annotations: ann("*")},
		{name: "other"},
	}
	g.Expect(candidates(namespaces, "acme/web")).To(ConsistOf(
		candidate{name: "acme", specific: true}, candidate{name: "payments", specific: true}, candidate{name: "admins"}))
	g.Expect(candidates(namespaces, "shop")).To(ConsistOf(candidate{name: "payments", specific: true}, candidate{name: "admins"}))
	g.Expect(candidates(namespaces, "")).To(ConsistOf(candidate{name: "admins"}))
	g.Expect(candidates(namespaces[:3], "nobody/app")).To(BeEmpty())
	g.Expect(candidates(namespaces[:3], "")).To(BeEmpty())
}
