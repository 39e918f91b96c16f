package dtrapi

import (
	"testing"

	. "github.com/onsi/gomega"
)

// A caller picks the method; the metric's label must not grow with it.
func TestMethodLabelIsBounded(t *testing.T) {
	g := NewWithT(t)
	g.Expect(methodLabel("GET")).To(Equal("GET"))
	g.Expect(methodLabel("DELETE")).To(Equal("DELETE"))
	g.Expect(methodLabel("BREW")).To(Equal("other"))
	g.Expect(methodLabel("get")).To(Equal("other"))
}
