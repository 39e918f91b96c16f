package dtrapi_test

import (
	"testing"

	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
)

// kubehook's own role, under which this package's API runs, grants no
// impersonation: the API acts with each caller's token. The API server
// agrees: kubehook's ServiceAccount may impersonate no user, group,
// ServiceAccount, UID or user extra.
func TestManagerRoleCannotImpersonate(t *testing.T) {
	g := NewWithT(t)
	role := &rbacv1.ClusterRole{}
	g.Expect(admin.Get(t.Context(), types.NamespacedName{Name: "manager-role"}, role)).To(Succeed())
	for _, rule := range role.Rules {
		g.Expect(rule.Verbs).NotTo(ContainElement(BeElementOf("impersonate", "*")), "rule %+v", rule)
	}

	for _, res := range []authorizationv1.ResourceAttributes{
		{Verb: "impersonate", Resource: "users", Name: "system:admin"},
		{Verb: "impersonate", Resource: "groups", Name: "system:masters"},
		{Verb: "impersonate", Resource: "serviceaccounts", Namespace: accounts, Name: boss},
		{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "uids"},
		{Verb: "impersonate", Group: "authentication.k8s.io", Resource: "userextras", Subresource: "scopes"},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:kubehook-system:kubehook",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:kubehook-system", "system:authenticated"},
			ResourceAttributes: &res,
		}}
		g.Expect(admin.Create(t.Context(), sar)).To(Succeed())
		g.Expect(sar.Status.Allowed).To(BeFalse(), "kubehook may %s %s", res.Verb, res.Resource)
	}
}
