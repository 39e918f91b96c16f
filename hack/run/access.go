package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// installAccess installs, in the local control plane, what `make deploy`
// installs for people: the viewer, editor and admin ClusterRoles (with the
// kubehook- prefix of config/default, so the README's commands work as
// written) and the author policy of config/policies.
func installAccess(ctx context.Context, c client.Client, root string) error {
	for _, f := range []string{"webhooksubscription_viewer_role.yaml", "webhooksubscription_editor_role.yaml", "webhooksubscription_admin_role.yaml"} {
		objs, err := readObjects(filepath.Join(root, "config", "rbac", f))
		if err != nil {
			return err
		}
		for _, o := range objs {
			o.SetName("kubehook-" + o.GetName())
			if err := createOrUpdate(ctx, c, o); err != nil {
				return err
			}
		}
	}
	objs, err := readObjects(filepath.Join(root, "config", "policies", "author.yaml"))
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := createOrUpdate(ctx, c, o); err != nil {
			return err
		}
	}
	return nil
}

// readObjects decodes every document of a YAML file.
func readObjects(path string) ([]*unstructured.Unstructured, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(u.Object) > 0 {
			out = append(out, u)
		}
	}
}

// createOrUpdate keeps objects current across runs (bin/local keeps state).
func createOrUpdate(ctx context.Context, c client.Client, o *unstructured.Unstructured) error {
	err := c.Create(ctx, o.DeepCopy())
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur := &unstructured.Unstructured{}
	cur.SetGroupVersionKind(o.GroupVersionKind())
	if err := c.Get(ctx, client.ObjectKeyFromObject(o), cur); err != nil {
		return err
	}
	o.SetResourceVersion(cur.GetResourceVersion())
	return c.Update(ctx, o)
}
