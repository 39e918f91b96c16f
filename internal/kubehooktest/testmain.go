package kubehooktest

import (
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/kubehook/kubehook/internal/testenv"
)

// Main is the TestMain of a package whose tests run kubehook children
// against one control plane: in a child it only runs the tests (the child
// uses the parent's control plane, through KUBECONFIG); in the test itself
// it starts a control plane (testenv.Main), hands it to setup, runs the
// tests, then runs setup's teardown and stops it. It returns the exit code
// for os.Exit.
func Main(m interface{ Run() int }, setup func(*ControlPlane) (teardown func(), err error)) int {
	if IsChild() {
		return m.Run()
	}
	return testenv.Main(m, func(env *envtest.Environment, cfg *rest.Config) (func(), error) {
		cp, err := NewControlPlane(env, cfg)
		if err != nil {
			return nil, err
		}
		teardown, err := setup(cp)
		if err != nil {
			cp.Close()
			return nil, err
		}
		return func() {
			if teardown != nil {
				teardown()
			}
			cp.Close()
		}, nil
	})
}
